"""Helpers shared by the API's integration tests (no tests here).

The API runs on Ray Serve in the test session's one local Ray cluster (``ray_session``); each
test module deploys it once per catalog backend (SQLite, PostgreSQL) with its own ``SCIZOR_*``
variables and limits, and talks to it over real HTTP on loopback.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

APP = "scizor-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout:.0f} s (last: {last!r})")


def backend_url(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    """A migrated catalog for a module: SQLite in a temp dir, or a PostgreSQL database."""
    from storage.catalog import Catalog

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api-catalog') / 'catalog.db'}"
        drop: Callable[[], None] = lambda: None  # noqa: E731
    else:
        admin = request.getfixturevalue("pg_admin")
        url = admin.create(prefix="api")
        drop = lambda: admin.drop(url)  # noqa: E731
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.dispose()
    try:
        yield url
    finally:
        drop()


def serve_port() -> int:
    """The port Serve's HTTP proxy listens on (Serve may have been started before us)."""
    from ray.serve.context import _get_global_client

    # No public API reports it; the controller client holds the cluster's HTTP options.
    return int(_get_global_client().http_config.port)


@contextlib.contextmanager
def serving(env: dict[str, str], *, limits: Any = None, port: int | None = None) -> Iterator[str]:
    """Deploy the API with ``env`` on Serve; yield its base URL; stop Serve afterwards.

    Args:
        env: The deployment's ``SCIZOR_*`` variables.
        limits: Its limits (default: the API's).
        port: Serve's HTTP port: the run's ``serve_api_port``. Serve keeps the port it first
            started with for as long as it runs on the cluster (then ``port`` is ignored and
            the running one used); it is shut down at the end, so nothing depends on order.
    """
    from ray import serve

    from serve.deployment import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": port or free_port()})
    try:
        serve.run(build_app(env, limits=limits), name=APP, route_prefix="/")
        url = f"http://127.0.0.1:{serve_port()}"
        eventually(lambda: _answers(url), timeout=60)
        yield url
    finally:
        stop_serve()


def stop_serve() -> None:
    """Shut Serve down on the session cluster (its apps, controller and proxies)."""
    from ray import serve

    serve.shutdown()  # type: ignore[no-untyped-call]


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def scrape_metrics() -> str:
    """Every alive node's Prometheus text (Ray's metrics endpoint)."""
    import ray

    texts = []
    for node in ray.nodes():
        if node["Alive"]:
            with contextlib.suppress(httpx.HTTPError):
                url = f"http://127.0.0.1:{node['MetricsExportPort']}/metrics"
                texts.append(httpx.get(url, timeout=5).text)
    return "\n".join(texts)


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of ``name`` carrying ``labels``, or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def scizor_env(home: Path, catalog_url: str, **extra: str) -> dict[str, str]:
    """The ``SCIZOR_*`` variables of a test deployment."""
    import ray

    return {
        "SCIZOR_HOME": str(home),
        "SCIZOR_DATABASE_URL": catalog_url,
        "SCIZOR_BAR_STORE": str(home / "bars"),
        "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        **extra,
    }


@contextlib.contextmanager
def gateway_on(sim_port: int, *, client_id: int) -> Iterator[Any]:
    """The platform's gateway actor connected to an ibsim; killed afterwards."""
    import ray

    from actors.gateway import GATEWAY_NAME, GATEWAY_NAMESPACE, get_gateway
    from core.settings import Settings

    def kill() -> None:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(GATEWAY_NAME, namespace=GATEWAY_NAMESPACE), no_restart=True)

    kill()
    settings = Settings.from_env(
        {"SCIZOR_IB_HOST": "127.0.0.1", "SCIZOR_IB_PORT": str(sim_port),
         "SCIZOR_IB_CLIENT_ID": str(client_id)}
    )  # fmt: skip
    handle = get_gateway(settings, pin_to_head=True, time_scale=600.0)
    ray.get(handle.ready.remote(), timeout=60)
    try:
        yield handle
    finally:
        kill()


def kill_trading_actors(catalog_url: str | None = None) -> None:
    """Kill the cluster's order manager, risk manager and (for ``catalog_url``'s deployments)
    runner actors: they are detached and named, and each opens one catalog, so a test that
    made them through the API must not leave them to the next test's catalog."""
    import ray

    from actors.gateway import NAMESPACE
    from actors.order_actor import ACTOR_NAME as OM_NAME
    from actors.risk_actor import ACTOR_NAME as RISK_NAME
    from actors.strategy_runner import runner_name
    from storage.catalog import Catalog

    names = [OM_NAME, RISK_NAME]
    if catalog_url is not None:
        catalog = Catalog(catalog_url)
        try:
            names += [runner_name(d.id) for d in catalog.deployments.list()]
        finally:
            catalog.dispose()
    for name in names:
        with contextlib.suppress(ValueError):
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
