"""The Ray Serve deployment hosting the FastAPI ingress."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from core.settings import Settings
from serve.app import create_api
from serve.context import ApiContext
from storage.catalog import Catalog

APP_NAME = "scizor"


def build_context(settings: Settings) -> ApiContext:
    """Assemble the API context for ``settings``: checks and routers of every platform part."""
    context = ApiContext(settings)
    catalog = Catalog(settings.db.url)

    def catalog_check() -> dict[str, Any]:
        revision = catalog.revision()
        return {
            "ok": revision is not None,
            "revision": revision,
            "url": settings.db.redacted_url,
        }

    def bar_store_check() -> dict[str, Any]:
        root = settings.storage.bar_store
        if "://" in root:  # an object store: reachability is checked on first use
            return {"ok": True, "root": root}
        return {"ok": Path(root).parent.exists(), "root": root}

    def gateway_check() -> dict[str, Any]:
        import ray

        from actors.gateway import GATEWAY_NAME, GATEWAY_NAMESPACE

        actor = ray.get_actor(GATEWAY_NAME, namespace=GATEWAY_NAMESPACE)
        health = cast(dict[str, Any], ray.get(actor.health.remote(), timeout=5))
        # A stale bar stream (a failed re-subscription) starves live runners: degraded.
        ok = bool(health.get("connected")) and not health.get("streams_stale")
        return {"ok": ok, **health}

    context.add_health_check("catalog", catalog_check)
    context.add_health_check("gateway", gateway_check)
    context.add_health_check("bar_store", bar_store_check)
    return context


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=200)
@serve.ingress()
class Ingress:
    """One FastAPI app per replica, built from the settings the deployment was bound with."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._settings = Settings.from_env(dict(env))

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_api(build_context(self._settings))


def build_app(env: Mapping[str, Any]) -> Application:
    """Return the Serve application for the ``SCIZOR_*`` variables in ``env``.

    The variables (not a Settings object) cross the wire so every replica rebuilds the same
    settings, on any node.
    """
    scizor_env = {k: str(v) for k, v in env.items() if k.startswith("SCIZOR_")}
    Settings.from_env(scizor_env)  # fail here, in the caller, on bad configuration
    # @serve.deployment adds .bind to the class; mypy sees the undecorated class.
    return cast(Application, Ingress.bind(scizor_env))  # type: ignore[attr-defined]
