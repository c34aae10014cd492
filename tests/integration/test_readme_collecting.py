"""The README's command blocks, run exactly as printed through bash from the repository root,
as a user types them: ``make up`` and the health/help block of "Two commands", the
"Collecting data" block on the whole bundled universe, then the "Research on the cluster and
over HTTP" and "Optimizing on the cluster" blocks (in one shell, as in one terminal) on the
bars it collected, and ``make down``.

``make up`` starts the embedded ibsim and the gateway (joining the test session's Ray cluster,
the one-cluster-per-run rule, through ``SCIZOR_RAY_ADDRESS``). Afterwards every valid
instrument of the catalog has its own bars, and the two listings of one ticker (VEA on the ASX
and on NYSE Arca) hold their own listing's series, never mixed.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from ibsim.contracts import default_world
from ibsim.market import Market
from storage.bars import BarStore
from storage.catalog import Catalog
from tests.integration.test_api_support import kill_trading_actors

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCIZOR = str(Path(sys.executable).with_name("scizor"))


def readme_block(title: str, which: int = 0) -> list[str]:
    """The commands of bash block ``which`` of the README section ``title``, one string
    each (a command continued with a trailing backslash keeps its lines)."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) > which, f"README lost bash block {which} of '{title}'"
    commands: list[str] = []
    for line in blocks[which].splitlines():
        if commands and commands[-1].endswith("\\"):
            commands[-1] += "\n" + line
        elif line.strip():
            commands.append(line)
    return commands


MARK = "@@ readme command {} @@"


def run_in_one_shell(env: dict[str, str], commands: list[str]) -> list[str]:
    """Run ``commands`` as printed in one bash (variables carry over, the first failure
    stops it); return each one's standard output."""
    script = "set -e\n" + "".join(
        f"{command}\nprintf '\\n{MARK.format(i)}\\n'\n" for i, command in enumerate(commands)
    )
    done = run(env, script)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    outputs, rest = [], done.stdout
    for i in range(len(commands)):
        out, rest = rest.split(f"\n{MARK.format(i)}\n", 1)
        outputs.append(out)
    return outputs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_unfinished_jobs() -> None:
    """Stop every Ray Job of the session still pending or running, and wait until it ends."""
    import ray
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(ray.get_runtime_context().gcs_address)
    live = {JobStatus.PENDING, JobStatus.RUNNING}
    unfinished = [job.submission_id for job in client.list_jobs() if job.status in live]
    for submission_id in unfinished:
        if submission_id:
            client.stop_job(submission_id)
    deadline = time.monotonic() + 60
    while unfinished and time.monotonic() < deadline:
        unfinished = [j for j in unfinished if j and client.get_job_status(j) in live]
        time.sleep(0.5)


def run(env: dict[str, str], line: str, *, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.timeout(1500)  # the README's whole first hour of work: collect, backtest, optimize
def test_readme_collecting_block_runs_as_printed_on_the_whole_universe(
    ray_session, serve_api_port, tmp_path
):
    import ray

    home = tmp_path / "home"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")},
        "SCIZOR_HOME": str(home),
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "SCIZOR_API_PORT": str(serve_api_port),
        "SCIZOR_IB_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    lines = readme_block("Collecting data")
    assert any("collect daily" in line for line in lines)
    make_up = readme_block("Two commands")[0]
    assert make_up.startswith("make up ")
    kill_trading_actors()  # make up starts its own, on this home's catalog
    up = run(env, make_up, timeout=600)  # as printed: the venv is current, so it only starts
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "SCIZOR is up" in up.stdout and "Admin API token" in up.stdout
        health, helped = run_in_one_shell(env, readme_block("Two commands", 1))
        parts = json.loads(health)
        assert parts["status"] == "ok", parts
        assert all(word in helped for word in ("symbols", "collect", "backtest", "token"))
        outputs = {}
        for line in lines:
            began = time.monotonic()
            done = run(env, line)
            assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            outputs[line] = done.stdout
            print(f"{time.monotonic() - began:7.1f} s  {line}")  # the figures for the notes
        populate = next(out for line, out in outputs.items() if "symbols populate" in line)
        assert "0 invalid" in populate and "unanswered" in populate
        _assert_every_instrument_has_its_own_bars(home)
        began = time.monotonic()
        research = readme_block("Research on the cluster and over HTTP")
        optimizing = readme_block("Optimizing on the cluster")
        trading = readme_block("Trading on paper")
        blocks = research + optimizing + trading
        outputs = run_in_one_shell(env, blocks)  # one terminal: $TOKEN carries
        print(f"{time.monotonic() - began:7.1f} s  the research, optimizing and trading blocks")
        _assert_the_research_block_did_its_work(env, home, outputs[: len(research)])
        _assert_the_optimizing_block_did_its_work(
            home, outputs[len(research) : len(research) + len(optimizing)]
        )
        _assert_the_trading_block_did_its_work(home, outputs[len(research) + len(optimizing) :])
    finally:
        stop_unfinished_jobs()  # a block cut short must not leave its sweep to the next tests
        run(env, "make down", timeout=120)
    for name in ("scizor-order-manager", "scizor-risk-manager"):  # down stopped trading too
        with pytest.raises(ValueError):
            ray.get_actor(name, namespace="scizor")


def _assert_every_instrument_has_its_own_bars(home: Path) -> None:
    catalog = Catalog(f"sqlite:///{home / 'scizor.db'}")
    try:
        listings = catalog.symbols.list(valid=True)
        latest = catalog.collection_runs.latest(kind="daily")
    finally:
        catalog.dispose()
    assert len(listings) == 428, "the whole bundled universe is valid on ibsim"
    assert latest is not None and latest.status == "done" and latest.total == 428
    store = BarStore(home / "bars")
    assert set(store.instruments("1d")) == {r.id for r in listings}
    world, market = default_world(), Market(seed=0)
    for listing in listings:
        stored = store.read(listing.id, "1d")
        assert len(stored) > 1000, f"{listing.id}: {len(stored)} daily bars for 5 years"
        if listing.symbol == "VEA" or listing.id in ("AAPL.NASDAQ", "BHP.ASX"):
            contract = world.by_con_id(listing.con_id)
            assert contract is not None and contract.currency == listing.currency
            daily = market.daily(contract)["close"]
            expected = daily.set_axis(daily.index.as_unit("ns").tz_localize("UTC"))
            got = stored["close"]
            assert np.allclose(got.to_numpy(), expected.reindex(got.index).to_numpy()), listing.id
    asx, arca = store.read("VEA.ASX", "1d"), store.read("VEA.ARCA", "1d")
    assert not asx.index.equals(arca.index), "ASX and NYSE Arca sessions differ"
    assert len(store.read("AAPL.NASDAQ", "1m")) > 0


def _assert_the_research_block_did_its_work(
    env: dict[str, str], home: Path, outputs: list[str]
) -> None:
    cli, token, bars, csv, posted, listed = outputs
    asx = _listings(home, universe="asx200")
    assert "Report:" in cli and str(home / "reports") in cli, cli[-2000:]
    assert token == "", "the token goes into the variable, not the screen"
    page = json.loads(bars)
    assert page.get("instrument") == "VEA.ASX" and len(page["bars"]) == 3, bars
    header, *rows = csv.strip().splitlines()
    assert header.split(",")[:5] == ["ts", "open", "high", "low", "close"], csv[:500]
    assert len(rows) >= 3, csv
    accepted = json.loads(posted)
    assert accepted.get("status") == "queued" and accepted["job_id"], posted
    recent = json.loads(listed)["items"]
    assert [b["strategy"] for b in recent] == ["rsi_reversion", "sma_cross"]
    assert len(recent[1]["instruments"]) == len(asx) and recent[1]["status"] == "done"
    # The posted job runs as a Ray Job; it ends with a result for every ETF.
    reader = run(env, f"{SCIZOR} token create --name readme-check --scope read --quiet")
    headers = {"Authorization": f"Bearer {reader.stdout.strip()}"}
    url = f"http://127.0.0.1:{env['SCIZOR_API_PORT']}/backtests/{accepted['backtest_id']}"
    deadline, job = time.monotonic() + 300, {}
    while time.monotonic() < deadline:
        job = httpx.get(url, headers=headers, timeout=30).json()
        if job["status"] in ("done", "failed", "cancelled"):
            break
        time.sleep(1)
    assert job["status"] == "done", job
    assert set(job["instruments"]) == {r.id for r in _listings(home, universe="etfs")}
    results = httpx.get(f"{url}/results", headers=headers, timeout=30).json()["results"]
    assert len(results) == len(job["instruments"]) and not [r for r in results if r["error"]]


def _listings(home: Path, *, universe: str) -> list:
    catalog = Catalog(f"sqlite:///{home / 'scizor.db'}")
    try:
        return catalog.symbols.list(valid=True, universe=universe)
    finally:
        catalog.dispose()


def _assert_the_optimizing_block_did_its_work(home: Path, outputs: list[str]) -> None:
    grid, tpe, jobs, trials = outputs
    for out in (grid, tpe):
        assert "SUCCEEDED" in out and "deflated Sharpe" in out and "Report:" in out, out[-3000:]
    catalog = Catalog(f"sqlite:///{home / 'scizor.db'}")
    try:
        studies = {o.study_name: o for o in catalog.optimizations.list()}
    finally:
        catalog.dispose()
    etfs, asx = studies["sma-etfs"], studies["sma-asx"]
    feasible = sum(1 for f in range(5, 61, 5) for s in range(20, 251, 10) if f < s)
    assert etfs.status.value == "done" and etfs.n_complete == feasible
    assert asx.status.value == "done" and asx.n_complete == 300  # COMPLETE and pruned
    assert asx.report["n_pruned"] > 0 and asx.report["n_complete"] + asx.report["n_pruned"] == 300
    assert asx.spec["pruning"]["folds"] == 4
    for study in (etfs, asx):
        assert study.artifacts["job_id"] in jobs and study.report["verdict"] in grid + tpe
        assert 0 <= study.report["overfitting"]["dsr"] <= 1
    assert etfs.report["walk_forward"]["folds"] and etfs.report["walk_forward"]["equity"]
    page = json.loads(trials)
    assert page["total"] == feasible and len(page["items"]) == 3
    values = [t["values"][0] for t in page["items"]]
    assert values == sorted(values, reverse=True) and values[0] == pytest.approx(etfs.best_value)
    assert (home / "reports" / f"optimization-{etfs.id}.html").stat().st_size > 10_000


def _assert_the_trading_block_did_its_work(home: Path, outputs: list[str]) -> None:
    _token, deployed, listed, orders, performance, halted, resumed, after = outputs
    catalog = Catalog(f"sqlite:///{home / 'scizor.db'}")
    try:
        [deployment] = catalog.deployments.list()
        sent = catalog.orders.list(deployment_id=deployment.id)
        events = [e.kind for e in catalog.risk.events()]
        state = catalog.risk.state() or {}
    finally:
        catalog.dispose()
    assert deployment.strategy == "buy_hold" and deployment.instruments == ["SPY.ARCA"]
    assert deployment.mode.value == "paper" and str(deployment.id) in deployed
    assert "running" in listed and "paused" in after  # the halt paused it; the reset did not
    assert deployment.status.value == "paused"
    [record] = sent  # buy_hold's one order, sized from the capital, before the halt
    order = record.order
    assert order.order_ref.startswith(f"scz-{deployment.id}-SPY.ARCA-") and order.side == "BUY"
    assert order.quantity > 0 and order.order_ref in orders
    report = json.loads(performance)
    assert {"deployments", "total"} <= set(report)
    assert "end of the demo" in halted and "emergency_stop" in events and "reset" in events
    assert state.get("state") == "ACTIVE", state  # the reset cleared the halt
    assert "Trading allowed again" in resumed and str(deployment.id) in resumed  # still paused
