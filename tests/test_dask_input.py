"""Bad input for a cluster run is refused early, with an error that names it (issue 17).

Before anything is submitted (most before the cluster is even reached): a ``cluster`` of the
wrong type or form, options that mean nothing on a cluster, an address where no scheduler
listens, workers with more than one thread, and values that cannot leave this machine.
The run's function leaves a file behind if it ever runs (``fixtures.faults.touch``).
"""

from __future__ import annotations

import multiprocessing
import socket

import pytest

from fixtures import faults
from mpmq import MPmq

pytestmark = pytest.mark.deadline(60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("cluster, error, says", [
    (42, TypeError, "cluster must be None, 'local', a scheduler address"),
    (["local"], TypeError, "not list"),
    ("my cluster", ValueError, "neither 'local' nor a scheduler address"),
])
def test_a_cluster_of_the_wrong_type_or_form(cluster, error, says):
    with pytest.raises(error, match=says):
        MPmq(faults.touch, process_data=[{}], cluster=cluster)


def test_a_wrong_mpmq_cluster_variable_is_named(monkeypatch):
    monkeypatch.setenv("MPMQ_CLUSTER", "two machines")
    with pytest.raises(ValueError, match=r"\$MPMQ_CLUSTER='two machines'"):
        MPmq(faults.touch, process_data=[{}])


@pytest.mark.parametrize("option, value", [("context", "spawn"), ("max_items_per_worker", 2)])
def test_options_that_mean_nothing_on_a_cluster(option, value):
    with pytest.raises(ValueError, match=f"{option}= means nothing on a cluster"):
        MPmq(faults.touch, process_data=[{}], cluster="local", **{option: value})


def test_an_address_where_no_scheduler_listens(tmp_path, processes):
    address = f"tcp://127.0.0.1:{free_port()}"
    before = set(processes.children())
    run = MPmq(faults.touch, process_data=[{"path": str(tmp_path / "ran")}], cluster=address)

    with pytest.raises(ConnectionError, match=f"cluster='{address}': cannot reach a Dask scheduler there"):
        run.execute()
    assert not (tmp_path / "ran").exists()
    assert set(processes.children()) <= before


@pytest.mark.parametrize("where", ["item", "shared_data"])
@pytest.mark.parametrize("value, says", [
    (lambda: multiprocessing.Queue(), r"a multiprocessing queue .*use distributed\.Queue"),
    (lambda: multiprocessing.Lock(), r"a multiprocessing lock .*distributed\.Lock"),
    (lambda: multiprocessing.Manager().dict(), r"a multiprocessing manager proxy"),
    (lambda: open(__file__), r"an open file .*pass the file's path"),
], ids=["queue", "lock", "manager-proxy", "open-file"])
def test_a_value_that_cannot_leave_this_machine(where, value, says, tmp_path, processes):
    before = set(processes.children())
    made = value()
    items = [{"path": str(tmp_path / "ran-0")}, {"path": str(tmp_path / "ran-1")}]
    shared = {}
    if where == "item":
        items[1]["value"] = made
        named = r"process_data\[1\]\['value'\]"
    else:
        shared["value"] = made
        named = r"shared_data\['value'\]"
    run = MPmq(faults.touch, process_data=items, shared_data=shared, cluster="local")
    try:
        with pytest.raises(TypeError, match=f"^{named} is {says}"):
            run.execute()
    finally:
        if hasattr(made, "close"):
            made.close()
        manager = getattr(made, "_manager", None)
        if manager is not None:
            manager.shutdown()
    assert not list(tmp_path.glob("ran-*"))
    assert set(processes.children()) <= before  # refused before a cluster was started


def test_workers_with_more_than_one_thread_are_refused(tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client:
        run = MPmq(faults.touch, process_data=[{"path": str(tmp_path / "ran")}], cluster=client)
        with pytest.raises(ValueError, match="runs 2 threads: .*start workers with `--nthreads 1`"):
            run.execute()
        assert not (tmp_path / "ran").exists()
        assert client.status == "running"  # a client given to the run is the caller's: left open
