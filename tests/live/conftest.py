"""Live tests run only against a real IB paper gateway: ``SCIZOR_LIVE_IB=1`` plus
``SCIZOR_IB_HOST``/``SCIZOR_IB_PORT`` (paper: 4002). Without it they are deselected (reported
as deselected, never as passed or skipped)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

LIVE_DIR = Path(__file__).resolve().parent


def live_enabled() -> bool:
    """True when the run may talk to a real IB gateway."""
    return os.environ.get("SCIZOR_LIVE_IB") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect this folder's tests unless SCIZOR_LIVE_IB=1."""
    if live_enabled():
        return
    keep, drop = [], []
    for item in items:
        (drop if LIVE_DIR in Path(str(item.path)).parents else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def live_ray() -> Iterator[None]:
    """A local Ray of its own (num_cpus=2) carrying the head resource the gateway pins to."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        namespace="scizor-live",
        resources={"scizor_head": 1},
        logging_level="WARNING",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
