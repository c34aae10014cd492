"""Shared fixtures for integration tests: one real local Ray session per test run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Start one local Ray cluster (num_cpus=2) for the whole run; shut it down at the end.

    The head carries the ``scizor_head`` custom resource, as ``cluster.bootstrap`` declares on
    a real head node, so actors pinned to the head can be scheduled.
    """
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    ray.init(
        address="local",  # always a fresh cluster, never one a developer left running
        num_cpus=2,
        include_dashboard=False,
        namespace="scizor-test",
        resources={"scizor_head": 1},
        logging_level="WARNING",
        log_to_driver=False,
    )
    try:
        yield
    finally:
        ray.shutdown()
