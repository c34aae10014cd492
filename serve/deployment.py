"""The Ray Serve deployment hosting the FastAPI ingress.

Each replica rebuilds the settings from the ``SCIZOR_*`` variables it was bound with and
builds its services once (:func:`build_context`): the catalog, the gateway actor by name,
the trading actors (order manager, runners, risk manager), Ray Jobs for long work, and Ray
metrics (created here, inside the replica).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

from fastapi import FastAPI
from ray import serve
from ray.serve import Application

from core.settings import Settings
from serve.app import create_api
from serve.context import ApiContext
from serve.health import bar_store_check, catalog_check, ray_check
from serve.jobs import RayJobLauncher
from serve.limits import ApiLimits
from serve.metrics import ApiMetrics
from serve.observe import ACCESS_LOGGER
from serve.services import RayGateway, RayTrading

APP_NAME = "scizor"


def configure_access_log(level: str) -> None:
    """Send the replica's JSON access lines (``scizor.api.access``) to stderr at ``level``.

    Ray keeps a replica's stderr in the session's worker logs (the dashboard shows them).
    """
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.INFO))
    logger.propagate = False
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))  # the message is the JSON
        logger.addHandler(handler)


def build_context(
    settings: Settings, *, env: Mapping[str, str] | None = None, limits: ApiLimits | None = None
) -> ApiContext:
    """Assemble the API context for ``settings``: services, health checks, the access log."""
    configure_access_log(settings.log_level)
    context = ApiContext(
        settings, env=env, gateway=RayGateway(), trading=RayTrading(settings),
        jobs=RayJobLauncher(), metrics=ApiMetrics(), limits=limits, proxy_echoes_request_id=True,
    )  # fmt: skip
    url = settings.db.redacted_url
    context.add_health_check("catalog", lambda: catalog_check(context.catalog, redacted_url=url))
    context.add_health_check("gateway", context.gateway.health)
    context.add_health_check("bar_store", lambda: bar_store_check(settings.storage.bar_store))
    context.add_health_check("ray", ray_check)
    return context


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=200)
@serve.ingress()
class Ingress:
    """One FastAPI app per replica, built from the settings the deployment was bound with."""

    def __init__(self, env: Mapping[str, str], limits: ApiLimits | None = None) -> None:
        self._env = dict(env)
        self._settings = Settings.from_env(self._env)
        self._limits = limits
        self._context: ApiContext | None = None

    def __serve_build_asgi_app__(self) -> FastAPI:
        self._context = build_context(self._settings, env=self._env, limits=self._limits)
        return create_api(self._context, include_default_routes=True)

    def __del__(self) -> None:
        if self._context is not None:  # write the last batch of token uses
            self._context.close()


def build_app(env: Mapping[str, Any], *, limits: ApiLimits | None = None) -> Application:
    """Return the Serve application for the ``SCIZOR_*`` variables in ``env``.

    The variables (not a Settings object) cross the wire so every replica rebuilds the same
    settings, on any node; Ray Jobs the API submits get the same variables.

    Args:
        env: The environment; only ``SCIZOR_*`` variables are kept.
        limits: Body, rate and token-cache limits (default: :class:`ApiLimits`).
    """
    scizor_env = {k: str(v) for k, v in env.items() if k.startswith("SCIZOR_")}
    Settings.from_env(scizor_env)  # fail here, in the caller, on bad configuration
    # @serve.deployment adds .bind to the class; mypy sees the undecorated class.
    return cast(Application, Ingress.bind(scizor_env, limits))  # type: ignore[attr-defined]
