"""Three Ray nodes on one machine (``ray.cluster_utils.Cluster``): collection, backtest and
sweep tasks spread over the nodes, the gateway, risk and order managers stay singletons on
the head, and losing a worker node mid-backtest or mid-sweep loses nothing.

The cluster lives in a subprocess (``multinode_scenario.py``: a process joins one Ray
cluster, and this run's session cluster is joined already); it prints what it saw as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_backtest_support import members, universe_bars

pytestmark = pytest.mark.integration
__all__ = ["universe_bars"]  # the fixture

SCENARIO = Path(__file__).with_name("multinode_scenario.py")


@pytest.fixture(scope="module")
def seen(universe_bars: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("multinode")
    run = subprocess.run(
        [sys.executable, str(SCENARIO), universe_bars, str(work)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-4000:]
    out: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.timeout(1200)
def test_the_gateway_risk_and_order_managers_are_singletons_on_the_head(
    seen: dict[str, Any],
) -> None:
    assert len(seen["workers"]) == 2 and seen["head"] not in seen["workers"]
    for name in ("gateway", "risk", "orders"):
        actor = seen["actors"][name]
        assert actor["same"], f"asking twice for the {name} actor made a second one"
        assert actor["nodes"] == [seen["head"], seen["head"]], name


@pytest.mark.timeout(1200)
def test_collection_tasks_spread_over_the_nodes(seen: dict[str, Any]) -> None:
    assert seen["collection"]["counts"] == {"done": 30}
    assert len(seen["collection"]["nodes"]) >= 2


@pytest.mark.timeout(1200)
def test_a_backtest_that_loses_a_worker_node_part_way_loses_no_instrument(
    seen: dict[str, Any],
) -> None:
    job = seen["backtest"]
    every = sorted(f"{m.symbol}.{m.primary_exchange}" for m in members())
    # removed part way, after it ran backtests (whether one was in flight at that instant
    # depends on timing: report["requeued"] says)
    assert 60 <= job["removed_after"] < len(every)
    assert job["reported"] == every  # each instrument once: none lost, none twice
    assert job["stored"] == every and job["lost"] == [] and job["errors"] == []
    assert len(job["nodes"]) >= 2


@pytest.mark.timeout(1200)
def test_a_sweep_that_loses_the_node_of_a_running_batch_ends_with_every_point(
    seen: dict[str, Any],
) -> None:
    sweep = seen["sweep"]
    assert len(sweep["removed"]) == 1 and sweep["retried"] >= 1
    assert sweep["complete"] == sweep["feasible"] == sweep["distinct"] == sweep["rows"]
    assert sweep["failed"] == 0
    assert len(sweep["nodes"]) >= 2
