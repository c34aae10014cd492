"""The runner's saved state and its deterministic order references."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from actors.runner_state import ORDER_REF_LENGTH, InstrumentState, RunnerState, order_ref
from core.errors import StorageError

BAR = pd.Timestamp("2026-12-01 14:30", tz="UTC")


def test_order_ref_is_derived_from_deployment_instrument_and_bar_time():
    assert order_ref(7, "AAPL.NASDAQ", BAR) == "scz-7-AAPL.NASDAQ-20261201T143000Z"
    assert order_ref(7, "AAPL.NASDAQ", BAR.tz_convert("Australia/Sydney")) == order_ref(
        7, "AAPL.NASDAQ", BAR
    ), "the same instant, whatever its zone"
    assert order_ref(7, "AAPL.NASDAQ", BAR, flat=True).endswith("-flat")
    assert order_ref(7, "AAPL.NASDAQ", BAR) != order_ref(8, "AAPL.NASDAQ", BAR)
    assert order_ref(7, "AAPL.NASDAQ", BAR) != order_ref(
        7, "AAPL.NASDAQ", BAR + pd.Timedelta("5min")
    )


def test_a_long_order_ref_is_shortened_to_the_catalogs_limit_and_stays_distinct():
    a, b = "X" * 40 + ".NASDAQ", "X" * 39 + "Y.NASDAQ"
    ref_a, ref_b = order_ref(123456, a, BAR, flat=True), order_ref(123456, b, BAR, flat=True)
    assert len(ref_a) <= ORDER_REF_LENGTH and len(ref_b) <= ORDER_REF_LENGTH
    assert ref_a != ref_b and ref_a == order_ref(123456, a, BAR, flat=True)


def test_runner_state_round_trips_through_json():
    state = RunnerState(
        instruments={"AAPL.NASDAQ": InstrumentState(anchor=BAR, last_bar=BAR, target=-0.5,
                                                    position=Decimal("-12"))},
        live_confirmed=True,
    )  # fmt: skip
    again = RunnerState.from_json(state.to_json())
    assert again == state
    assert RunnerState.from_json(None) == RunnerState()


@pytest.mark.parametrize(
    "data",
    [{"format": 2}, {"format": 1, "instruments": {"A.NASDAQ": {"position": "lots"}}}],
)
def test_an_unreadable_state_is_a_storage_error(data):
    with pytest.raises(StorageError, match="runner_state"):
        RunnerState.from_json(data)
