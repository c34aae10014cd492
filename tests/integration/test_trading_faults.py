"""Trading under faults, on the session's Ray cluster against ibsim over TCP: the kill switch
acting on its own (and staying halted through restarts), a gateway Ray restarted pushing to
the order manager again by itself, and a runner killed between its intent and the fill.

ibsim's time is a ManualClock, so prices move, bars complete and orders fill only when a test
moves it. The actors get names unique to each test (the runner's is its deployment's), and
every actor a test made is killed at its end.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.deployments import DeploymentSpec, create_deployment
from actors.gateway import get_gateway
from actors.ib_connection import Backoff
from actors.order_actor import get_order_manager
from actors.risk_actor import get_risk_manager
from actors.strategy_runner import get_runner, runner_name
from core.clock import ManualClock
from core.settings import Settings
from core.types import Order, OrderStatus, OrderType, Side
from ibsim.server import IBSim
from ibsim.testing import eventually, running_ibsim
from storage.catalog import Catalog, DeploymentStatus

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a Tuesday, NASDAQ open
NAMESPACE = "scizor-test"
MSFT = "MSFT.NASDAQ"
T = 120  # seconds any one wait may take on a loaded machine
_client_ids = iter(range(8100, 9000, 10))


@dataclass
class Desk:
    settings: Settings
    names: dict[str, str]
    gateway: Any
    risk: Any
    om: Any
    catalog: Catalog
    actors: list[Any]
    om_options: dict[str, Any]

    def start_risk_and_om(self) -> None:
        """Create (or look up) the risk manager and the order manager from the catalog."""
        where = {"namespace": NAMESPACE}
        self.risk = get_risk_manager(self.settings, name=self.names["risk_name"], **where)
        self.om = get_order_manager(self.settings, name=self.names["om"], **where,
                                    gateway_name=self.names["gateway_name"],
                                    risk_name=self.names["risk_name"],
                                    **self.om_options)  # fmt: skip
        self.actors += [self.risk, self.om]


def call(ref: Any) -> Any:
    import ray

    return ray.get(ref, timeout=T)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


def make_desk(
    sim: IBSim, catalog_url: str, tmp_path: Path, limits: dict[str, str], **om_options: Any
) -> Desk:
    env = {"SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": catalog_url,
           "SCIZOR_BAR_STORE": str(tmp_path / "bars"), "SCIZOR_IB_HOST": "127.0.0.1",
           "SCIZOR_IB_PORT": str(sim.port),
           "SCIZOR_IB_CLIENT_ID": str(next(_client_ids))}  # fmt: skip
    settings = Settings.from_env(env)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    names = {"gateway_name": f"gw-{tag}", "risk_name": f"risk-{tag}", "om": f"om-{tag}"}
    gateway = get_gateway(settings, name=names["gateway_name"], namespace=NAMESPACE,
                          subscribers=[names["om"]], backoff=Backoff(initial=0.05, cap=0.5),
                          request_timeout=20)  # fmt: skip
    desk = Desk(settings=settings, names=names, gateway=gateway, risk=None, om=None,
                catalog=Catalog(catalog_url), actors=[gateway], om_options=om_options)  # fmt: skip
    desk.start_risk_and_om()
    call(desk.risk.set_limits.remote("global", {"max_order_quantity": "5000", **limits}, "test"))
    assert call(desk.om.stats.remote())["reconciles"] >= 1  # subscribed, reconciled, observed
    return desk


def close(desk: Desk) -> None:
    import ray

    for actor in reversed(desk.actors):
        ray.kill(actor, no_restart=True)
    desk.catalog.dispose()


def market(side: Side, quantity: Decimal, ref: str) -> Order:
    return Order(instrument=MSFT, side=side, quantity=quantity, order_ref=ref)


def sim_orders(sim: IBSim, order_ref: str) -> list[Any]:
    """ibsim's own record of the orders it received under ``order_ref``."""
    return [o for o in list(sim.broker.orders.values()) if o.order_ref == order_ref]


def gone(name: str) -> bool:
    """True once no live actor has ``name`` (a killed actor's name is free again)."""
    import ray

    try:
        ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        return True
    return False


def filled(desk: Desk, order_ref: str) -> bool:
    record = desk.catalog.orders.get(order_ref)
    return record.status == OrderStatus.FILLED


def halted(desk: Desk) -> bool:
    import ray

    try:
        return bool(ray.get(desk.risk.state.remote(), timeout=30)["state"] == "HALTED")
    except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
        return False  # Ray is restarting it


def falling_minute(sim: IBSim, symbol: str) -> tuple[int, float, float]:
    """The minute within two hours where ``symbol``'s bid is lowest: (minutes, ask now, bid)."""
    info = sim.world.get(symbol)
    assert info is not None
    now = sim.clock.now()
    bids = {k: sim.market.quote(info, now + timedelta(minutes=k)).bid for k in range(1, 121)}
    minute = min(bids, key=lambda k: bids[k])
    return minute, sim.market.quote(info, now).ask, bids[minute]


def test_the_kill_switch_halts_on_a_loss_pauses_runners_cancels_orders_and_stays_halted(
    ray_session: None, clock: ManualClock, catalog_url: str, tmp_path: Path
) -> None:
    with running_ibsim(clock=clock) as sim:
        shares = Decimal(1000)  # one execution (ibsim's fill chunk)
        minute, ask, low_bid = falling_minute(sim, "MSFT")
        commission = max(1.0, 0.005 * float(shares))
        buy_loss = float(shares) * ask * 0.0002 + commission  # the spread and one commission
        sell_loss = float(shares) * (ask - low_bid) + 2 * commission  # buy now, sell at the low
        assert sell_loss > 4 * buy_loss, (sell_loss, buy_loss)  # the market falls for sure
        limit = Decimal(round((buy_loss + sell_loss) / 2, 2))
        desk = make_desk(sim, catalog_url, tmp_path, {"max_daily_loss": str(limit)})
        try:
            _halts_and_stays_halted(desk, sim, clock, shares=shares, minute=minute, limit=limit)
        finally:
            close(desk)


def _start_runner(desk: Desk, **spec: Any) -> tuple[int, Any]:
    record = create_deployment(desk.catalog, DeploymentSpec(**spec))
    runner = get_runner(record.id, desk.settings, gateway=desk.gateway, sink=desk.om,
                        poll_interval=0.5, namespace=NAMESPACE)  # fmt: skip
    desk.actors.append(runner)
    assert call(runner.start.remote(False))["running"]
    return record.id, runner


def _halts_and_stays_halted(
    desk: Desk, sim: IBSim, clock: ManualClock, *, shares: Decimal, minute: int, limit: Decimal
) -> None:
    import ray

    # a running deployment (its strategy never ready in the test: it sends nothing itself)
    deployment, runner = _start_runner(
        desk, strategy="sma_cross", params={"fast": 100, "slow": 200}, instruments=[MSFT],
        capital=10_000, bar_size="5m",
    )  # fmt: skip
    resting = Order(instrument=MSFT, side=Side.BUY, quantity=Decimal(1), order_ref="ks-resting",
                    order_type=OrderType.LIMIT, limit_price=Decimal(1))  # fmt: skip
    assert call(desk.om.submit.remote(resting)).sent
    assert call(desk.om.submit.remote(market(Side.BUY, shares, "ks-buy"))).sent
    eventually(lambda: filled(desk, "ks-buy"), timeout=T)
    assert not halted(desk)  # the spread and a commission are within the limit

    sim.call(lambda: clock.advance(60 * minute))  # the market falls
    assert call(desk.om.submit.remote(market(Side.SELL, shares, "ks-sell"))).sent
    # nobody but the order manager's own fill handling acts from here
    eventually(lambda: filled(desk, "ks-sell"), timeout=T)
    eventually(lambda: halted(desk), timeout=T)
    [row] = desk.catalog.risk.events(kind="halted")
    assert row.limit_name == "max_daily_loss" and "exceeds max_daily_loss" in row.detail["reason"]
    state = call(desk.risk.state.remote())
    loss = Decimal(state["marks"]["day_start_equity"]) - Decimal(state["marks"]["equity"])
    assert loss > limit

    def reacted() -> Any:
        rows = desk.catalog.risk.events(kind="halt_actions")
        return rows[0] if rows else None

    actions = eventually(reacted, timeout=T)
    assert actions.detail["paused"] == [deployment]
    assert actions.detail["cancelled"] == ["ks-resting"] and actions.detail["failures"] == []
    cancelled = OrderStatus.CANCELLED  # IB's confirmation is pushed after PendingCancel
    eventually(lambda: desk.catalog.orders.get("ks-resting").status == cancelled, timeout=T)
    assert all(o.is_done for o in sim_orders(sim, "ks-resting"))
    assert desk.catalog.deployments.get(deployment).status is DeploymentStatus.PAUSED
    eventually(lambda: call(runner.status.remote())["paused"], timeout=T)
    stats = call(desk.om.stats.remote())
    assert stats["equity_source"] == "net_liquidation" and len(stats["halts"]) == 1
    refused = call(desk.om.submit.remote(market(Side.BUY, Decimal(1), "ks-after")))
    assert refused.rejected and sim_orders(sim, "ks-after") == []

    # the risk manager crashes: Ray restarts it from the catalog, still halted
    ray.kill(desk.risk, no_restart=False)
    eventually(lambda: halted(desk), timeout=T, interval=0.5)

    # a platform restart: order manager, risk manager and runner gone for good, made again
    for actor in (desk.om, desk.risk, runner):
        ray.kill(actor, no_restart=True)
    for name in (desk.names["om"], desk.names["risk_name"], runner_name(deployment)):
        eventually(lambda n=name: gone(n), timeout=T)
    placed = len(sim.broker.orders)
    desk.start_risk_and_om()
    runner = get_runner(deployment, desk.settings, gateway=desk.gateway, sink=desk.om,
                        poll_interval=0.5, namespace=NAMESPACE)  # fmt: skip
    desk.actors.append(runner)
    assert halted(desk)
    status = call(runner.status.remote())
    assert status["running"] and status["paused"]  # booted paused, as the catalog says
    refused = call(desk.om.submit.remote(market(Side.BUY, Decimal(1), "ks-restarted")))
    assert refused.rejected and not refused.sent and "halted" in refused.message.lower()
    assert len(sim.broker.orders) == placed  # nothing new reached ibsim while halted

    call(desk.risk.reset.remote("admin", True))  # the admin resets (the day's loss rebased)
    assert not halted(desk)
    after = call(desk.om.submit.remote(market(Side.BUY, Decimal(1), "ks-reset")))
    assert after.sent and not after.rejected and len(sim_orders(sim, "ks-reset")) == 1


def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'scizor.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.dispose()
    return url


def bar_cap(sim: IBSim, participation: float) -> Decimal:
    """What one order may take of MSFT's current one-minute bar."""
    info = sim.world.get("MSFT")
    assert info is not None
    quote = sim.market.quote(info, sim.clock.now())
    return min(Decimal(1000), Decimal(int(participation * quote.bar_volume)))


def stored_quantity(desk: Desk, order_ref: str) -> Decimal:
    fills = desk.catalog.executions.list(order_ref=order_ref)
    assert len(fills) == len({f.exec_id for f in fills})  # never a duplicate row
    return sum((f.quantity for f in fills), Decimal(0))


def sim_executions(sim: IBSim, order_ref: str) -> dict[str, Decimal]:
    return {e.exec_id: e.shares for e in list(sim.broker.executions) if e.order_ref == order_ref}


def test_a_gateway_ray_restarted_pushes_fills_to_the_order_manager_by_itself(
    ray_session: None, clock: ManualClock, tmp_path: Path
) -> None:
    import ray

    with running_ibsim(clock=clock, participation=0.01) as sim:
        desk = make_desk(sim, sqlite_url(tmp_path), tmp_path, {})
        try:
            cap = bar_cap(sim, 0.01)
            assert cap >= 10, cap
            quantity = cap * 5  # a bar's share now, the rest over the next bars
            assert call(desk.om.submit.remote(market(Side.BUY, quantity, "gw-restart"))).sent
            eventually(lambda: stored_quantity(desk, "gw-restart") == cap, timeout=T)
            before = call(desk.om.stats.remote())

            ray.kill(desk.gateway, no_restart=False)  # Ray restarts it: a new process
            # the new gateway subscribes the order manager and says it is connected: the
            # order manager reconciles (nothing was missed yet: the clock has not moved)
            eventually(lambda: call(desk.om.stats.remote())["reconciles"] > before["reconciles"],
                       timeout=T, interval=0.2)  # fmt: skip
            eventually(lambda: len(sim.sessions) == 1, timeout=T)
            connected = call(desk.om.stats.remote())
            assert connected["recovered_fills"] == before["recovered_fills"]

            for bar in (2, 3):  # ibsim fills the rest; nobody calls submit or reconcile
                sim.call(lambda: clock.advance(60))
                eventually(lambda b=bar: len(sim_executions(sim, "gw-restart")) == b, timeout=T)
                done = sum(sim_executions(sim, "gw-restart").values())  # each bar's own share
                eventually(lambda d=done: stored_quantity(desk, "gw-restart") == d, timeout=T)
            assert not filled(desk, "gw-restart")
            after = call(desk.om.stats.remote())
            assert after["reconciles"] == connected["reconciles"]  # pushed, not reconciled
            assert after["recovered_fills"] == before["recovered_fills"]
            assert after["push_failures"] == 0
            fills = desk.catalog.executions.list(order_ref="gw-restart")
            assert {f.exec_id: f.quantity for f in fills} == sim_executions(sim, "gw-restart")
        finally:
            close(desk)


def test_a_runner_killed_between_its_intent_and_the_fill_sends_the_order_once(
    ray_session: None, clock: ManualClock, catalog_url: str, tmp_path: Path
) -> None:

    with running_ibsim(clock=clock, participation=0.01) as sim:
        # no quote before the risk check: the order is stored before anything reaches ibsim
        desk = make_desk(sim, catalog_url, tmp_path, {}, quotes=False)
        try:
            _runner_killed_in_flight(desk, sim, clock)
        finally:
            close(desk)


def _runner_killed_in_flight(desk: Desk, sim: IBSim, clock: ManualClock) -> None:
    import ray

    info = sim.world.get("MSFT")
    assert info is not None
    price = Decimal(str(sim.market.quote(info, clock.now()).ask))
    capital = price * bar_cap(sim, 0.01) * Decimal("3.5")  # fills over four one-minute bars
    record = create_deployment(desk.catalog, DeploymentSpec(
        strategy="buy_hold", instruments=[MSFT], capital=capital, bar_size="5m"))  # fmt: skip
    for status in (DeploymentStatus.RUNNING, DeploymentStatus.PAUSED):
        desk.catalog.deployments.set_status(record.id, status)  # it boots paused: no intent
    runner = get_runner(record.id, desk.settings, gateway=desk.gateway, sink=desk.om,
                        poll_interval=10.0, namespace=NAMESPACE)  # fmt: skip
    desk.actors.append(runner)

    def saved_bar() -> Any:
        state = desk.catalog.deployments.runner_state(record.id) or {}
        return (state.get("instruments", {}).get(MSFT) or {}).get("last_bar")

    eventually(saved_bar, timeout=T, interval=0.2)  # the first batch is history, nothing sent
    pid = call(runner.status.remote())["pid"]
    watch = call(desk.gateway.stream_bars.remote(MSFT, "5m"))  # the test's own stream
    first = eventually(lambda: call(desk.gateway.stream_status.remote(watch)).last_bar_at,
                       timeout=T)  # fmt: skip
    assert call(runner.resume.remote())["paused"] is False

    sim.call(lambda: clock.advance(310))  # a 5-minute bar completes: buy_hold buys
    eventually(lambda: call(desk.gateway.stream_status.remote(watch)).last_bar_at > first,
               timeout=T)  # fmt: skip
    sim.stall(15)  # ibsim reads nothing: the order the runner sends next stays in flight

    def intent() -> Any:
        orders = desk.catalog.orders.list(deployment_id=record.id)
        return orders[0] if orders else None

    stored = eventually(intent, timeout=14, interval=0.05)
    ref = stored.order_ref
    assert stored.status == OrderStatus.PENDING_SUBMIT and sim_orders(sim, ref) == []
    bar_before = saved_bar()
    ray.kill(runner, no_restart=False)  # between the intent and the fill: Ray restarts it
    # Nobody calls the restarted runner while it boots (StrategyRunner.ensure is not
    # serialized: a call meanwhile boots it a second time, concurrently); its boot waits
    # behind the first submit. The dead process never saved the bar: the new one does.
    try:
        eventually(lambda: saved_bar() != bar_before, timeout=2 * T, interval=0.5)
    except AssertionError as exc:  # say where the restarted runner stands
        state = desk.catalog.deployments.runner_state(record.id)
        raise AssertionError(f"{exc}; saved {state}; om {call(desk.om.stats.remote())}; "
                             f"runner {call(runner.status.remote())}") from None  # fmt: skip
    status = call(runner.status.remote())
    assert status["pid"] != pid
    # the new process re-derived the same order_ref from the catalog and sent it again; the
    # order manager kept the first and dropped this one
    assert status["sent"] == [ref] and not status["paused"]
    assert len(desk.catalog.orders.list()) == 1
    eventually(lambda: sim_orders(sim, ref), timeout=T)  # once ibsim answers again
    assert len(sim_orders(sim, ref)) == 1
    shares = stored.order.quantity
    for _ in range(12):  # each minute bar fills its share (less as volume thins)
        if sum(sim_executions(sim, ref).values()) >= shares:  # ibsim's word, not the catalog's
            break  # (whose Filled status may still be on its way)
        fills = len(sim_executions(sim, ref))
        sim.call(lambda: clock.advance(60))
        eventually(lambda n=fills: len(sim_executions(sim, ref)) > n, timeout=T)
        eventually(lambda: stored_quantity(desk, ref) == sum(sim_executions(sim, ref).values()),
                   timeout=T)  # fmt: skip
    eventually(lambda: filled(desk, ref), timeout=T)
    assert len(sim_orders(sim, ref)) == 1 and stored_quantity(desk, ref) == shares
    [position] = call(desk.om.positions.remote())
    broker = {p.instrument: p.quantity for p in call(desk.gateway.positions.remote())}
    assert broker == {MSFT: shares} == {position.instrument: position.quantity}
    report = call(desk.om.reconcile.remote())
    assert report.clean and report.recovered == ()
    state = call(runner.status.remote())["state"]["instruments"][MSFT]
    assert Decimal(state["position"]) == shares
