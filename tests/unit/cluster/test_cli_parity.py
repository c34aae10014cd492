"""``scizor parity``'s input: what it takes from a deployment, and what it refuses before it
starts anything (no Ray here: every case fails or resolves before connecting)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import cluster.cli_parity  # noqa: F401  (registers the command)
from actors.parity import ParitySpec, spec_from_deployment
from cluster.cli import app
from core.errors import NotFound, ValidationError
from storage.catalog import Catalog


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"}


def run(env: dict[str, str], *args: str) -> BaseException | None:
    result = CliRunner().invoke(app, ["parity", *args], env=env)
    return result.exception


def test_parity_of_a_strategy_needs_its_instruments(env: dict[str, str]) -> None:
    error = run(env, "sma_cross", "--start", "2024-01-02", "--end", "2024-06-28")
    assert isinstance(error, ValidationError) and error.field == "instruments"


def test_parity_refuses_intraday_bars_and_an_unknown_deployment(
    env: dict[str, str], tmp_path: Path
) -> None:
    args = ["--start", "2024-01-02", "--end", "2024-06-28"]
    error = run(env, "sma_cross", "-i", "AAPL.NASDAQ", "--bar-size", "5m", *args)
    assert isinstance(error, ValidationError) and error.field == "bar_size"
    Catalog(env["SCIZOR_DATABASE_URL"]).upgrade()
    assert isinstance(run(env, "41", *args), NotFound)


def test_spec_from_deployment_takes_its_strategy_and_lets_flags_override(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path}/c.db")
    catalog.upgrade()
    record = catalog.deployments.create(
        "sma_cross", instruments=["AAPL.NASDAQ"], params={"fast": 5, "slow": 20}, mode="paper",
        bar_size="1d", capital=25_000, account="DU1",
    )  # fmt: skip
    spec = spec_from_deployment(catalog, record.id, start="2024-01-02", end="2024-06-28")
    assert spec == ParitySpec(strategy="sma_cross", instruments=["AAPL.NASDAQ"],
                              params={"fast": 5, "slow": 20}, capital=25_000.0,
                              start="2024-01-02", end="2024-06-28")  # fmt: skip
    other = spec_from_deployment(catalog, record.id, start="2024-01-02", end="2024-06-28",
                                 capital=1_000.0, commission=0.0)  # fmt: skip
    assert (other.capital, other.commission, other.strategy) == (1_000.0, 0.0, "sma_cross")
    catalog.dispose()
    with pytest.raises(ValidationError, match="bar_size"):
        ParitySpec(strategy="sma_cross", instruments=["AAPL.NASDAQ"], start="2024-01-02",
                   end="2024-06-28", bar_size="1h")  # fmt: skip
