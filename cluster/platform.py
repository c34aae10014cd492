"""Bring the platform up and down: Ray, the catalog, the embedded ibsim, the Serve API.

State of what ``up`` started lives in ``SCIZOR_HOME/run/platform.json`` so ``down`` stops
exactly that, and nothing it did not start (a cluster given by ``SCIZOR_RAY_ADDRESS`` or a
real gateway given by ``SCIZOR_IB_HOST`` is left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx

from cluster import bootstrap
from core.errors import ConfigError, ValidationError
from core.settings import Settings

EMBEDDED_IB_HOST = "127.0.0.1"


@dataclass(slots=True, kw_only=True)
class PlatformState:
    """What ``scizor up`` started, persisted for ``down`` and ``status``."""

    ray_address: str = ""
    ray_started: bool = False
    ibsim_pid: int | None = None
    ib_host: str = ""
    ib_port: int = 0
    api_url: str = ""
    dashboard_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def state_path(settings: Settings) -> Path:
    """Where the platform state file lives."""
    return settings.storage.home / "run" / "platform.json"


def load_state(settings: Settings) -> PlatformState | None:
    """The state of the last ``up``, or None if the platform is not up."""
    path = state_path(settings)
    if not path.exists():
        return None
    return PlatformState(**json.loads(path.read_text()))


def save_state(settings: Settings, state: PlatformState) -> None:
    """Persist ``state`` atomically."""
    path = state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2, default=str))
    tmp.replace(path)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate: Any, *, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass.

    Raises:
        ConfigError: naming ``what`` did not come up.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise ConfigError(f"{what} did not come up within {timeout:.0f} s")


def start_ibsim(settings: Settings, *, speed: float = 1.0) -> int:
    """Start the embedded ibsim on 127.0.0.1:SCIZOR_IB_PORT; return its pid."""
    port = settings.ib.port
    if port_open(EMBEDDED_IB_HOST, port):
        raise ConfigError(
            f"port {port} is already in use; stop what listens there or set SCIZOR_IB_PORT"
        )
    log_dir = settings.storage.home / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "ibsim",
        "--host",
        EMBEDDED_IB_HOST,
        "--port",
        str(port),
        "--pacing",
        "strict",
        "--speed",
        str(speed),
    ]
    with open(log_dir / "ibsim.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: port_open(EMBEDDED_IB_HOST, port), timeout=30, what="ibsim")
    return proc.pid


def effective_env(settings: Settings, state: PlatformState) -> dict[str, str]:
    """The ``SCIZOR_*`` variables services run with (the embedded gateway's host filled in)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("SCIZOR_")}
    env["SCIZOR_HOME"] = str(settings.storage.home.resolve())
    env["SCIZOR_IB_HOST"] = state.ib_host
    env["SCIZOR_IB_PORT"] = str(state.ib_port)
    env["SCIZOR_RAY_ADDRESS"] = state.ray_address
    return env


def up(settings: Settings) -> PlatformState:
    """Start everything the settings call for and return what was started."""
    from ray import serve

    from serve.deployment import APP_NAME, build_app

    home = settings.storage.home
    home.mkdir(parents=True, exist_ok=True)
    state = load_state(settings) or PlatformState()
    migrate(settings)

    if settings.ib.embedded:
        if not (state.ibsim_pid and _alive(state.ibsim_pid)):
            state.ibsim_pid = start_ibsim(settings)
            save_state(settings, state)  # so 'down' can stop it if a later step fails
        state.ib_host, state.ib_port = EMBEDDED_IB_HOST, settings.ib.port
    else:
        state.ib_host, state.ib_port = settings.ib.host or "", settings.ib.port

    if settings.ray.address:
        state.ray_address = settings.ray.address
    else:
        state.ray_started = state.ray_started or not bootstrap.head_running(
            bootstrap.local_address()
        )
        state.ray_address = bootstrap.local_address()
        save_state(settings, state)
        bootstrap.start_local_head(settings)
        state.dashboard_url = f"http://{settings.ray.dashboard_host}:{settings.ray.dashboard_port}"
    save_state(settings, state)

    bootstrap.connect(settings, address=state.ray_address)
    api = settings.api
    serve.start(http_options={"host": api.host, "port": api.port})
    serve.run(build_app(effective_env(settings, state)), name=APP_NAME, route_prefix="/")
    state.api_url = f"http://{api.host}:{api.port}"
    save_state(settings, state)
    services = Settings.from_env(effective_env(settings, state))
    state.extra["gateway"] = start_gateway(services)
    state.extra["trading"] = start_trading(services)
    save_state(settings, state)
    wait_until(
        lambda: _healthy(state.api_url),
        timeout=60,
        what=f"the HTTP API on {state.api_url} (if Ray Serve already ran on this cluster, it "
        "keeps the port it started with: set SCIZOR_API_PORT to it, or 'serve shutdown')",
    )
    return state


ADMIN_TOKEN_NAME = "admin"


PREPARE_KIND = "prepare"


def start_preparation(settings: Settings, state: PlatformState) -> str:
    """Submit ``scizor prepare`` as a Ray Job (unless one is pending or running); return its
    submission id, kept in the state for ``status`` and ``down``."""
    from serve.jobs import JobSpec, RayJobLauncher

    launcher = RayJobLauncher()
    running = launcher.active(PREPARE_KIND)
    if running:
        job_id = running[0].submission_id
    else:
        spec = JobSpec(kind=PREPARE_KIND, prefix=PREPARE_KIND, args=(PREPARE_KIND,),
                       metadata={"requested_by": "scizor up"})  # fmt: skip
        job_id = launcher.submit(spec, env=effective_env(settings, state))
    state.extra["prepare_job"] = job_id
    save_state(settings, state)
    return job_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Preparation:
    """How far ``scizor prepare`` is: its job, its phase, the daily collection's counts."""

    job_id: str
    status: str
    phase: str
    done: int
    failed: int
    total: int
    message: str = ""

    @property
    def ended(self) -> bool:
        """True once the job no longer runs."""
        return self.status not in ("PENDING", "RUNNING")

    def describe(self) -> str:
        """One line for ``scizor status``."""
        counts = f" ({self.done + self.failed}/{self.total} instruments)" if self.total else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.status}: {self.phase}{counts}{failed}"


def preparation(settings: Settings, state: PlatformState) -> Preparation | None:
    """The preparation ``up`` started (None if it started none). Joins the cluster."""
    from serve.jobs import RayJobLauncher
    from storage.catalog import Catalog
    from storage.catalog.records import ItemStatus

    job_id = state.extra.get("prepare_job")
    if not job_id:
        return None
    bootstrap.connect(settings, address=state.ray_address)
    job = RayJobLauncher().get(job_id)
    began = (job.start_time or 0) / 1000
    catalog = Catalog(settings.db.url)
    try:
        run = catalog.collection_runs.latest(kind="daily")
    finally:
        catalog.dispose()
    created = run.created_at if run is not None else None
    if created is not None and created.tzinfo is None:  # SQLite hands back naive UTC
        created = created.replace(tzinfo=UTC)
    ours = created is not None and created.timestamp() >= began - 1
    done = failed = total = 0
    if run is not None and ours:
        total = run.total
        done = run.counts.get(ItemStatus.DONE, 0)
        failed = run.counts.get(ItemStatus.FAILED, 0)
    if job.status == "SUCCEEDED":
        phase = "ready"
    elif job.status in ("FAILED", "STOPPED"):
        phase = "did not finish (scizor jobs logs " + job_id + ")"
    elif not ours:
        phase = "symbols: populating and validating with IB"
    elif run is not None and run.status == "running":
        phase = "collecting daily bars"
    else:
        phase = "compiling the engine's kernels"
    return Preparation(job_id=job_id, status=job.status, phase=phase, done=done,
                       failed=failed, total=total, message=job.message or "")  # fmt: skip


def stop_preparation(settings: Settings, state: PlatformState) -> None:
    """Stop the preparation job if it still runs (its collection resumes on the next up)."""
    from core.errors import NotFound
    from serve.errors import ServiceUnavailable
    from serve.jobs import RayJobLauncher

    job_id = state.extra.get("prepare_job")
    if job_id:
        with contextlib.suppress(NotFound, ServiceUnavailable):
            RayJobLauncher().stop(job_id)


def first_admin_token(settings: Settings) -> str | None:
    """Create the first API token (scope admin) when the catalog has none; return it.

    Returns the plaintext once, for ``scizor up`` to print; only its hash is stored, so a later
    ``up`` (tokens exist) returns None and nothing can show it again. With
    ``SCIZOR_ADMIN_TOKEN`` set, that token becomes the first admin token instead and None is
    returned (the operator has it; it is never printed).

    Raises:
        ValidationError: SCIZOR_ADMIN_TOKEN is too short or has spaces.
    """
    from storage.catalog import Catalog
    from storage.catalog.records import TokenScope

    chosen = settings.api.admin_token
    catalog = Catalog(settings.db.url)
    try:
        if catalog.tokens.count():
            return None
        if chosen is not None:
            try:
                catalog.tokens.create(TokenScope.ADMIN, ADMIN_TOKEN_NAME,
                                      plaintext=chosen.get_secret_value())  # fmt: skip
            except ValidationError as exc:
                raise ValidationError(f"SCIZOR_ADMIN_TOKEN: {exc}", field="admin_token") from None
            return None
        _, plaintext = catalog.tokens.create(TokenScope.ADMIN, ADMIN_TOKEN_NAME)
        return plaintext
    finally:
        catalog.dispose()


def start_gateway(settings: Settings) -> dict[str, Any]:
    """Create (or find) the gateway actor, connect it to the broker, return its health.

    Raises:
        BrokerError: if the gateway cannot connect (the message says where it tried).
    """
    import ray

    from actors.gateway import get_gateway

    gateway = get_gateway(settings)
    health: dict[str, Any] = ray.get(gateway.ready.remote(), timeout=settings.ib.timeout * 6)
    return health


def start_trading(settings: Settings) -> dict[str, Any]:
    """Create (or find) the risk manager and the order manager, then give every running or
    paused deployment its runner again; return what trading looks like.

    The order manager subscribes to the gateway's fills and reconciles with the broker as it
    starts, so fills made while the platform was down are recorded before any runner acts;
    a kill switch halted before the restart is still halted (the risk manager reloads it).
    """
    import ray

    from actors.deployments import ensure_runners
    from actors.order_actor import get_order_manager
    from actors.risk_actor import get_risk_manager
    from storage.catalog import Catalog

    risk: dict[str, Any] = ray.get(get_risk_manager(settings).state.remote(), timeout=60)
    orders: dict[str, Any] = ray.get(get_order_manager(settings).stats.remote(), timeout=120)
    catalog = Catalog(settings.db.url)
    try:
        runners = ensure_runners(catalog, settings)
    finally:
        catalog.dispose()
    return {"halted": bool(risk.get("halted")), "reason": risk.get("reason", ""),
            "reconciled": orders.get("last_reconcile_clean"), "runners": runners}  # fmt: skip


def stop_gateway() -> None:
    """Kill the platform's detached actors (they outlive the driver that made them): each
    deployment's runner, the order manager, the risk manager, then the gateway. Their state is
    in the catalog: the next ``up`` starts them again where they stopped."""
    import ray

    from actors.gateway import GATEWAY_NAME, GATEWAY_NAMESPACE
    from actors.order_actor import ACTOR_NAME as ORDER_MANAGER
    from actors.risk_actor import ACTOR_NAME as RISK_MANAGER

    runners = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a.get("namespace") == GATEWAY_NAMESPACE and a["name"].startswith("scizor-runner-")
    ]
    for name in (*runners, ORDER_MANAGER, RISK_MANAGER, GATEWAY_NAME):
        with contextlib.suppress(ValueError):  # ValueError: no such actor
            ray.kill(ray.get_actor(name, namespace=GATEWAY_NAMESPACE))


def migrate(settings: Settings) -> None:
    """Create or upgrade the catalog schema, then move a bar store written before instrument
    ids to ``instrument=`` partitions (:func:`cluster.barstore.migrate_bar_store`)."""
    from cluster.barstore import migrate_bar_store
    from storage.catalog import Catalog

    catalog = Catalog(settings.db.url)
    try:
        catalog.upgrade()
        migrate_bar_store(settings.storage.bar_store, catalog)
    finally:
        catalog.dispose()


def down(settings: Settings) -> PlatformState | None:
    """Stop what ``up`` started; return the state that was stopped (None if nothing was)."""
    state = load_state(settings)
    if state is None:
        return None
    if state.ray_address and bootstrap.head_running(state.ray_address):
        import ray
        from ray import serve

        from serve.deployment import APP_NAME

        bootstrap.connect(settings, address=state.ray_address)
        stop_preparation(settings, state)
        stop_gateway()
        if state.ray_started:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
            bootstrap.stop_local_head()
        else:  # a cluster we joined: remove only our application
            serve.delete(APP_NAME)
    if state.ibsim_pid and _alive(state.ibsim_pid):
        os.killpg(state.ibsim_pid, signal.SIGTERM)
    state_path(settings).unlink(missing_ok=True)
    return state


def status(settings: Settings) -> dict[str, Any]:
    """Describe each part of the platform: up or down, and where."""
    state = load_state(settings)
    if state is None:
        return {"platform": "down"}
    return {
        "platform": "up",
        "ray": {"address": state.ray_address, "up": bootstrap.head_running(state.ray_address)},
        "dashboard": state.dashboard_url or "(managed by the cluster)",
        "ibsim": {
            "pid": state.ibsim_pid,
            "up": bool(state.ibsim_pid and _alive(state.ibsim_pid)),
        },
        "gateway": f"{state.ib_host}:{state.ib_port}",
        "api": {"url": state.api_url, "healthy": _healthy(state.api_url)},
        "database": settings.db.redacted_url,
        "bar_store": settings.storage.bar_store,
        "preparation": _preparation_line(settings, state),
    }


def _preparation_line(settings: Settings, state: PlatformState) -> str:
    """What ``status`` says of the preparation (never an error: status must always answer)."""
    from core.errors import ScizorError

    if not state.extra.get("prepare_job"):
        return "not started (scizor up --no-prepare)"
    if not bootstrap.head_running(state.ray_address):
        return "unknown (Ray is down)"
    try:
        found = preparation(settings, state)
    except (ScizorError, ConnectionError, RuntimeError) as exc:
        return f"unknown ({exc})"
    return "not started" if found is None else found.describe()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _healthy(url: str) -> bool:
    if not url:
        return False
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
