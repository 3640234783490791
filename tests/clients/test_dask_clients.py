"""The real mppbar runs unmodified on a Dask cluster (issue 17): ``$MPMQ_CLUSTER`` in its
environment is all it takes. The same programs and checks as test_clients.py's mppbar cases,
once on a ``LocalCluster`` the run owns (``local``: closed before the program exits, as no
process may outlive it), once on a scheduler of the test's own, reached by its address, which
is then asked whether mpmq's tasks really ran there."""

from __future__ import annotations

import pytest
from clientrun import DEADLINE
from test_clients import check_mppbar_example1, check_mppbar_example2

pytestmark = [pytest.mark.clients, pytest.mark.deadline(DEADLINE + 30)]


def test_mppbar_with_mpmq_cluster_local(run_client, monkeypatch) -> None:
    monkeypatch.setenv("MPMQ_CLUSTER", "local")
    run = run_client("mppbar", "mppbar_example1.py", "spawn")
    check_mppbar_example1(run)


def test_mppbar_with_mpmq_cluster_an_address(run_client, monkeypatch) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1", scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}) as cluster:
        monkeypatch.setenv("MPMQ_CLUSTER", cluster.scheduler_address)
        run = run_client("mppbar", "mppbar_example2.py", "spawn")
        check_mppbar_example2(run)
        assert "mpmq" in cluster.scheduler.task_prefixes  # the items ran as this cluster's tasks
