"""The audit trail of the API: one ``audit_log`` row per mutation, failed ones included.

A row holds who (the token's name, or ``anonymous`` when no valid token came), what (method
and route template, e.g. ``POST /collect/historical/{instrument}``), the parameters (path,
query and JSON body, with secrets redacted and large bodies summarized), the status answered
and the request id. Rows are written after the response, off the event loop; a row that
cannot be written is logged and counted (``scizor_api_audit_failures``), never an error for
the client.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol

from core.errors import ScizorError

log = logging.getLogger(__name__)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECRET_KEYS = re.compile(r"token|secret|passw|api[_-]?key|authori[sz]ation|credential", re.I)
REDACTED = "***"
MAX_BODY_CHARS = 8_000
"""Bodies longer than this (as JSON) are summarized by their keys and size."""


class AuditSink(Protocol):
    """Where rows go: :class:`storage.catalog.admin.AuditLog`."""

    def record(
        self,
        actor: str,
        action: str,
        *,
        detail: dict[str, Any] | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> Any: ...


def redact(value: Any) -> Any:
    """Return ``value`` with the values of secret-looking keys replaced by ``***``."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if SECRET_KEYS.search(str(k)) else redact(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def body_parameters(body: bytes, content_type: str) -> Any:
    """The request body as audit parameters: redacted JSON, or its size when not JSON."""
    if not body:
        return None
    if "json" not in content_type:
        return {"bytes": len(body), "content_type": content_type or None}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {"bytes": len(body), "invalid_json": True}
    cleaned = redact(parsed)
    if len(json.dumps(cleaned, default=str)) <= MAX_BODY_CHARS:
        return cleaned
    keys = sorted(str(k) for k in parsed) if isinstance(parsed, dict) else None
    return {"bytes": len(body), "truncated": True, "keys": keys}


def parameters(
    *, path_params: dict[str, Any], query: list[tuple[str, str]], body: bytes, content_type: str
) -> dict[str, Any]:
    """The ``detail`` of an audit row: path, query and body parameters, secrets redacted."""
    detail: dict[str, Any] = {}
    if path_params:
        detail["path"] = redact({k: str(v) for k, v in path_params.items()})
    if query:
        detail["query"] = redact(dict(query))
    payload = body_parameters(body, content_type)
    if payload is not None:
        detail["body"] = payload
    return detail


def write(sink: AuditSink, *, on_failure: Any, **row: Any) -> None:
    """Append one row to ``sink``; log and call ``on_failure()`` if the catalog refuses."""
    try:
        sink.record(**row)
    except ScizorError as exc:
        log.error("audit row not written for %s: %s", row.get("action"), exc)
        on_failure()
