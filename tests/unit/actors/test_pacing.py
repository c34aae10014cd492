"""Unit tests of actors.pacing.Pacer on a ManualClock: time moves only when the pacer waits."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from actors.pacing import (
    GrantEvent,
    Pacer,
    PacingRules,
    Priority,
    RequestKey,
    lower_bound_seconds,
)
from core.clock import ManualClock


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def eventually(check: Callable[[], bool], *, turns: int = 1000) -> None:
    """Let the loop run until ``check()`` holds (bounded by loop turns, not wall time)."""
    for _ in range(turns):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


def key(contract: str | int, *, bar: str = "5s", end: str = "", what: str = "TRADES") -> RequestKey:
    return RequestKey(contract=contract, bar_size=bar, end=end, what_to_show=what)


async def fetch(pacer: Pacer, k: RequestKey, priority: Priority = Priority.BACKFILL) -> None:
    async with pacer.historical(k, priority):
        pass


def test_pacer_sixty_requests_fit_and_the_61st_waits_until_the_oldest_expires() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        for i in range(60):
            await fetch(pacer, key(f"S{i}"))
            clock.advance(1.0)
        assert pacer.stats().waits == 0
        assert clock.monotonic() == 60.0
        await fetch(pacer, key("S60"))
        assert clock.monotonic() == pytest.approx(600.0, abs=1e-9)
        stats = pacer.stats()
        assert (stats.granted, stats.waits) == (61, 1)
        assert stats.wait_seconds == pytest.approx(540.0)
        # the 62nd may go once the second-oldest (t=1) expires
        await fetch(pacer, key("S61"))
        assert clock.monotonic() == pytest.approx(601.0, abs=1e-9)

    run(main())


def test_pacer_identical_request_waits_fifteen_seconds_and_a_different_one_does_not() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        await fetch(pacer, key("AAPL", end="20240102 16:00:00 UTC"))
        clock.advance(3.0)
        await fetch(pacer, key("MSFT", end="20240102 16:00:00 UTC"))
        assert clock.monotonic() == 3.0
        assert pacer.next_slot_in(key("AAPL", end="20240102 16:00:00 UTC")) == pytest.approx(12.0)
        await fetch(pacer, key("AAPL", end="20240102 16:00:00 UTC"))
        assert clock.monotonic() == pytest.approx(15.0)

    run(main())


def test_pacer_sixth_same_contract_request_within_two_seconds_waits() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        for i in range(5):
            await fetch(pacer, key("AAPL", end=f"e{i}"))
            clock.advance(0.1)
        assert pacer.stats().waits == 0
        await fetch(pacer, key("AAPL", what="MIDPOINT", end="x"))  # another tick type: free
        assert clock.monotonic() == pytest.approx(0.5)
        await fetch(pacer, key("AAPL", end="e5"))
        assert clock.monotonic() == pytest.approx(2.0)

    run(main())


def test_pacer_bid_ask_counts_twice_against_the_same_contract_limit() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        await fetch(pacer, key("AAPL", what="BID_ASK", end="a"))
        await fetch(pacer, key("AAPL", what="BID_ASK", end="b"))
        assert clock.monotonic() == 0.0
        await fetch(pacer, key("AAPL", what="BID_ASK", end="c"))  # 2+2+2 > 5
        assert clock.monotonic() == pytest.approx(2.0)

    run(main())


def test_pacer_minute_bars_are_only_paced_by_the_message_rate() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        for _ in range(200):  # identical and same-contract: allowed for 1-minute bars
            await fetch(pacer, key("AAPL", bar="1m"))
        assert clock.monotonic() == pytest.approx(lower_bound_seconds(200, "1m"))
        assert clock.monotonic() == pytest.approx(4.0)
        assert pacer.stats().waits == 4

    run(main())


def test_pacer_serves_live_messages_before_waiting_backfill() -> None:
    async def main() -> None:
        clock = ManualClock()
        order: list[Priority] = []
        pacer = Pacer(clock, on_grant=lambda e: order.append(e.priority))
        for _ in range(45):
            async with pacer.message(Priority.BACKFILL):
                pass
        order.clear()
        backfill = [asyncio.create_task(fetch(pacer, key("X", bar="1d"))) for _ in range(3)]
        await asyncio.sleep(0)
        live = asyncio.create_task(_live_message(pacer))
        await asyncio.gather(*backfill, live)
        assert order == [Priority.LIVE] + [Priority.BACKFILL] * 3

    run(main())


async def _live_message(pacer: Pacer) -> None:
    async with pacer.message(Priority.LIVE):
        pass


def test_pacer_live_message_does_not_wait_behind_rate_limited_backfill() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        for i in range(60):
            await fetch(pacer, key(f"S{i}"))
        stalled = asyncio.create_task(fetch(pacer, key("S60")))
        await asyncio.sleep(0)
        assert not stalled.done()
        start = clock.monotonic()
        async with pacer.message(Priority.LIVE):
            assert clock.monotonic() - start < 600.0
        await stalled
        assert clock.monotonic() >= 600.0

    run(main())


def test_pacer_holds_the_51st_request_until_an_open_one_completes() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        gate = asyncio.Event()

        async def hold(i: int) -> None:
            async with pacer.historical(key(f"S{i}", bar="1h")):
                await gate.wait()

        holders = [asyncio.create_task(hold(i)) for i in range(50)]
        await eventually(lambda: pacer.stats().open_requests == 50)
        late = asyncio.create_task(fetch(pacer, key("LATE", bar="1h")))
        for _ in range(50):
            await asyncio.sleep(0)
        assert not late.done()
        assert pacer.stats().queue_depth == 1
        gate.set()
        await asyncio.gather(*holders, late)
        assert pacer.stats().open_requests == 0

    run(main())


def test_pacer_cancelled_waiter_leaves_the_queue_and_frees_nothing_it_did_not_hold() -> None:
    async def main() -> None:
        clock = ManualClock()
        pacer = Pacer(clock)
        await fetch(pacer, key("A", end="same"))
        waiting = asyncio.create_task(fetch(pacer, key("A", end="same")))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pacer.stats().queue_depth == 0
        assert pacer.stats().open_requests == 0

    run(main())


def test_lower_bound_seconds_follows_the_binding_rule() -> None:
    assert lower_bound_seconds(45, "5s") == 0.0
    assert lower_bound_seconds(60, "5s") == 1.0  # the message rate binds first
    assert lower_bound_seconds(61, "5s") == 600.0
    assert lower_bound_seconds(121, "1s") == 1200.0
    assert lower_bound_seconds(31, "5s", what_to_show="BID_ASK") == 600.0
    assert lower_bound_seconds(61, "5s", time_scale=60) == 10.0
    assert lower_bound_seconds(11, "30s", n_contracts=1) == 4.0
    assert lower_bound_seconds(90, "1d") == 1.0


# --- property test: random request streams never break a sliding-window rule --------------


def _check_windows(events: list[GrantEvent], rules: PacingRules) -> None:
    def weight(e: GrantEvent) -> int:
        is_ba = e.key is not None and e.key.what_to_show == "BID_ASK"
        return rules.bid_ask_weight if is_ba else 1

    def check(
        series: list[GrantEvent], window: float, limit: int, unit: Callable[..., int]
    ) -> None:
        times = [(e.at, unit(e)) for e in series]
        for i, (t, _) in enumerate(times):
            inside = sum(w for tj, w in times[: i + 1] if tj + window > t)
            assert inside <= limit, f"{inside} > {limit} within {window}s ending {t}"

    check(events, rules.message_window_s, rules.messages_per_window, lambda e: 1)
    hard = [e for e in events if e.key is not None and e.key.hard_paced]
    check(hard, rules.rolling_window_s, rules.rolling_max, weight)
    groups: dict[Any, list[GrantEvent]] = defaultdict(list)
    last: dict[RequestKey, float] = {}
    for e in hard:
        assert e.key is not None
        groups[e.key.group].append(e)
        if e.key in last:
            assert e.at >= last[e.key] + rules.identical_window_s, f"identical {e.key}"
        last[e.key] = e.at
    for series in groups.values():
        check(series, rules.same_contract_window_s, rules.same_contract_max, weight)


@pytest.mark.parametrize("seed", range(6))
def test_pacer_random_streams_never_release_early(seed: int) -> None:
    rng = random.Random(seed)
    rules = PacingRules(
        identical_window_s=15,
        same_contract_window_s=2,
        same_contract_max=5,
        rolling_window_s=60,
        rolling_max=12,
        max_open=4,
        messages_per_window=6,
        bid_ask_weight=2,
    )  # small limits so every rule binds often

    async def main() -> list[GrantEvent]:
        clock = ManualClock()
        events: list[GrantEvent] = []
        open_seen: list[int] = []

        def spy(e: GrantEvent) -> None:
            events.append(e)
            open_seen.append(pacer.stats().open_requests)

        pacer = Pacer(clock, rules=rules, on_grant=spy)
        tasks: list[Awaitable[None]] = []
        for _ in range(150):
            clock.advance(rng.choice([0.0, 0.0, 0.1, 0.5, 1.0, 3.0]))
            tasks.append(asyncio.create_task(_random_request(pacer, rng)))
            await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        assert max(open_seen) <= rules.max_open
        assert pacer.stats().queue_depth == 0
        return events

    events = run(main())
    assert len(events) == 150
    assert all(e.waited >= 0 for e in events)
    _check_windows(events, rules)


async def _random_request(pacer: Pacer, rng: random.Random) -> None:
    priority = rng.choice(list(Priority))
    if rng.random() < 0.2:
        async with pacer.message(priority):
            return
    k = RequestKey(
        contract=rng.choice(["A", "B", "C"]),
        bar_size=rng.choice(["1s", "5s", "30s", "1m", "1d"]),
        what_to_show=rng.choice(["TRADES", "TRADES", "BID_ASK"]),
        end=rng.choice(["e1", "e2", "e3", "e4"]),
    )
    async with pacer.historical(k, priority):
        for _ in range(rng.randint(0, 5)):
            await asyncio.sleep(0)


SMALL = PacingRules(
    identical_window_s=15,
    same_contract_window_s=2,
    same_contract_max=5,
    rolling_window_s=10,
    rolling_max=1,
    max_open=50,
    messages_per_window=45,
)


async def _slow_then_next(first: RequestKey, second: RequestKey) -> list[tuple[str, float]]:
    """Release ``first``, queue ``second`` while it is open, answer ``first`` at t=12."""
    clock = ManualClock()
    releases: list[tuple[str, float]] = []
    pacer = Pacer(
        clock, rules=SMALL, on_grant=lambda e: releases.append((str(e.key.contract), e.at))
    )
    answered = asyncio.Event()

    async def slow() -> None:
        async with pacer.historical(first):
            await answered.wait()

    slow_task = asyncio.create_task(slow())
    await eventually(lambda: pacer.stats().open_requests == 1)
    next_task = asyncio.create_task(fetch(pacer, second))
    await eventually(lambda: pacer.stats().queue_depth == 1)
    clock.advance(12.0)  # past the first's release + window: still open, so still counted
    for _ in range(50):
        await asyncio.sleep(0)
    assert pacer.stats().queue_depth == 1 and len(releases) == 1
    answered.set()
    await asyncio.gather(slow_task, next_task)
    return releases


def test_pacer_times_the_rolling_window_from_completion_not_release() -> None:
    # IBKR times a request when it arrives; an answer that took 12 s means it may have
    # arrived as late as t=12, so the next request in a full window goes at 12 + 10.
    releases = run(_slow_then_next(key("A"), key("B")))
    assert releases == [("A", 0.0), ("B", pytest.approx(22.0))]


def test_pacer_times_the_identical_rule_from_completion_not_release() -> None:
    same = key("A", end="20240102 16:00:00 UTC")
    releases = run(_slow_then_next(same, same))
    assert releases == [
        ("A", 0.0),
        ("A", pytest.approx(27.0)),
    ]  # 12 + 15 s; the rolling window alone: 22
