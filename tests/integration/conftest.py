"""Shared fixtures for integration tests: one real local Ray session per test run."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def serve_api_port() -> int:
    """The one HTTP port of Ray Serve in this run.

    Serve's proxy keeps the port it first started with for the cluster's life, so every test
    that deploys the API on the session cluster (``scizor up`` or ``serve.run``) uses this:
    8000, SCIZOR's default, when it is free (the README's commands name it), else a free one.
    """
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8000))
        except OSError:
            return _free_port()
    return 8000


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """Start one local Ray cluster (num_cpus=2) for the whole run; shut it down at the end.

    The head carries the ``scizor_head`` custom resource, as ``cluster.bootstrap`` declares on
    a real head node, so actors pinned to the head can be scheduled. The dashboard runs (on a
    free loopback port) because Ray Jobs are submitted through it.
    """
    import ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    with _agent_port(_free_port()):
        _start_ray()
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _agent_port(port: int) -> Iterator[None]:
    """Give the session's dashboard agent (the Ray Jobs server) a free port.

    ``ray.init`` always takes the default 52365, which another cluster on the machine (a
    developer's ``scizor up``, a benchmark) may hold; the agent then never starts and every
    job submission fails with "No available agent". ``ray.init`` has no argument for it, so
    the parameters it builds get the port as their default here.
    """
    import ray._private.parameter as parameter

    original = parameter.RayParams

    def with_port(*args: object, **kwargs: object) -> object:
        kwargs.setdefault("dashboard_agent_listen_port", port)
        return original(*args, **kwargs)

    parameter.RayParams = with_port  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        parameter.RayParams = original  # type: ignore[misc]


def _start_ray() -> None:
    import ray

    ray.init(
        address="local",  # always a fresh cluster, never one a developer left running
        num_cpus=2,
        include_dashboard=True,
        dashboard_host="127.0.0.1",
        dashboard_port=_free_port(),
        namespace="scizor-test",
        resources={"scizor_head": 1},
        logging_level="WARNING",
        log_to_driver=False,
    )
