"""A three-node Ray cluster on one machine, driven through the platform's own entry points.

Run by ``tests/integration/test_multinode.py`` in a subprocess (a process joins one Ray
cluster, and the test run's own session cluster is already joined): it starts
``ray.cluster_utils.Cluster`` with a head (1 CPU, the ``scizor_head`` resource) and two
worker nodes (1 CPU each), and ibsim over TCP, then

1. creates the gateway, the risk manager and the order manager through their ``get_*``
   functions, twice each, and records the node every actor runs on;
2. collects daily bars of 30 listings from ibsim (``cluster.collect.run_collection``);
3. fans a backtest of the whole bundled universe out (``optimize.backtest_fanout``), and
   removes a worker node (no graceful shutdown: its raylet is killed) once some instruments
   are done;
4. adds a node back and runs a grid sweep (``optimize.sweep.run_sweep``) over 40 listings,
   removing the worker node that runs the first sized batch while that batch runs.

Each task reports its worker's pid; a worker process is a child of its node's raylet, which
names its node. The outcome is printed as one JSON object on the last line.

Usage: ``python tests/integration/multinode_scenario.py UNIVERSE_BARS WORKDIR``
"""

from __future__ import annotations

import json
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from actors.gateway import get_gateway  # noqa: E402
from actors.order_actor import get_order_manager  # noqa: E402
from actors.risk_actor import get_risk_manager  # noqa: E402
from cluster import collect_plan, universe  # noqa: E402
from cluster.collect import run_collection  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import Instrument  # noqa: E402
from ibsim.contracts import default_world  # noqa: E402
from ibsim.testing import running_ibsim  # noqa: E402
from optimize.backtest_fanout import run_fanout  # noqa: E402
from optimize.backtest_spec import parse_spec  # noqa: E402
from optimize.backtest_work import Outcome, WorkPlan  # noqa: E402
from optimize.study_spec import parse_study  # noqa: E402
from optimize.sweep import PROBE_SETS, Progress, run_sweep  # noqa: E402
from storage.catalog import Catalog, SymbolRecord  # noqa: E402

SPEED = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ports() -> dict[str, int]:
    """Every per-node port free (the run's own cluster holds Ray's defaults)."""
    return {"dashboard_agent_listen_port": free_port(), "metrics_export_port": free_port(),
            "runtime_env_agent_port": free_port()}  # fmt: skip


class Nodes:
    """The cluster's nodes, and which node a worker pid belongs to."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.by_raylet: dict[int, str] = {}
        self.add(cluster.head_node)

    def add(self, node: Any) -> Any:
        self.by_raylet[node.all_processes["raylet"][0].process.pid] = node.node_id
        return node

    def of(self, pid: int) -> str | None:
        try:
            process: psutil.Process | None = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return None
        while process is not None:
            if process.pid in self.by_raylet:
                return self.by_raylet[process.pid]
            process = process.parent()
        return None


def actor_node(handle: Any) -> str:
    return str(ray.get(handle.__ray_call__.remote(
        lambda _self: ray.get_runtime_context().get_node_id())))  # fmt: skip


def listings(members: list[Any]) -> list[SymbolRecord]:
    return [
        SymbolRecord(symbol=m.symbol, sec_type=m.sec_type, exchange=m.exchange,
                     currency=m.currency, primary_exchange=m.primary_exchange, name=m.name,
                     universe=m.universe, valid=True)
        for m in members
    ]  # fmt: skip


class Sink:
    """A backtest sink that keeps every outcome and pulls a node out after ``after``."""

    def __init__(self, nodes: Nodes, victim: Any, after: int) -> None:
        self.nodes, self.victim, self.after = nodes, victim, after
        self.outcomes: list[Outcome] = []
        self.removed_at: int | None = None
        self.busy = False

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if self.removed_at is None and not self.busy:  # has the victim run a backtest yet?
            self.busy = self.nodes.of(outcome.worker_pid) == self.victim.node_id
        # after that (a slow start under load can delay its workers), never before
        if self.removed_at is None and len(self.outcomes) >= self.after and self.busy:
            self.removed_at = len(self.outcomes)
            self.nodes.cluster.remove_node(self.victim, allow_graceful=False)

    def flush(self, *, force: bool = False) -> bool:
        return True

    def stopped(self) -> bool:
        return False


def main(universe_bars: str, workdir: str) -> dict[str, Any]:
    work = Path(workdir)
    head = {"num_cpus": 1, "resources": {"scizor_head": 1}, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args={**head, **ports()})
    nodes = Nodes(cluster)
    workers = [nodes.add(cluster.add_node(num_cpus=1, **ports())) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="scizor-multinode", log_to_driver=False)
    out: dict[str, Any] = {"head": cluster.head_node.node_id,
                           "workers": [w.node_id for w in workers]}  # fmt: skip
    world = {(c.symbol, c.primary_exchange): c for c in default_world()}
    members = [m for m in universe.select() if (m.symbol, m.primary_exchange) in world]
    with running_ibsim(seed=3, pacing="strict", speed=SPEED) as sim:
        settings = Settings.from_env({
            "SCIZOR_HOME": str(work), "SCIZOR_BAR_STORE": universe_bars,
            "SCIZOR_DATABASE_URL": f"sqlite:///{work / 'scizor.db'}",
            "SCIZOR_IB_HOST": "127.0.0.1", "SCIZOR_IB_PORT": str(sim.port),
            "SCIZOR_IB_CLIENT_ID": "71",
        })  # fmt: skip
        catalog = Catalog(settings.db.url)
        catalog.upgrade()
        catalog.symbols.upsert_many(listings(members))

        # 1. the singletons, asked for twice each
        gateway = get_gateway(settings, time_scale=SPEED)
        pairs = {"gateway": (gateway, get_gateway(settings)),
                 "risk": (get_risk_manager(settings), get_risk_manager(settings))}  # fmt: skip
        pairs["orders"] = (get_order_manager(settings), get_order_manager(settings))
        out["actors"] = {
            name: {"nodes": [actor_node(a), actor_node(b)],
                   "same": a._actor_id == b._actor_id}
            for name, (a, b) in pairs.items()
        }  # fmt: skip

        # 2. collection tasks from ibsim
        us = [m for m in members if m.primary_exchange == "NASDAQ"][:30]
        instruments = [Instrument(symbol=m.symbol, exchange=m.exchange, currency=m.currency,
                                  primary_exchange=m.primary_exchange) for m in us]  # fmt: skip
        end = datetime(2025, 6, 2, tzinfo=UTC)
        targets = collect_plan.targets(instruments, bar_size="1d",
                                       start=end - timedelta(days=365), end=end)  # fmt: skip
        pids: list[int] = []
        _, tally = run_collection(
            "daily", targets, gateway=gateway, store_root=str(work / "collected"),
            on_result=lambda item, _tally: pids.append(item.worker_pid),
        )  # fmt: skip
        out["collection"] = {"counts": dict(tally.counts),
                             "nodes": sorted({n for p in pids if (n := nodes.of(p))})}  # fmt: skip

    # 3. a backtest of the whole universe, losing a worker node part way
    ids = [f"{m.symbol}.{m.primary_exchange}" for m in members]
    spec = parse_spec({"strategy": "sma_cross", "params": {"fast": 10, "slow": 50},
                       "instruments": ids})  # fmt: skip
    plan = WorkPlan(backtest_id=1, spec=spec, bar_store=universe_bars,
                    results=str(work / "results"),
                    currencies={f"{m.symbol}.{m.primary_exchange}": m.currency
                                for m in members})  # fmt: skip
    sink = Sink(nodes, workers[1], after=60)
    began = time.perf_counter()
    report = run_fanout(plan, ids, sink=sink, workers=3)
    seen_nodes = {n for o in sink.outcomes if (n := nodes.of(o.worker_pid)) is not None}
    out["backtest"] = {
        "instruments": len(ids),
        "reported": sorted(o.instrument for o in sink.outcomes),
        "errors": sorted({o.error for o in sink.outcomes if o.error})[:3],
        "removed_after": sink.removed_at,
        "nodes": sorted(seen_nodes),
        "report": report.as_dict(),
        "lost": report.lost,
        "seconds": time.perf_counter() - began,
    }
    results = work / "results" / "backtest=1"
    out["backtest"]["stored"] = sorted(
        p.name.removeprefix("instrument=") for p in results.iterdir()
    ) if results.exists() else []  # fmt: skip

    # 4. a grid sweep, losing the node of its first batch while that batch runs
    workers.append(nodes.add(cluster.add_node(num_cpus=1, **ports())))
    cluster.wait_for_nodes()
    study_ids = [i for i in ids if i.endswith(".NASDAQ")][:40]
    # enough points (3,174) that batches are sized after the probes: a sized batch runs
    # about TASK_SECONDS, so it is still running when its node is removed (a 32-set probe
    # takes some 50 ms and could end before the raylet dies)
    study = parse_study({"name": "multinode", "strategy": "sma_cross", "instruments": study_ids,
                         "space": {"fast": {"low": 2, "high": 60, "step": 1},
                                   "slow": {"low": 20, "high": 300, "step": 5}},
                         "constraints": ["fast < slow"], "sampler": "grid"})  # fmt: skip
    victims = {w.node_id: w for w in workers if w.node_id != workers[1].node_id}
    removed: list[str] = []
    batch_nodes: set[str] = set()

    def on_progress(p: Progress) -> None:
        if not p.worker_pid:
            return
        node = nodes.of(p.worker_pid)
        if node is not None:
            batch_nodes.add(node)
        if not removed and node in victims and p.batch > PROBE_SETS:
            removed.append(node)
            cluster.remove_node(victims[node], allow_graceful=False)

    swept = run_sweep(study, catalog=catalog, bar_store=universe_bars, on_progress=on_progress)
    points = [tuple(sorted(p.items())) for p in swept.trials["params"]]
    out["sweep"] = {
        "feasible": sum(1 for f in range(2, 61) for s in range(20, 301, 5) if f < s),
        "complete": swept.n_complete, "failed": swept.n_failed, "distinct": len(set(points)),
        "rows": len(points), "retried": swept.retried, "removed": removed,
        "nodes": sorted(batch_nodes),
    }  # fmt: skip
    catalog.dispose()
    ray.shutdown()
    cluster.shutdown()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2]), default=str))
