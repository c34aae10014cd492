"""IBKR pacing bookkeeping driven by a ManualClock (history) or a fake real clock (rate)."""

from __future__ import annotations

from core.clock import ManualClock
from ibsim.pacing import HistoricalPacer, MessageRate, OpenRequests, RateExcess


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


class FakeClock:
    """Monotonic seconds that move only when told (the real clock of MessageRate)."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _send(rate: MessageRate, clock: FakeClock, *, count: int, per_second: float) -> list:
    """Record ``count`` evenly spaced messages; return the excesses reported."""
    out = []
    for _ in range(count):
        if (excess := rate.record()) is not None:
            out.append(excess)
        clock.t += 1.0 / per_second
    return out


def _burst(rate: MessageRate, count: int) -> list:
    """Record ``count`` messages arriving at the same instant."""
    return [e for _ in range(count) if (e := rate.record()) is not None]


def test_message_rate_warns_on_the_fifty_first_message_at_once_only_once() -> None:
    clock = FakeClock()
    rate = MessageRate(clock)
    assert _burst(rate, 50) == []
    assert rate.record() == RateExcess(count=51, close=False)
    assert _burst(rate, 20) == []  # warned once per window
    clock.t += 1.0  # a quiet second earns the credits back
    assert _burst(rate, 50) == []


def test_message_rate_never_objects_to_a_steady_45_per_second() -> None:
    clock = FakeClock()
    assert _send(MessageRate(clock), clock, count=2000, per_second=45) == []


def test_message_rate_never_objects_to_ib_async_bursts_of_45_with_jitter() -> None:
    clock = FakeClock()
    rate = MessageRate(clock)
    excesses = []
    for gap in [0.9, 1.1] * 20:  # 45 at once, the next 45 about a second later
        excesses += _burst(rate, 45)
        clock.t += gap
    assert excesses == []


def test_one_burst_is_warned_about_but_not_disconnected() -> None:
    clock = FakeClock()
    rate = MessageRate(clock)
    assert [e.close for e in _burst(rate, 80)] == [False]
    clock.t += 2.0
    assert _send(rate, clock, count=200, per_second=40) == []


def test_flooding_in_three_consecutive_seconds_closes_the_connection() -> None:
    clock = FakeClock()
    rate = MessageRate(clock)
    excesses = _send(rate, clock, count=400, per_second=80)
    assert [e.close for e in excesses[:3]] == [False, False, True]
    assert excesses[0].count == 80  # rec= counts the trailing second


def test_excess_in_seconds_that_are_not_consecutive_does_not_close() -> None:
    clock = FakeClock()
    rate = MessageRate(clock, close_after=2)
    first = _burst(rate, 60)  # window 0
    clock.t = 102.2  # window 2: window 1 passed quietly
    second = _burst(rate, 60)
    assert [e.close for e in first + second] == [False, False]
