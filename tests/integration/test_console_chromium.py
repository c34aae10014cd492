"""The operator console in a real headless Chromium (Debian's, driven by Playwright), over the
real API on Ray Serve, the cluster's trading actors and ibsim over TCP.

The page loads with no token, takes one and lists what the API returns; a paper deployment
started from its button trades on ibsim (a filled order in the page's table); the emergency
stop button, through its prompt and confirmations, halts trading and pauses the deployment;
the reset asks for an admin token and clears the halt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from actors.gateway import get_gateway
from actors.pacing import PacingRules
from core.settings import Settings
from ibsim.testing import running_ibsim
from serve.limits import ApiLimits
from storage.catalog import Catalog
from tests.integration.test_api_support import (
    kill_trading_actors,
    scizor_env,
    serving,
)
from tests.integration.test_report_chromium import find_chromium

pytestmark = pytest.mark.integration

SPEED = 300.0  # ibsim seconds per real second: a 5-minute bar a second
START = datetime(2024, 3, 12, 14, 45, tzinfo=UTC)
AAPL, ACCOUNT = "AAPL.NASDAQ", "DU1234567"


@pytest.fixture(scope="module")
def site(
    ray_session: None, serve_api_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    import ray

    kill_trading_actors()  # another test's, on another catalog
    home = tmp_path_factory.mktemp("console")
    url_db = f"sqlite:///{home / 'scizor.db'}"
    with running_ibsim(seed=23, pacing="strict", speed=SPEED, start=START) as sim:
        env = scizor_env(home, url_db, SCIZOR_IB_HOST="127.0.0.1", SCIZOR_IB_PORT=str(sim.port),
                         SCIZOR_IB_CLIENT_ID="93")  # fmt: skip
        gateway = get_gateway(Settings.from_env(env), time_scale=SPEED, rules=PacingRules.ibkr())
        catalog = Catalog(url_db)
        catalog.upgrade()
        try:
            ray.get(gateway.ready.remote(), timeout=60)
            tokens = {s: catalog.tokens.create(s, f"{s}-operator")[1] for s in ("trade", "admin")}
            with serving(env, limits=ApiLimits(rate_per_second=200, burst=400),
                         port=serve_api_port) as url:  # fmt: skip
                yield {"url": url, "tokens": tokens, "sim": sim}
        finally:
            kill_trading_actors(url_db)
            with contextlib.suppress(Exception):
                ray.kill(gateway, no_restart=True)
            catalog.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=find_chromium(),
                                     args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            yield chromium
        finally:
            chromium.close()


def api(site: dict[str, Any], method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {site['tokens']['trade']}"}
    return httpx.request(method, site["url"] + path, headers=headers, timeout=120, **kwargs)


@pytest.mark.timeout(900)
def test_the_console_lists_starts_a_deployment_that_trades_and_its_emergency_stop_halts(
    site: dict[str, Any], browser: Any
) -> None:
    spec = {"strategy": "sma_cross", "params": {"fast": 2, "slow": 3}, "instruments": [AAPL],
            "capital": "100000", "account": ACCOUNT, "bar_size": "5m"}  # fmt: skip
    created = api(site, "POST", "/trading/deployments", json=spec)
    assert created.status_code == 201, created.text
    dep = created.json()["id"]

    page = browser.new_page(bypass_csp=True)  # for the test's own probes (wait_for_function)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    answers = {"prompt": [], "confirm": []}  # what the operator types / clicks, in order

    def on_dialog(dialog: Any) -> None:
        if dialog.type == "prompt":
            dialog.accept(answers["prompt"].pop(0))
        else:
            dialog.accept() if answers["confirm"].pop(0) else dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(site["url"] + "/ui")
    assert "Enter an API token" in page.inner_text("#message")  # nothing shown without one
    page.fill("#token", site["tokens"]["trade"])
    page.click("#save-token")
    row = f'#deployments tr[data-key="{dep}"]'
    page.wait_for_selector(row, timeout=60_000)
    assert "sma_cross" in page.inner_text(row) and "created" in page.inner_text(row)
    page.wait_for_function("document.querySelector('#health-when').textContent.includes('ok')",
                           timeout=60_000)  # fmt: skip
    assert "ACTIVE" in page.inner_text("#risk-state")

    page.click(f'{row} button[data-action="start"]')  # the page starts the runner
    page.wait_for_function(
        f"""() => [...document.querySelectorAll('#orders tr[data-key^="scz-{dep}-"]')]
                 .some((tr) => tr.textContent.includes('Filled'))""",
        timeout=240_000,
    )  # it traded on ibsim, and the page shows it
    assert "running" in page.inner_text(row)
    fills = api(site, "GET", f"/orders?deployment_id={dep}&status=Filled").json()["items"]
    assert fills and all(o["order_ref"] in page.inner_text("#orders") for o in fills[:1])
    refs = [o.order_ref for o in list(site["sim"].broker.orders.values())]
    assert any(r.startswith(f"scz-{dep}-") for r in refs)  # ibsim received it

    answers["prompt"] = ["console drill"]
    answers["confirm"] = [False, True]  # no flatten; then confirm the stop
    page.click("#emergency-stop")
    page.wait_for_selector("#banner.halted", timeout=60_000)
    assert "console drill" in page.inner_text("#banner")
    page.wait_for_function(
        f"document.querySelector('{row}').textContent.includes('paused')", timeout=60_000
    )
    state = api(site, "GET", "/risk/state").json()
    assert state["halted"] and state["reason"] == "console drill"

    answers["prompt"] = [site["tokens"]["trade"]]  # not an admin token: refused, still halted
    page.click("#reset-halt")
    page.wait_for_function("document.querySelector('#message').textContent.includes('403')",
                           timeout=30_000)  # fmt: skip
    assert api(site, "GET", "/risk/state").json()["halted"]
    answers["prompt"] = [site["tokens"]["admin"]]
    page.click("#reset-halt")
    page.wait_for_function("!document.querySelector('#banner').classList.contains('halted')",
                           timeout=60_000)  # fmt: skip
    assert not api(site, "GET", "/risk/state").json()["halted"]
    assert "paused" in page.inner_text(row)  # deployments stay paused until resumed
    assert errors == []
    page.close()
