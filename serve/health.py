"""The checks behind ``GET /health``: each part is exercised, not only found.

- ``catalog``: the database answers and its schema is at the head revision;
- ``bar_store``: a probe file is written, read back and deleted under the store root (a
  local path or a pyarrow URI);
- ``gateway``: the gateway actor is connected to IB and no bar stream is stale;
- ``ray``: the cluster's CPUs and alive nodes.

Each check returns ``{"ok": bool, ...}`` and never raises (the context turns an exception into
``ok: false``).
"""

from __future__ import annotations

import functools
from typing import Any

from storage.barquery import probe
from storage.catalog.migrate import head_revision


def catalog_check(catalog: Any, *, redacted_url: str) -> dict[str, Any]:
    """The catalog's revision against the head one."""
    revision, head = catalog.revision(), _head()
    check: dict[str, Any] = {
        "ok": revision == head, "revision": revision, "head": head, "url": redacted_url,
    }  # fmt: skip
    if revision != head:
        check["fix"] = "run 'scizor db upgrade' (or 'scizor up') to migrate the catalog"
    return check


@functools.cache
def _head() -> str | None:
    return head_revision()


def bar_store_check(root: str) -> dict[str, Any]:
    """Write, read back and delete a probe file under the bar store root."""
    return probe(root)


def ray_check() -> dict[str, Any]:
    """The cluster's resources: CPUs (total and free) and alive nodes."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    total = ray.cluster_resources()  # type: ignore[no-untyped-call]
    free = ray.available_resources()  # type: ignore[no-untyped-call]
    cpus = float(total.get("CPU", 0.0))
    return {
        "ok": bool(nodes) and cpus > 0,
        "alive_nodes": len(nodes),
        "cpus": cpus,
        "cpus_free": float(free.get("CPU", 0.0)),
    }
