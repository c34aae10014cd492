"""IBKR pacing bookkeeping driven by a ManualClock."""

from __future__ import annotations

from core.clock import ManualClock
from ibsim.pacing import HistoricalPacer, MessageRate, OpenRequests


def _ask(pacer: HistoricalPacer, key: object, contract: object = "AAPL", hard: bool = True):
    return pacer.violation(identical_key=key, contract_key=contract, hard_paced=hard)


def test_identical_request_within_15_seconds_violates_and_after_does_not() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock)
    assert _ask(pacer, "same") is None
    clock.advance(14.9)
    assert _ask(pacer, "same") == "identical request within 15 seconds"
    clock.advance(0.2)
    assert _ask(pacer, "same") is None


def test_sixth_request_for_one_contract_within_two_seconds_violates() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock)
    for i in range(5):
        assert _ask(pacer, i) is None
        clock.advance(0.1)
    assert _ask(pacer, 99) == "six or more requests for one contract within 2 seconds"
    assert _ask(pacer, 100, contract="MSFT") is None  # other contracts are unaffected
    clock.advance(2.0)
    assert _ask(pacer, 101) is None


def test_sixty_first_request_in_ten_minutes_violates_until_the_window_slides() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock)
    for i in range(60):
        assert _ask(pacer, i, contract=i) is None
        clock.advance(5.0)  # 60 requests over 300 s
    assert _ask(pacer, "x", contract="x") == "more than 60 requests within ten minutes"
    clock.advance(300.0)  # the first request is now 600 s old
    assert _ask(pacer, "y", contract="y") is None


def test_bars_over_30_seconds_and_disabled_pacing_are_never_paced() -> None:
    clock = ManualClock()
    pacer = HistoricalPacer(clock)
    assert all(_ask(pacer, "k", hard=False) is None for _ in range(100))
    off = HistoricalPacer(clock, enabled=False)
    assert all(_ask(off, "k") is None for _ in range(100))


def test_bid_ask_counts_twice() -> None:
    pacer = HistoricalPacer(ManualClock())
    for i in range(2):
        assert pacer.violation(identical_key=i, contract_key="c", hard_paced=True, weight=2) is None
    assert pacer.violation(identical_key=9, contract_key="c", hard_paced=True, weight=2)


def test_open_requests_refuse_the_fifty_first() -> None:
    open_requests = OpenRequests()
    assert all(open_requests.open(i) for i in range(50))
    assert not open_requests.open(50)
    open_requests.close(0)
    assert open_requests.open(50)


def test_message_rate_flags_the_fifty_first_message_in_a_second() -> None:
    clock = ManualClock()
    rate = MessageRate(clock)
    assert all(rate.record() is None for _ in range(50))
    assert rate.record() == 51
    clock.advance(1.0)
    assert rate.record() is None
