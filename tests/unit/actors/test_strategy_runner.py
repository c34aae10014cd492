"""The strategy runner without Ray: a real catalog (SQLite and PostgreSQL) and bar store,
a plain fake bar feed and a recording order sink.

The runner's orders are checked against the backtester's own targets over the same bars
(``Strategy.target`` from the runner's anchor), so a wrong bar, a stale order or a
duplicate reference fails.
"""

from __future__ import annotations

import asyncio
import math
from decimal import Decimal

import pandas as pd
import pytest

import strategies
from actors.runner_state import order_ref
from actors.strategy_runner import StrategyRunner
from actors.stream_status import StreamBatch, StreamState, StreamStatus
from core.errors import OrderRejected, ValidationError
from core.types import Order, Side
from ibsim.contracts import default_world
from ibsim.market import Market
from storage.bars import BarStore
from storage.catalog import DeploymentStatus

AAPL = "AAPL.NASDAQ"
PARAMS = {"fast": 5, "slow": 20}
CAPITAL = 10_000


def _daily() -> pd.DataFrame:
    contract = default_world().get("AAPL")
    assert contract is not None
    daily = Market(seed=0).daily(contract)
    daily = daily.set_axis(daily.index.tz_localize("UTC").rename("ts"), axis=0)
    return daily.loc["2019-01-01":"2020-12-31"]


BARS = _daily()


class FakeFeed:
    """Streams whose bars the test pushes; every account the test names."""

    def __init__(self, accounts: tuple[str, ...] = ("DU1234567",)) -> None:
        self._accounts = list(accounts)
        self.queues: dict[str, list[pd.DataFrame]] = {}
        self.closed: list[str] = []

    async def open_stream(self, instrument: str, bar_size: str) -> str:
        stream_id = f"{instrument}/{bar_size}"
        self.queues.setdefault(stream_id, [])
        return stream_id

    async def poll_stream(self, stream_id: str) -> StreamBatch:
        frames, self.queues[stream_id] = self.queues[stream_id], []
        bars = pd.concat(frames) if frames else BARS.iloc[:0]
        return StreamBatch(bars=bars, status=_status(stream_id))

    async def close_stream(self, stream_id: str) -> None:
        self.closed.append(stream_id)

    async def accounts(self) -> list[str]:
        return list(self._accounts)

    def push(self, instrument: str, bars: pd.DataFrame) -> None:
        self.queues[f"{instrument}/1d"].append(bars)


def _status(stream_id: str) -> StreamStatus:
    return StreamStatus(
        stream_id=stream_id, instrument=AAPL, con_id=None, bar_size="1d",
        state=StreamState.LIVE, last_bar_at=None, updated_at=None, subscriptions=1,
        failures=0, error="", next_retry_at=None,
    )  # fmt: skip


class Sink:
    """Records every order; idempotent by order_ref like the order manager."""

    def __init__(self) -> None:
        self.submitted: list[Order] = []
        self.by_ref: dict[str, Order] = {}

    def submit(self, order: Order) -> None:
        self.submitted.append(order)
        self.by_ref.setdefault(order.order_ref, order)


class CrashingSink(Sink):
    """Takes the order, then the runner 'dies' before it can save its state."""

    def submit(self, order: Order) -> None:
        super().submit(order)
        raise RuntimeError("runner killed between the intent and saving its state")


class RefusingSink(Sink):
    def submit(self, order: Order) -> None:
        raise OrderRejected("refused by the risk manager")


class Rejected:
    """What the order manager answers for an order the risk manager refused."""

    rejected = True
    message = "max_position breached"


class RejectingSink(Sink):
    def submit(self, order: Order) -> Rejected:  # type: ignore[override]
        super().submit(order)
        return Rejected()


@pytest.fixture
def store(tmp_path) -> BarStore:
    return BarStore(tmp_path / "bars")


def _deploy(catalog, **kwargs):
    args = {"instruments": [AAPL], "params": PARAMS, "capital": CAPITAL, "account": "DU1234567"}
    return catalog.deployments.create("sma_cross", **{**args, **kwargs})


def _runner(catalog, store, dep, feed=None, sink=None) -> StrategyRunner:
    return StrategyRunner(
        dep.id, catalog=catalog, history=store, feed=feed or FakeFeed(), sink=sink or Sink()
    )


def _expected(dep_id: int, anchor: int, start: int, end: int) -> list[tuple[str, Side, Decimal]]:
    """The orders the backtest's targets ask for on bars start..end-1 (anchored at anchor)."""
    frame = BARS.iloc[anchor:end]
    target = strategies.get("sma_cross").target(frame, PARAMS)
    out, held, last = [], 0, 0.0
    for i in range(start - anchor, len(frame)):
        if target[i] == last:
            continue
        last = target[i]
        shares = int(math.copysign(math.floor(abs(last) * CAPITAL / frame.close.iloc[i]), last))
        if shares != held:
            side = Side.BUY if shares > held else Side.SELL
            out.append((order_ref(dep_id, AAPL, frame.index[i]), side, Decimal(abs(shares - held))))
        held = shares
    return out


def _orders(sink: Sink) -> list[tuple[str, Side, Decimal]]:
    return [(o.order_ref, o.side, o.quantity) for o in sink.submitted]


def _feed_bars(runner: StrategyRunner, feed: FakeFeed, start: int, end: int) -> None:
    async def go() -> None:
        for t in range(start, end):
            feed.push(AAPL, BARS.iloc[t : t + 1])
            assert await runner.step() == 1

    asyncio.run(go())


def test_runner_sends_the_backtests_target_changes_with_deterministic_refs(catalog, store):
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = _deploy(catalog)
    feed, sink = FakeFeed(), Sink()
    runner = _runner(catalog, store, dep, feed, sink)
    asyncio.run(runner.start(loop=False))
    assert catalog.deployments.get(dep.id).status is DeploymentStatus.RUNNING
    state = catalog.deployments.runner_state(dep.id)["instruments"][AAPL]
    assert pd.Timestamp(state["anchor"]) == BARS.index[200 - 20], "exactly the warm-up loaded"
    assert sink.submitted == [], "nothing is sent for history"
    _feed_bars(runner, feed, 200, 400)
    expected = _expected(dep.id, 180, 200, 400)
    assert len(expected) >= 4
    assert _orders(sink) == expected
    assert all(o.deployment_id == dep.id for o in sink.submitted)
    saved = catalog.deployments.runner_state(dep.id)["instruments"][AAPL]
    assert pd.Timestamp(saved["last_bar"]) == BARS.index[399]
    assert store.read(AAPL, "1d").index[-1] == BARS.index[399], "streamed bars are kept"


def test_pause_sends_nothing_and_resume_acts_on_the_next_change(catalog, store):
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = _deploy(catalog)
    feed, sink = FakeFeed(), Sink()
    runner = _runner(catalog, store, dep, feed, sink)
    asyncio.run(runner.start(loop=False))
    asyncio.run(runner.pause())
    assert catalog.deployments.get(dep.id).status is DeploymentStatus.PAUSED
    _feed_bars(runner, feed, 200, 400)
    assert sink.submitted == [], "paused: no orders, though the targets changed"
    asyncio.run(runner.resume())
    _feed_bars(runner, feed, 400, 500)
    # resumed from flat with nothing sent: the first bar acts if its target is not flat
    later = _expected(dep.id, 180, 400, 500)
    assert len(later) >= 2
    assert _orders(sink) == later


def test_stop_with_flatten_sends_the_order_that_zeroes_the_position(catalog, store):
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = _deploy(catalog)
    feed, sink = FakeFeed(), Sink()
    runner = _runner(catalog, store, dep, feed, sink)
    asyncio.run(runner.start(loop=False))
    end = next(e for e in range(201, 500) if _held(_expected(dep.id, 180, 200, e)) > 0)
    _feed_bars(runner, feed, 200, end)
    held = _held(_orders(sink))
    asyncio.run(runner.stop(flatten=True))
    last = sink.submitted[-1]
    assert (last.side, last.quantity) == (Side.SELL, held)
    assert last.order_ref == order_ref(dep.id, AAPL, BARS.index[end - 1], flat=True)
    assert catalog.deployments.get(dep.id).status is DeploymentStatus.STOPPED
    assert catalog.deployments.runner_state(dep.id)["instruments"][AAPL]["position"] == "0"
    assert feed.closed == [f"{AAPL}/1d"]


def _held(orders) -> Decimal:
    return sum((q if s is Side.BUY else -q for _, s, q in orders), Decimal(0))


def test_restart_catches_up_acting_on_the_newest_missed_bar_only(catalog, store):
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = _deploy(catalog)
    feed, sink = FakeFeed(), Sink()
    first = _runner(catalog, store, dep, feed, sink)
    asyncio.run(first.start(loop=False))
    _feed_bars(first, feed, 200, 300)
    before = len(sink.submitted)
    # down while bars 200..359 are collected into the store; then Ray restarts it
    store.write(AAPL, "1d", BARS.iloc[200:360])
    second = _runner(catalog, store, dep, FakeFeed(), sink)
    asyncio.run(second.ensure(loop=False))
    caught_up = sink.submitted[before:]
    assert len(caught_up) <= 1, "no stale order for every missed bar"
    full = strategies.get("sma_cross").target(BARS.iloc[180:360], PARAMS)
    assert full[300 - 180 - 1] != full[-1], "the data moves the target while it is down"
    assert (full[300 - 180 : -1] != full[-1]).any(), "and moves it on missed bars before"
    assert [o.order_ref for o in caught_up] == [order_ref(dep.id, AAPL, BARS.index[359])]
    refs = [o.order_ref for o in sink.submitted]
    assert len(refs) == len(set(refs)), "no order_ref twice"
    assert _held(_orders(sink)) == Decimal(
        math.floor(full[-1] * CAPITAL / BARS.close.iloc[359]) if full[-1] > 0 else 0
    )


def test_a_restart_between_intent_and_saved_state_resends_the_same_order_ref(catalog, store):
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = _deploy(catalog)
    feed, crashing = FakeFeed(), CrashingSink()
    first = _runner(catalog, store, dep, feed, crashing)
    asyncio.run(first.start(loop=False))
    first_order = _expected(dep.id, 180, 200, 400)[0][0]
    t = next(t for t in range(200, 400) if order_ref(dep.id, AAPL, BARS.index[t]) == first_order)
    with pytest.raises(RuntimeError, match="killed"):
        _feed_bars(first, feed, 200, t + 1)
    store.write(AAPL, "1d", BARS.iloc[200 : t + 1])  # the bar is in the store by now
    sink = Sink()
    sink.by_ref = dict(crashing.by_ref)  # the order manager already holds it
    second = _runner(catalog, store, dep, FakeFeed(), sink)
    asyncio.run(second.ensure(loop=False))
    assert [o.order_ref for o in sink.submitted] == [first_order], "the same ref again"
    assert list(sink.by_ref) == [first_order], "so it is placed once"


@pytest.mark.parametrize("sink", [RefusingSink, RejectingSink])
def test_a_refused_order_keeps_the_old_target_and_tries_on_the_next_change(catalog, store, sink):
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = _deploy(catalog)
    feed = FakeFeed()
    runner = _runner(catalog, store, dep, feed, sink())
    asyncio.run(runner.start(loop=False))
    _feed_bars(runner, feed, 200, 400)
    assert runner.rejected > 0 and runner.sent == []
    assert catalog.deployments.runner_state(dep.id)["instruments"][AAPL]["position"] == "0"


@pytest.mark.parametrize(
    ("mode", "account", "confirm", "field"),
    [
        ("paper", "U7654321", False, "account"),
        ("live", "DU1234567", True, "mode"),
        ("live", "U7654321", False, "mode"),
    ],
)
def test_mode_and_account_must_agree_before_anything_trades(catalog, store, mode, account,
                                                            confirm, field):  # fmt: skip
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = catalog.deployments.create(
        "sma_cross", instruments=[AAPL], params=PARAMS, capital=CAPITAL, mode=mode
    )
    runner = _runner(catalog, store, dep, FakeFeed(accounts=(account,)))
    with pytest.raises(ValidationError) as info:
        asyncio.run(runner.start(confirm_live=confirm, loop=False))
    assert info.value.field == field and mode in str(info.value)
    assert catalog.deployments.get(dep.id).status is DeploymentStatus.CREATED
    assert not runner.booted


def test_a_confirmed_live_deployment_on_a_live_account_starts_and_restarts(catalog, store):
    store.write(AAPL, "1d", BARS.iloc[:200])
    dep = _deploy(catalog, mode="live", account="U7654321")
    feed = FakeFeed(accounts=("U7654321",))
    asyncio.run(_runner(catalog, store, dep, feed).start(confirm_live=True, loop=False))
    again = _runner(catalog, store, dep, feed)
    asyncio.run(again.ensure(loop=False))  # a restart does not ask again
    assert again.booted


def test_an_account_the_gateway_does_not_report_is_refused(catalog, store):
    dep = _deploy(catalog, account="DU999")
    runner = _runner(catalog, store, dep, FakeFeed(accounts=("DU1234567",)))
    with pytest.raises(ValidationError, match="DU999") as info:
        asyncio.run(runner.start(loop=False))
    assert info.value.field == "account"
