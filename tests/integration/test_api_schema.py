"""Property-based test of the whole API against its own OpenAPI schema (schemathesis), over
real HTTP on Ray Serve with an admin token, on SQLite and PostgreSQL catalogs: no route
answers 5xx, every response matches its documented status, content type and schema, and
invalid input is refused with a 4xx.

Examples are bounded and derandomized (the same cases every run). Long work would start real
Ray Jobs: collection routes meet a run of each kind holding its lease (so valid requests get
409 and start nothing), and ``POST /symbols/validate``, ``POST /backtests`` and
``POST /optimizations``, which have no run to meet, are left out; the test checks that no
Ray Job was submitted.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode

from ibsim.testing import running_ibsim
from serve.limits import ApiLimits
from storage.bars import BarStore
from storage.catalog import Catalog
from storage.catalog.records import SymbolRecord
from tests.integration.test_api_support import (
    backend_url,
    gateway_on,
    kill_trading_actors,
    scizor_env,
    serving,
)

pytestmark = pytest.mark.integration

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]
LONG_WORK_WITHOUT_A_RUN = ("/symbols/validate", "/backtests", "/optimizations")
EXAMPLES = 15
"""Cases per route and mode (positive, negative): about 500 requests per backend."""


@pytest.fixture(scope="module")
def ib(ray_session: None) -> Iterator[Any]:
    with running_ibsim(pacing="strict", speed=600.0) as sim, gateway_on(sim.port, client_id=83):
        yield sim


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog_db(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    yield from backend_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
def deployed(
    ib: Any, catalog_db: str, serve_api_port: int, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("schema-home")
    catalog = Catalog(catalog_db)
    catalog.symbols.upsert_many(
        [SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ", universe="nasdaq", valid=True),
         SymbolRecord(symbol="BHP", exchange="ASX", primary_exchange="ASX", currency="AUD")]
    )  # fmt: skip
    index = pd.date_range("2024-01-02", periods=60, freq="B", tz="UTC", name="ts")
    bars = pd.DataFrame({c: 100.0 for c in ("open", "high", "low", "close", "volume")}, index)
    BarStore(home / "bars").write("AAPL.NASDAQ", "1d", bars)
    for kind in ("daily", "history"):  # collection routes answer 409 and start no job
        catalog.collection_runs.create(
            kind, [("AAPL.NASDAQ", "1d", None, None)], owner="schema test",
            lease=timedelta(hours=1),
        )  # fmt: skip
    _, token = catalog.tokens.create("admin", "schemathesis")
    env = scizor_env(home, catalog_db, SCIZOR_IB_HOST="127.0.0.1", SCIZOR_IB_PORT=str(ib.port))
    limits = ApiLimits(rate_per_second=10_000, burst=10_000)
    kill_trading_actors()  # the trading routes make them on this catalog
    try:
        with serving(env, limits=limits, port=serve_api_port) as url:
            yield {"url": url, "token": token}
    finally:
        kill_trading_actors(catalog_db)
        catalog.dispose()


@pytest.fixture(scope="module")
def api_schema(deployed: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_url(f"{deployed['url']}/openapi.json")
    for path in LONG_WORK_WITHOUT_A_RUN:
        schema = schema.exclude(path=path, method="POST")
    return schema


def ray_jobs() -> set[str]:
    """Submission ids of every Ray Job of the session."""
    import ray
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray.get_runtime_context().gcs_address)
    return {str(job.submission_id) for job in client.list_jobs()}


def exercise(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    """Call ``operation`` with up to ``EXAMPLES`` generated cases of ``mode``, checking each."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=60)

    run()


def modes_of(operation: Any) -> list[GenerationMode]:
    """Positive cases for every route; negative ones where there is input to get wrong."""
    inputs = [operation.path_parameters, operation.query, operation.body]
    if any(len(part) for part in inputs):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def test_every_route_answers_within_its_schema_and_never_5xx(api_schema, deployed):
    headers = {"Authorization": f"Bearer {deployed['token']}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 14, [o.label for o in operations]
    assert not {o.label for o in operations} & {f"POST {p}" for p in LONG_WORK_WITHOUT_A_RUN}
    jobs_before = ray_jobs()
    failures = []
    for operation in operations:
        for mode in modes_of(operation):
            try:
                exercise(operation, mode, headers)
            except (AssertionError, FailureGroup) as exc:  # gather every route's failures
                failures.append(f"{operation.label} ({mode}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert ray_jobs() == jobs_before, "long work must not have started Ray Jobs"
