"""Long work as Ray Jobs: the API submits the ``scizor`` CLI and reads the job back.

A job's entrypoint is the CLI a user would type (``scizor collect daily --years 5``,
``scizor collect history BHP.ASX --bar-size 1d ...``, ``scizor symbols validate``), run on
the cluster by Ray's job server with the API's ``SCIZOR_*`` variables in its runtime
environment, so it shows in the dashboard with its logs. Submission ids are
``<prefix>-<16 hex>`` (``collect-...``, ``validate-...``) and the metadata says the kind
(``scizor_kind``), who asked (``requested_by``) and the request id.

The job server is found from the cluster itself: :class:`RayJobLauncher` gives
``JobSubmissionClient`` the GCS address of the Ray session it runs in, and Ray looks up the
dashboard's address there; with Ray's token authentication on, the client sends the
cluster's token (``RAY_AUTH_TOKEN`` / ``~/.ray/auth_token`` on the head) by itself.
"""

from __future__ import annotations

import logging
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import NotFound
from serve.errors import ServiceUnavailable

log = logging.getLogger(__name__)

KIND_KEY = "scizor_kind"
AGENT_WAIT_SECONDS = 20.0
"""How long a submission waits for the cluster's job agent to come up."""
ACTIVE_STATES = frozenset({"PENDING", "RUNNING"})


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """One piece of long work: which CLI command, and what it is.

    Attributes:
        kind: ``collect-daily``, ``collect-history``, ``symbols-validate``, ``backtest``,
            ``optimize``.
        prefix: The submission id's prefix (``collect``, ``validate``).
        args: The ``scizor`` arguments.
        metadata: Strings stored with the job (who asked, the request id, ...).
    """

    kind: str
    prefix: str
    args: tuple[str, ...]
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobState:
    """What Ray says of one job (never its runtime environment: it holds secrets)."""

    submission_id: str
    kind: str
    status: str
    message: str | None
    entrypoint: str
    start_time: int | None
    end_time: int | None
    driver_pid: int | None
    metadata: dict[str, str]
    ray_job_id: str | None = None

    @property
    def active(self) -> bool:
        """True while the job is pending or running."""
        return self.status in ACTIVE_STATES


class JobLauncher(Protocol):
    """Submits and reads Ray Jobs."""

    def submit(self, spec: JobSpec, *, env: Mapping[str, str]) -> str: ...

    def get(self, submission_id: str) -> JobState: ...

    def active(self, kind: str) -> list[JobState]: ...


class NoJobLauncher:
    """No job server in this process: every call is a 503."""

    def submit(self, spec: JobSpec, *, env: Mapping[str, str]) -> str:
        raise ServiceUnavailable("long work needs Ray's job server; none is configured")

    def get(self, submission_id: str) -> JobState:
        raise ServiceUnavailable("long work needs Ray's job server; none is configured")

    def active(self, kind: str) -> list[JobState]:
        return []


def scizor_executable() -> str:
    """The ``scizor`` script of this Python environment (the cluster's), else ``scizor``."""
    candidate = Path(sys.executable).with_name("scizor")
    return str(candidate) if candidate.exists() else "scizor"


def entrypoint(spec: JobSpec) -> str:
    """The shell command a job runs."""
    return shlex.join([scizor_executable(), *spec.args])


def new_submission_id(prefix: str) -> str:
    """A fresh submission id, e.g. ``collect-3f9c0a1b2c3d4e5f``."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class RayJobLauncher:
    """Ray Jobs through ``ray.job_submission.JobSubmissionClient``.

    Args:
        address: The job server or cluster address; default: the GCS address of the Ray
            session this process belongs to (a Serve replica's cluster).
    """

    def __init__(self, address: str | None = None) -> None:
        self._address = address
        self._client: Any = None

    def _jobs(self) -> Any:
        if self._client is None:
            import ray
            from ray.job_submission import JobSubmissionClient

            address = self._address or ray.get_runtime_context().gcs_address
            try:
                client = JobSubmissionClient(address)
                served = _session_of(client)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ServiceUnavailable(
                    f"Ray's job server cannot be reached from the API ({exc}); long work runs "
                    "as Ray Jobs and needs the cluster's dashboard (started by 'scizor up')"
                ) from exc
            ours = ray.get_runtime_context().get_session_name()
            if served != ours:
                raise ServiceUnavailable(
                    f"the job server at {client.get_address()} belongs to another Ray cluster "
                    f"(session {served}, this one is {ours}); start this cluster with its "
                    "dashboard so long work runs here"
                )
            self._client = client
        return self._client

    def submit(self, spec: JobSpec, *, env: Mapping[str, str]) -> str:
        """Submit ``spec`` with ``env`` (the ``SCIZOR_*`` variables); return its id."""
        submission_id = new_submission_id(spec.prefix)
        metadata = {**spec.metadata, KIND_KEY: spec.kind}
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while True:
            try:
                return str(
                    self._jobs().submit_job(
                        entrypoint=entrypoint(spec),
                        submission_id=submission_id,
                        runtime_env={"env_vars": dict(env)},
                        metadata=metadata,
                    )
                )
            except (ConnectionError, RuntimeError) as exc:
                # A head that just started has no job agent yet: Ray says to try again.
                if "No available agent" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                self._client = None
                raise ServiceUnavailable(f"Ray's job server refused the job: {exc}") from exc

    def get(self, submission_id: str) -> JobState:
        """The state of one of the API's jobs.

        Raises:
            NotFound: if there is no such job, or it is not one the API submitted.
        """
        try:
            details = self._jobs().get_job_info(submission_id)
        except RuntimeError as exc:
            if "404" in str(exc) or "does not exist" in str(exc):
                raise _unknown(submission_id) from None
            self._client = None
            raise ServiceUnavailable(f"Ray's job server did not answer: {exc}") from exc
        state = _state(details)
        if state is None:
            raise _unknown(submission_id)
        return state

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop a job (SIGTERM to its driver); False if it had already ended."""
        try:
            return bool(self._jobs().stop_job(submission_id))
        except RuntimeError as exc:
            if "404" in str(exc) or "does not exist" in str(exc):
                raise _unknown(submission_id) from None
            self._client = None
            raise ServiceUnavailable(f"Ray's job server did not answer: {exc}") from exc

    def active(self, kind: str) -> list[JobState]:
        """The API's pending or running jobs of ``kind``."""
        try:
            every = self._jobs().list_jobs()
        except (ConnectionError, RuntimeError) as exc:
            self._client = None
            raise ServiceUnavailable(f"Ray's job server did not answer: {exc}") from exc
        states = (_state(d) for d in every)
        return [s for s in states if s is not None and s.kind == kind and s.active]

    def list(self, *, kind: str | None = None) -> list[JobState]:
        """The platform's jobs (of ``kind``), newest first; jobs others submitted are left out."""
        try:
            every = self._jobs().list_jobs()
        except (ConnectionError, RuntimeError) as exc:
            self._client = None
            raise ServiceUnavailable(f"Ray's job server did not answer: {exc}") from exc
        states = [s for s in map(_state, every) if s is not None]
        chosen = [s for s in states if kind is None or s.kind == kind]
        return sorted(chosen, key=lambda s: s.start_time or 0, reverse=True)

    def logs(self, submission_id: str) -> str:
        """The job's driver output so far (what the dashboard's Jobs view shows)."""
        self.get(submission_id)  # NotFound for a job that is not the platform's
        try:
            return str(self._jobs().get_job_logs(submission_id))
        except RuntimeError as exc:
            self._client = None
            raise ServiceUnavailable(f"Ray's job server did not answer: {exc}") from exc

    def follow(self, submission_id: str, write: Callable[[str], object]) -> JobState:
        """Pass the job's output to ``write`` as it comes until the job ends; return its end."""
        import asyncio

        self.get(submission_id)

        async def tail() -> None:
            async for lines in self._jobs().tail_job_logs(submission_id):
                write(lines)

        asyncio.run(tail())
        return self.get(submission_id)


def _session_of(client: Any) -> str | None:
    """The Ray session the job server serves (its ``/api/version`` says so)."""
    # A cluster started without its dashboard still names the default dashboard address, so
    # the client may reach another cluster's job server on the same machine: compare sessions.
    # JobSubmissionClient has no public call for it; _do_request adds the cluster's token.
    response = client._do_request("GET", "/api/version")
    if response.status_code != 200:
        raise RuntimeError(f"/api/version answered {response.status_code}")
    session = response.json().get("session_name")
    return None if session is None else str(session)


def _unknown(submission_id: str) -> NotFound:
    return NotFound(
        f"job {submission_id!r} does not exist (or was not submitted by the API); the 202 "
        "answer of POST /collect... and POST /symbols/validate gives the job id"
    )


def _state(details: Any) -> JobState | None:
    metadata = dict(details.metadata or {})
    if KIND_KEY not in metadata or not details.submission_id:
        return None
    driver = getattr(details, "driver_info", None)
    pid = getattr(driver, "pid", None)
    return JobState(
        submission_id=str(details.submission_id),
        kind=metadata[KIND_KEY],
        status=str(getattr(details.status, "value", details.status)),
        message=details.message,
        entrypoint=str(details.entrypoint),
        start_time=details.start_time,
        end_time=details.end_time,
        driver_pid=int(pid) if pid and str(pid).isdigit() else None,
        metadata=metadata,
        ray_job_id=str(details.job_id) if getattr(details, "job_id", None) else None,
    )
