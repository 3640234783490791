"""Where mpmq 0.7.0 kept its class: clients import ``mpmq.mpmq.NoActiveProcesses`` from here."""

from .compat import MPmq
from .errors import NoActiveProcesses

__all__ = ["MPmq", "NoActiveProcesses"]
