"""``scizor jobs``, ``jobs logs`` and ``jobs stop`` on the session cluster's real job server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from serve.jobs import JobSpec, RayJobLauncher
from tests.integration.test_api_support import eventually

pytestmark = pytest.mark.integration

SCIZOR = str(Path(sys.executable).with_name("scizor"))


@pytest.fixture(scope="module")
def env(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import ray

    base = {k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")}
    return {**base, "SCIZOR_HOME": str(tmp_path_factory.mktemp("jobs")),
            "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
            "COLUMNS": "250"}  # fmt: skip


def scizor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCIZOR, *args], env=env, capture_output=True, text=True, timeout=180,
                          check=False)  # fmt: skip


def test_jobs_lists_the_platforms_jobs_prints_their_logs_and_stops_them(env):
    jobs = RayJobLauncher()
    quick = jobs.submit(JobSpec(kind="help", prefix="help", args=("--help",)), env={})
    bad = jobs.submit(JobSpec(kind="bad", prefix="bad", args=("no-such-command",)), env={})
    eventually(lambda: jobs.get(quick).status == "SUCCEEDED", timeout=120)
    listed = scizor(env, "jobs")
    assert listed.returncode == 0, listed.stderr
    assert (
        quick in listed.stdout and "SUCCEEDED" in listed.stdout and "scizor --help" in listed.stdout
    )
    only = scizor(env, "jobs", "--kind", "bad")
    assert bad in only.stdout and quick not in only.stdout
    printed = scizor(env, "jobs", "logs", quick)
    assert printed.returncode == 0 and "Usage: scizor" in printed.stdout
    followed = scizor(env, "jobs", "logs", quick, "--follow")
    assert "Usage: scizor" in followed.stdout and f"Job {quick}: SUCCEEDED" in followed.stdout
    ended = eventually(lambda: not jobs.get(bad).active and jobs.get(bad), timeout=120)
    assert ended.status == "FAILED"  # an unknown command: exit 2
    stopped = scizor(env, "jobs", "stop", bad)
    assert stopped.returncode == 0 and "had already ended" in stopped.stdout


def test_an_unknown_job_is_a_clean_error(env):
    missing = scizor(env, "jobs", "logs", "help-0000000000000000")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
