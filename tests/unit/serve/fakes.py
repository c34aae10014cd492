"""Hand-written fakes of the services behind the API (no Ray): jobs, gateway, clocks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.errors import NotFound
from core.types import Instrument
from serve.jobs import JobSpec, JobState, entrypoint


@dataclass
class FakeJobs:
    """Records submissions; jobs stay in ``status`` until a test changes it."""

    submitted: list[tuple[str, JobSpec, dict[str, str]]] = field(default_factory=list)
    status: str = "PENDING"
    driver_pid: int | None = None
    start_time: int | None = None
    ray_job_id: str | None = None

    def submit(self, spec: JobSpec, *, env: Mapping[str, str]) -> str:
        job_id = f"{spec.prefix}-{len(self.submitted):016x}"
        self.submitted.append((job_id, spec, dict(env)))
        return job_id

    def _state(self, job_id: str, spec: JobSpec) -> JobState:
        return JobState(
            submission_id=job_id, kind=spec.kind, status=self.status, message=None,
            entrypoint=entrypoint(spec), start_time=self.start_time, end_time=None,
            driver_pid=self.driver_pid, metadata={**spec.metadata, "scizor_kind": spec.kind},
            ray_job_id=self.ray_job_id,
        )  # fmt: skip

    def get(self, submission_id: str) -> JobState:
        for job_id, spec, _ in self.submitted:
            if job_id == submission_id:
                return self._state(job_id, spec)
        raise NotFound(f"job {submission_id!r} does not exist")

    def active(self, kind: str) -> list[JobState]:
        states = [self._state(j, s) for j, s, _ in self.submitted if s.kind == kind]
        return [s for s in states if s.active]


@dataclass
class FakeGateway:
    """Knows the listings in ``known`` (instrument id -> con id); others are IB error 200."""

    known: dict[str, int] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def contract_details(self, instrument: Instrument) -> dict[str, Any]:
        self.asked.append(instrument.id)
        if instrument.id not in self.known:
            raise NotFound(f"IB error 200: no security definition for {instrument.id}")
        return {"con_id": self.known[instrument.id], "long_name": f"{instrument.symbol} Ltd",
                "sec_type": "STK"}  # fmt: skip

    async def account_summary(self) -> dict[str, dict[str, str]]:
        return {"DU1234567": {"NetLiquidation": "1000000", "TotalCashValue": "990000"}}

    def health(self) -> dict[str, Any]:
        return {"ok": True, "connected": True}


class Clock:
    """A monotonic clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def daily_bars(start: str = "2024-01-02", periods: int = 252) -> pd.DataFrame:
    """Business-day bars stamped 00:00 UTC."""
    index = pd.date_range(start, periods=periods, freq="B", tz="UTC", name="ts")
    close = 100.0 + np.arange(periods, dtype=float)
    return pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1e6},
        index=index,
    )
