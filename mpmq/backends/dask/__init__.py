"""The Dask backend (issue 17): items run as tasks on a Dask distributed cluster.

``link.py`` reaches the cluster (the three forms of ``cluster=``) and asks things of it,
``portable.py`` refuses values that cannot leave this machine, ``backend.py`` is the parent's
side (tasks in, events out), with ``tasks.py`` (what is known of each task) and
``failures.py`` (the events a failure makes); ``task.py`` and ``sender.py`` run in the Dask
workers.
Imported only for a run with ``cluster``: ``import mpmq`` never imports ``distributed``.
"""
