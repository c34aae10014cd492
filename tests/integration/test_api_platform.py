"""``scizor up`` creates the first admin token, prints it once and never again, and the API it
deploys on Serve takes it (joining the session's Ray cluster, as test_platform_up does)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from storage.catalog import Catalog
from tests.integration.test_api_support import free_port, stop_serve

pytestmark = pytest.mark.integration

SCIZOR = str(Path(sys.executable).with_name("scizor"))
TOKEN = re.compile(r"scz_[A-Za-z0-9_\-]{40,}")


def scizor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCIZOR, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_up_prints_an_admin_token_once_and_the_api_takes_it(ray_session, serve_api_port, tmp_path):
    import ray

    api_port = serve_api_port
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")},
        "SCIZOR_HOME": str(tmp_path / "home"),
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "SCIZOR_API_PORT": str(api_port),
        "SCIZOR_IB_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    first = scizor(env, "up", "--detach", "--no-prepare")
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        token, *in_examples = TOKEN.findall(first.stdout)
        assert len(in_examples) == 3 and set(in_examples) == {token}  # the curl examples
        assert "will not be shown again" in first.stdout
        catalog = Catalog(f"sqlite:///{tmp_path / 'home' / 'scizor.db'}")
        try:
            (record,) = catalog.tokens.list()
        finally:
            catalog.dispose()
        assert (record.name, record.scope) == ("admin", "admin")
        assert token not in (tmp_path / "home" / "run" / "platform.json").read_text()

        url = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{url}/symbols", timeout=30).status_code == 401
        authorized = httpx.get(
            f"{url}/symbols", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert authorized.status_code == 200, authorized.text

        again = scizor(env, "up", "--detach", "--no-prepare")
        assert again.returncode == 0, again.stdout + again.stderr
        assert not TOKEN.findall(again.stdout) and "Admin API token" not in again.stdout
    finally:
        down = scizor(env, "down")
        stop_serve()  # 'down' leaves Serve (and its port) to the cluster it joined
    assert down.returncode == 0, down.stdout + down.stderr
