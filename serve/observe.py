"""Per-request plumbing: request ids, the body cap, a JSON log line, metrics and the audit row.

:class:`RequestObserver` is a plain ASGI middleware (it runs in every replica). It

- takes a sane incoming ``X-Request-ID`` (1-64 of ``A-Z a-z 0-9 . _ : -``) or makes one, and
  echoes it on the response. Behind Ray Serve the proxy already gives every request an id
  (the client's, or a fresh UUID) and echoes it, so the replica adds the header only when its
  id differs from the proxy's (an insane incoming id, which the proxy echoes as it came);
- refuses bodies over the limit with ``413``: at once when ``Content-Length`` says so, or as
  soon as a streamed body passes it;
- after the response, logs one JSON line (``scizor.api.access``: method, route template,
  status, duration, request id, token name), records the request metrics and, for
  mutations, writes the audit row.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve import audit
from serve.errors import PayloadTooLarge, error_response

if TYPE_CHECKING:
    from serve.context import ApiContext

ACCESS_LOGGER = "scizor.api.access"
access_log = logging.getLogger(ACCESS_LOGGER)

REQUEST_ID_HEADER = "x-request-id"
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
UNMATCHED = "(unmatched)"


def request_id_from(headers: Headers) -> str:
    """The incoming request id when it is sane, else a new one (32 hex digits)."""
    incoming = headers.get(REQUEST_ID_HEADER, "")
    return incoming if _SANE_ID.fullmatch(incoming) else uuid.uuid4().hex


def too_large_message(limit: int) -> str:
    """The 413 message for a body over ``limit`` bytes."""
    return (
        f"request body is larger than the API accepts ({limit} bytes, {limit / 2**20:g} MiB); "
        "send a smaller body"
    )


@dataclass(slots=True)
class Exchange:
    """One request as the observer sees it."""

    request_id: str
    method: str
    limit: int
    capture: bool
    echo: bool = True
    started: float = field(default_factory=time.perf_counter)
    status: int | None = None
    received: int = 0
    body: bytearray = field(default_factory=bytearray)

    def wrap_receive(self, receive: Receive) -> Receive:
        """``receive`` counting (and for mutations keeping) the body, refusing past the limit."""

        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                self.received += len(chunk)
                if self.received > self.limit:
                    raise StarletteHTTPException(413, detail=too_large_message(self.limit))
                if self.capture:
                    self.body.extend(chunk)
            return message

        return counted

    def wrap_send(self, send: Send) -> Send:
        """``send`` adding ``X-Request-ID`` and noting the status."""

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = int(message["status"])
                if self.echo:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-request-id", self.request_id.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        return tagged


class RequestObserver:
    """ASGI middleware: request id, body cap, access log, metrics, audit (see module doc)."""

    def __init__(self, app: ASGIApp, *, context: ApiContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = str(scope["method"]).upper()
        request_id = request_id_from(headers)
        proxy_echoes = self.context.proxy_echoes_request_id
        exchange = Exchange(
            request_id=request_id,
            method=method,
            limit=self.context.limits.max_body_bytes,
            capture=method in audit.MUTATING_METHODS,
            echo=not (proxy_echoes and headers.get(REQUEST_ID_HEADER) == request_id),
        )
        scope.setdefault("state", {})["request_id"] = exchange.request_id
        try:
            if _declared_length(headers) > exchange.limit:
                reply = error_response(PayloadTooLarge(too_large_message(exchange.limit)))
                await reply(scope, receive, exchange.wrap_send(send))
            else:
                await self.app(scope, exchange.wrap_receive(receive), exchange.wrap_send(send))
        finally:  # also when the app raised: the client got (or gets) a 500
            await self._finish(scope, headers, exchange)

    async def _finish(self, scope: Scope, headers: Headers, exchange: Exchange) -> None:
        status = exchange.status or 500
        seconds = time.perf_counter() - exchange.started
        route = route_template(scope)
        token = getattr(scope.get("state", {}).get("principal"), "name", None)
        if access_log.isEnabledFor(logging.INFO):
            line = {
                "event": "request", "method": exchange.method, "route": route,
                "path": scope.get("path"), "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": exchange.request_id, "token": token,
            }  # fmt: skip
            access_log.info(json.dumps(line))
        metrics = self.context.metrics
        metrics.request(route=route, method=exchange.method, status=status, seconds=seconds)
        if exchange.capture:
            row = {
                "actor": token or "anonymous",
                "action": f"{exchange.method} {route}",
                "detail": _audit_detail(scope, headers, exchange, route),
                "status": status,
                "request_id": exchange.request_id,
            }
            sink = self.context.catalog.audit
            await anyio.to_thread.run_sync(
                lambda: audit.write(sink, on_failure=metrics.audit_failed, **row)
            )


def route_template(scope: Scope) -> str:
    """The matched route's template (``/bars/{instrument}``), the path of a plain route
    (``/docs``), or ``(unmatched)``."""
    template = getattr(scope.get("route"), "path", None)
    if template:
        return str(template)
    return str(scope.get("path")) if scope.get("endpoint") is not None else UNMATCHED


def _audit_detail(scope: Scope, headers: Headers, exchange: Exchange, route: str) -> dict[str, Any]:
    detail = audit.parameters(
        path_params=dict(scope.get("path_params") or {}),
        query=parse_qsl(scope.get("query_string", b"").decode("latin-1")),
        body=bytes(exchange.body),
        content_type=headers.get("content-type", ""),
    )
    if route == UNMATCHED:
        detail["url_path"] = str(scope.get("path", ""))[:200]
    return detail


def _declared_length(headers: Headers) -> int:
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0


def install(app: Any, context: ApiContext) -> None:
    """Add the observer to ``app`` (outermost of the app's own middleware)."""
    app.add_middleware(RequestObserver, context=context)
