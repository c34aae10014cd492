"""`scizor up` as the main job, from a clean SCIZOR_HOME: it starts everything, gets ready in
the background (the whole bundled universe populated, validated with ibsim and its daily
history collected, the engine's kernels compiled) with progress, prints three ``curl``
examples that work as printed, and Ctrl-C stops everything, leaving no process behind.

It joins the test session's Ray cluster (one cluster per run), so "everything" is what it
started: ibsim, the gateway, risk and order managers, the runners, the API app and the
preparation job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import httpx
import psutil
import pytest

from tests.integration.test_api_support import kill_trading_actors
from tests.integration.test_platform_up import SCIZOR, free_port
from tests.integration.test_readme_collecting import stop_unfinished_jobs

pytestmark = pytest.mark.integration


class Output:
    """A process's merged output, read by a thread so the process never blocks on it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, proc: subprocess.Popen[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text:
                return True
            if proc.poll() is not None:
                time.sleep(0.5)  # the reader's last lines
                return needle in self.text
            time.sleep(0.5)
        return False


def until_ended(url: str, headers: dict[str, str], *, timeout: float = 300) -> dict:
    deadline, body = time.monotonic() + timeout, {}
    while time.monotonic() < deadline:
        body = httpx.get(url, headers=headers, timeout=30).json()
        if body.get("status") in ("done", "failed", "cancelled"):
            return body
        time.sleep(1)
    return body


@pytest.mark.timeout(1500)
def test_up_from_a_clean_home_gets_ready_its_curl_examples_work_and_ctrl_c_stops_all(
    ray_session, serve_api_port, tmp_path
):
    import ray

    from storage.catalog import Catalog

    home = tmp_path / "home"
    ib_port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")},
        "SCIZOR_HOME": str(home),
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "SCIZOR_API_PORT": str(serve_api_port),
        "SCIZOR_IB_PORT": str(ib_port),
        "COLUMNS": "200",
    }
    kill_trading_actors()  # up starts its own, on this home's catalog
    proc = subprocess.Popen(
        [SCIZOR, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    out = Output(proc)
    try:
        assert out.wait_for("SCIZOR is running", proc, timeout=900), out.text[-5000:]
        assert "Ready" in out.text and "Getting ready in the background" in out.text
        examples = [line for line in out.lines if line.startswith("curl ")]
        assert len(examples) == 3, out.text[-3000:]
        token = examples[0].split("Bearer ", 1)[1].split('"', 1)[0]
        headers = {"Authorization": f"Bearer {token}"}
        api = f"http://127.0.0.1:{serve_api_port}"

        catalog = Catalog(f"sqlite:///{home / 'scizor.db'}")
        try:
            listings = catalog.symbols.list(valid=True)
            daily = catalog.collection_runs.latest(kind="daily")
            etfs = {r.id for r in catalog.symbols.list(valid=True, universe="etfs")}
        finally:
            catalog.dispose()
        assert len(listings) == 428, "the whole bundled universe, validated on ibsim"
        assert daily is not None and daily.status == "done" and daily.total == 428

        answers = []
        for line in examples:  # as printed
            done = subprocess.run(["bash", "-c", line], capture_output=True, text=True,
                                  timeout=120, check=False)  # fmt: skip
            assert done.returncode == 0, f"{line}\n{done.stderr}"
            answers.append(json.loads(done.stdout))
        backtest, optimization, deployment = answers
        assert backtest.get("status") == "queued", backtest
        assert optimization.get("status") == "queued", optimization
        assert deployment.get("status") == "running" and deployment["mode"] == "paper", deployment

        ran = until_ended(f"{api}/backtests/{backtest['backtest_id']}", headers)
        assert ran["status"] == "done" and set(ran["instruments"]) == etfs, ran
        swept = until_ended(f"{api}/optimizations/{optimization['optimization_id']}", headers)
        grid = sum(1 for f in range(5, 31, 5) for s in range(40, 121, 20) if f < s)
        assert swept["status"] == "done" and swept["n_complete"] == grid, swept

        status = subprocess.run([SCIZOR, "status"], env=env, capture_output=True, text=True,
                                timeout=120, check=False)  # fmt: skip
        assert "SUCCEEDED: ready (428/428 instruments)" in status.stdout, status.stdout

        reports_before = set((home / "reports").rglob("*.html"))
        shown = subprocess.run([SCIZOR, "demo"], env=env, capture_output=True, text=True,
                               timeout=900, check=False)  # fmt: skip
        assert shown.returncode == 0, shown.stdout[-4000:] + shown.stderr[-3000:]
        assert "Demo done" in shown.stdout and "Positions and P&L" in shown.stdout
        print(shown.stdout.strip().splitlines()[-3:])  # its time, for the notes
        written = set((home / "reports").rglob("*.html")) - reports_before
        assert len(written) >= 7, written  # six library backtests and the study
        catalog = Catalog(f"sqlite:///{home / 'scizor.db'}")
        try:
            study = catalog.optimizations.find("demo-sma-etfs")
            deployed = catalog.deployments.list()[-1] if catalog.deployments.list() else None
        finally:
            catalog.dispose()
        assert study is not None and study.status == "done" and study.best_params
        assert deployed is not None and deployed.strategy == "sma_cross"
        assert deployed.params == study.best_params and deployed.status == "running"

        state = json.loads((home / "run" / "platform.json").read_text())
        ibsim = psutil.Process(state["ibsim_pid"])
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=180) == 0, out.text[-3000:]
        time.sleep(0.5)
        assert "SCIZOR stopped." in out.text
        _gone, alive = psutil.wait_procs([ibsim, *children], timeout=30)
        assert not alive, f"left behind: {alive}"
        assert not (home / "run" / "platform.json").exists()
        for name in ("scizor-gateway", "scizor-risk-manager", "scizor-order-manager",
                     f"scizor-runner-{deployment['id']}"):  # fmt: skip
            with pytest.raises(ValueError):
                ray.get_actor(name, namespace="scizor")
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(ray.get_runtime_context().gcs_address)
        assert client.get_job_status(state["extra"]["prepare_job"]).is_terminal()
    finally:
        if proc.poll() is None:  # a failed assertion: stop it as the user would
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        subprocess.run([SCIZOR, "down"], env=env, capture_output=True, timeout=180, check=False)
        stop_unfinished_jobs()
        kill_trading_actors(f"sqlite:///{home / 'scizor.db'}")
