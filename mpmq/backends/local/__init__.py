"""The local backend: long-lived worker processes of this machine, one duplex pipe each.

``pool.py`` is the parent's side (the one blocking wait over every pipe and sentinel),
``worker.py`` the worker process, ``worker_channel.py`` the pipe between them.
"""
