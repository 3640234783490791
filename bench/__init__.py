"""``python -m bench``: mpmq side by side with ProcessPoolExecutor and multiprocessing.Pool.

Issue 6 asks for one program that runs every scenario for mpmq (with and without ``record=``)
and for the stdlib pools, several repetitions each, and prints medians with ratios against
PPE. Data flow:

    __main__ (driver) --subprocess--> one (a single measurement, fresh interpreter)
        one -> mpmqrun | peers (how each implementation runs the workload)
            -> workloads (the worker functions; importable, so spawn works too)
        one --JSON line--> __main__ -> report (tables) + targets (PASS/FAIL)

Every measurement runs in its own interpreter so the parent's peak RSS and CPU seconds belong
to that scenario alone, and one run's leftovers cannot slow the next.
"""
