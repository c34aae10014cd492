"""The strategy runner: one per deployment, trading the backtester's own strategy code.

:class:`StrategyRunner` is a plain class (tests drive it without Ray); :class:`RunnerHost`
builds it from settings inside a Ray actor, and :data:`StrategyRunnerActor` is that class
under ``ray.remote``, one named actor ``scizor-runner-<id>`` per deployment, restarted by
Ray after a crash (:func:`get_runner`).

What it does, bar by bar:

* At start it loads history from the bar store: exactly ``strategy.warmup(params)`` bars
  on the first start (its anchor), everything since its saved anchor on a restart; it
  subscribes to the gateway's bar stream of each instrument.
* Streamed bars are written to the bar store as they arrive, so a restarted runner reloads
  the same history from its anchor (bars the stream hands out again are not new).
* Each new completed bar goes through :class:`strategies.live.IncrementalEvaluator` (the
  same ``Strategy.target`` as ``run_backtest``). When the bar's target differs from the last
  one acted on (the engine's rule), the target is sized into whole shares of the
  instrument's share of the capital (:func:`strategies.live.target_shares`; capital split
  evenly over the instruments), and the difference from the intended position becomes a
  market :class:`core.types.Order` with the deterministic ``order_ref`` of
  :mod:`actors.runner_state`, sent to the order sink. Only then is the state saved in the
  catalog, so a crash between the two re-sends the same ``order_ref`` (the order manager
  drops it), never a new one.
* Catch-up rule: bars that arrive together (the ones missed while the runner was down, read
  from the bar store at restart, or a stream's first batch) all enter the history, but only
  the newest is acted on: no stale order is sent for a bar that is already past. Bars at or
  before the saved ``last_bar`` only refill the history.
* Paused: bars still enter the history (it must stay whole) but nothing is sent and the
  target and position are kept; the first bar after a resume acts if the target moved.
  Stopped: the streams are cancelled; ``flatten=True`` first sends the order that brings
  each position to zero (``order_ref`` ending ``-flat``).
* Mode: a paper deployment needs a paper account (``DU...``), a live one a live account and
  an explicit ``confirm_live=True`` at start (kept in the state, so a restart does not ask
  again). A restarted actor resumes at once (its constructor queues a call to itself), as
  its deployment's saved status says.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from decimal import Decimal
from typing import Any

import pandas as pd
import ray

from actors.gateway import NAMESPACE, get_gateway
from actors.runner_checks import check_mode, deployment_strategy
from actors.runner_io import (
    ActorSink,
    GatewayFeed,
    HistorySource,
    MarketFeed,
    OrderSink,
    submit_to,
)
from actors.runner_state import InstrumentState, RunnerState, order_ref
from core.errors import ScizorError, ValidationError
from core.settings import Settings
from core.types import Order, Side, TradingMode
from storage.catalog import Catalog, DeploymentRecord, DeploymentStatus
from strategies.base import Strategy
from strategies.live import IncrementalEvaluator, target_shares

log = logging.getLogger(__name__)


class StrategyRunner:
    """Trades one deployment (see the module docstring).

    Args:
        deployment_id: the deployment in ``catalog``.
        catalog: the catalog (deployment, status, runner state).
        history: the bar store.
        feed: live bars and accounts (the gateway).
        sink: where order intents go (the order manager).
        poll_interval: seconds between polls of the streams in the run loop.
    """

    def __init__(
        self,
        deployment_id: int,
        *,
        catalog: Catalog,
        history: HistorySource,
        feed: MarketFeed,
        sink: OrderSink,
        poll_interval: float = 1.0,
    ) -> None:
        self.deployment_id = deployment_id
        self._catalog, self._history, self._feed, self._sink = catalog, history, feed, sink
        self._poll_interval = poll_interval
        self._evaluators: dict[str, IncrementalEvaluator] = {}
        self._streams: dict[str, str] = {}
        self._state = RunnerState()
        self._pending: dict[str, tuple[Order | None, float, Decimal, pd.Timestamp]] = {}
        self._record: DeploymentRecord | None = None
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self.sent: list[str] = []
        self.rejected = 0
        self.errors = 0

    @property
    def booted(self) -> bool:
        """True while the runner holds its history and streams."""
        return self._record is not None

    async def start(self, *, confirm_live: bool = False, loop: bool = True) -> dict[str, Any]:
        """Start (or restart) the deployment: check it, load history, catch up, subscribe.

        Args:
            confirm_live: the explicit confirmation a live deployment needs.
            loop: run the polling loop in the background (tests call :meth:`step`).

        Raises:
            NotFound: no such deployment.
            Conflict: its status cannot move to running.
            ValidationError: naming ``mode``, ``account`` or ``capital`` when it cannot
                trade as specified.
        """
        if not self.booted:
            await self._boot(confirm_live=confirm_live)
        self._catalog.deployments.set_status(self.deployment_id, DeploymentStatus.RUNNING)
        self._paused = False
        if loop:
            self._spawn()
        return self.status()

    async def ensure(self, *, loop: bool = True) -> None:
        """Resume after a restart when the saved status is running or paused."""
        if self.booted:
            return
        status = self._catalog.deployments.get(self.deployment_id).status
        if status in (DeploymentStatus.RUNNING, DeploymentStatus.PAUSED):
            self._paused = status == DeploymentStatus.PAUSED
            await self._boot(confirm_live=False)
            if loop:
                self._spawn()

    async def pause(self) -> dict[str, Any]:
        """Stop sending orders (bars still enter the history; positions are kept)."""
        self._catalog.deployments.set_status(self.deployment_id, DeploymentStatus.PAUSED)
        self._paused = True
        return self.status()

    async def resume(self) -> dict[str, Any]:
        """Send orders again from the next bar on."""
        self._catalog.deployments.set_status(self.deployment_id, DeploymentStatus.RUNNING)
        self._paused = False
        return self.status()

    async def stop(self, *, flatten: bool = False) -> dict[str, Any]:
        """Stop: cancel the loop and the streams; ``flatten`` first zeroes every position."""
        if not self.booted:  # flatten what the saved state holds
            record = self._catalog.deployments.get(self.deployment_id)
            self._state = RunnerState.from_json(record.runner_state)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if flatten:
            for instrument, st in self._state.instruments.items():
                await self._flatten(instrument, st)
            self._save()
        for stream_id in self._streams.values():
            with contextlib.suppress(ScizorError):
                await self._feed.close_stream(stream_id)
        self._streams.clear()
        self._record = None
        self._catalog.deployments.set_status(self.deployment_id, DeploymentStatus.STOPPED)
        return self.status()

    def status(self) -> dict[str, Any]:
        """Return the runner's view: paused, the state, intents sent, errors."""
        return {
            "deployment_id": self.deployment_id,
            "running": self.booted,
            "paused": self._paused,
            "state": self._state.to_json(),
            "sent": list(self.sent),
            "rejected": self.rejected,
            "errors": self.errors,
        }

    async def step(self) -> int:
        """Poll every stream once and process its new bars; return how many arrived."""
        for instrument in list(self._pending):
            await self._send(instrument)
        arrived = 0
        for instrument, stream_id in list(self._streams.items()):
            batch = await self._feed.poll_stream(stream_id)
            if len(batch.bars):
                arrived += len(batch.bars)
                await self._keep(instrument, batch.bars)
                await self.on_bars(instrument, batch.bars)
        return arrived

    async def _keep(self, instrument: str, bars: pd.DataFrame) -> None:
        """Write streamed bars to the bar store, so a restart reloads its whole history."""
        assert self._record is not None
        try:
            await asyncio.to_thread(self._history.write, instrument, self._record.bar_size, bars)
        except ScizorError as exc:  # the bars still trade; a restart may then miss them
            self.errors += 1
            log.warning("deployment %s: cannot store %s bars: %s", self.deployment_id,
                        instrument, exc)  # fmt: skip

    async def on_bars(self, instrument: str, bars: pd.DataFrame) -> Order | None:
        """Process completed bars of one instrument (acting on the newest only).

        Returns:
            The order sent, or None.
        """
        ev, st = self._evaluators[instrument], self._state.instruments[instrument]
        target = ev.extend(bars)
        if target is None:
            return None
        st.anchor = st.anchor or ev.anchor
        bar_time = ev.last_time
        assert bar_time is not None
        if st.last_bar is not None and bar_time <= st.last_bar:
            return None  # history refilled: this bar was processed before
        order = None
        if ev.ready and not self._paused and target != st.target:
            order = self._intent(instrument, st, target, ev, bar_time)
            await self._send(instrument)
        st.last_bar = bar_time
        self._save()
        return order

    # --- internals ----------------------------------------------------------------------

    async def _boot(self, *, confirm_live: bool) -> None:
        record = self._catalog.deployments.get(self.deployment_id)
        strategy = deployment_strategy(record)
        if record.capital is None:
            raise ValidationError(
                f"deployment {record.id} has no capital; create it with capital > 0",
                field="capital",
            )
        account = await self._account(record)
        state = RunnerState.from_json(record.runner_state)
        check_mode(record.mode, account, confirm_live=confirm_live or state.live_confirmed)
        state.live_confirmed = record.mode == TradingMode.LIVE
        self._state, self._record = state, record
        try:
            for instrument in record.instruments:
                st = state.instruments.setdefault(instrument, InstrumentState())
                self._evaluators[instrument] = self._load(strategy, record, instrument, st)
            for instrument in list(self._pending):  # the catch-up's intents
                await self._send(instrument)
            self._save()
            for instrument in record.instruments:
                stream = await self._feed.open_stream(instrument, record.bar_size)
                self._streams[instrument] = stream
        except BaseException:
            self._record = None  # not booted: the next call tries again from the catalog
            self._pending.clear()
            raise

    async def _account(self, record: DeploymentRecord) -> str:
        accounts = await self._feed.accounts()
        if record.account:
            if record.account not in accounts:
                raise ValidationError(
                    f"account {record.account!r} is not one the gateway reports "
                    f"({', '.join(accounts) or 'none'}); set the deployment's account to one",
                    field="account",
                )
            return record.account
        if len(accounts) != 1:
            raise ValidationError(
                f"the gateway reports accounts {accounts}: name one as the deployment's account",
                field="account",
            )
        return accounts[0]

    def _load(
        self, strategy: Strategy, record: DeploymentRecord, instrument: str, st: InstrumentState
    ) -> IncrementalEvaluator:
        ev = IncrementalEvaluator(strategy, record.params)
        if st.anchor is None:  # first start: exactly the warm-up, nothing acted on
            stored = self._history.read(instrument, record.bar_size)
            if ev.warmup and len(stored):
                ev.extend(stored.iloc[-ev.warmup :])
                st.anchor, st.last_bar = ev.anchor, ev.last_time
            return ev
        stored = self._history.read(instrument, record.bar_size, start=st.anchor)
        if st.last_bar is None:
            ev.extend(stored)
            return ev
        seen = stored[stored.index <= st.last_bar]
        missed = stored[stored.index > st.last_bar]
        if len(seen):
            ev.extend(seen)
        if len(missed):  # catch up: all enter the history, the newest alone may trade
            target = ev.extend(missed)
            bar_time = ev.last_time
            assert target is not None and bar_time is not None
            if ev.ready and not self._paused and target != st.target:
                self._intent(instrument, st, target, ev, bar_time)
            st.last_bar = bar_time
        return ev

    def _intent(
        self,
        instrument: str,
        st: InstrumentState,
        target: float,
        ev: IncrementalEvaluator,
        bar_time: pd.Timestamp,
    ) -> Order | None:
        """Queue the order that moves the intended position to ``target``'s shares."""
        assert self._record is not None and self._record.capital is not None
        capital = float(self._record.capital) / len(self._record.instruments)
        price = ev.last_close
        assert price is not None
        shares = Decimal(target_shares(target, price=price, capital=capital))
        delta = shares - st.position
        order = None
        if delta:
            order = Order(
                instrument=instrument,
                side=Side.BUY if delta > 0 else Side.SELL,
                quantity=abs(delta),
                order_ref=order_ref(self.deployment_id, instrument, bar_time),
                deployment_id=self.deployment_id,
            )
        self._pending[instrument] = (order, target, shares, bar_time)
        return order

    async def _send(self, instrument: str) -> None:
        """Send the queued intent; the state moves only once the sink has it."""
        order, target, shares, bar_time = self._pending[instrument]
        st = self._state.instruments[instrument]
        if order is not None:
            try:
                answer = await submit_to(self._sink, order)
            except ScizorError as exc:  # refused (risk, validation): keep the old state
                refused, why = True, str(exc)
            else:  # the order manager answers a Submission whose .rejected says so
                refused = getattr(answer, "rejected", False) is True
                why = str(getattr(answer, "message", "") or "rejected")
            if refused:
                del self._pending[instrument]
                self.rejected += 1
                log.warning("deployment %s: %s refused: %s", self.deployment_id, order, why)
                return
            self.sent.append(order.order_ref)
        del self._pending[instrument]
        st.target, st.position = target, shares
        st.last_bar = max(st.last_bar, bar_time) if st.last_bar is not None else bar_time
        self._save()

    async def _flatten(self, instrument: str, st: InstrumentState) -> None:
        if not st.position or st.last_bar is None:
            return
        order = Order(
            instrument=instrument,
            side=Side.SELL if st.position > 0 else Side.BUY,
            quantity=abs(st.position),
            order_ref=order_ref(self.deployment_id, instrument, st.last_bar, flat=True),
            deployment_id=self.deployment_id,
        )
        self._pending[instrument] = (order, 0.0, Decimal(0), st.last_bar)
        await self._send(instrument)

    def _save(self) -> None:
        self._catalog.deployments.save_runner_state(self.deployment_id, self._state.to_json())

    def _spawn(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # the actor's top-level loop: log, count, keep going
                self.errors += 1
                log.exception("deployment %s: a step failed", self.deployment_id)
            await asyncio.sleep(self._poll_interval)


class RunnerHost:
    """The runner of one deployment inside its Ray actor, built from the settings.

    Every method first resumes a runner that Ray restarted (:meth:`StrategyRunner.ensure`).

    Args:
        deployment_id: the deployment.
        settings: SCIZOR settings (catalog URL, bar store).
        gateway: the gateway actor's handle.
        sink: the order sink actor's handle (one with ``submit(order)``).
        poll_interval: seconds between polls of the streams.
    """

    def __init__(
        self,
        deployment_id: int,
        settings: Settings,
        gateway: Any,
        sink: Any,
        poll_interval: float = 1.0,
    ) -> None:
        from storage.bars import BarStore

        self._catalog = Catalog(settings.db.url)
        self._runner = StrategyRunner(
            deployment_id,
            catalog=self._catalog,
            history=BarStore(settings.storage.bar_store),
            feed=GatewayFeed(gateway),
            sink=ActorSink(sink),
            poll_interval=poll_interval,
        )
        with contextlib.suppress(RuntimeError):  # outside an actor (a test): no self-call
            # A call to itself, queued until the constructor returns: a runner Ray restarted
            # resumes at once, without waiting for someone to call it.
            ray.get_runtime_context().current_actor.status.remote()

    async def start(self, confirm_live: bool = False) -> dict[str, Any]:
        """See :meth:`StrategyRunner.start`."""
        await self._runner.ensure()
        return await self._runner.start(confirm_live=confirm_live)

    async def pause(self) -> dict[str, Any]:
        """See :meth:`StrategyRunner.pause`."""
        await self._runner.ensure()
        return await self._runner.pause()

    async def resume(self) -> dict[str, Any]:
        """See :meth:`StrategyRunner.resume`."""
        await self._runner.ensure()
        return await self._runner.resume()

    async def stop(self, flatten: bool = False) -> dict[str, Any]:
        """See :meth:`StrategyRunner.stop`."""
        await self._runner.ensure()
        return await self._runner.stop(flatten=flatten)

    async def status(self) -> dict[str, Any]:
        """See :meth:`StrategyRunner.status` (resumes a restarted runner first), with the
        actor's process id as ``pid`` (a restart changes it)."""
        await self._runner.ensure()
        return {**self._runner.status(), "pid": os.getpid()}


StrategyRunnerActor = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(RunnerHost)


def runner_name(deployment_id: int) -> str:
    """Return the Ray actor name of a deployment's runner."""
    return f"scizor-runner-{deployment_id}"


def get_runner(
    deployment_id: int,
    settings: Settings,
    *,
    gateway: Any = None,
    sink: Any = None,
    poll_interval: float = 1.0,
    namespace: str = NAMESPACE,
) -> Any:
    """Return the handle of a deployment's runner actor, creating it if it does not exist.

    Args:
        deployment_id: the deployment.
        settings: SCIZOR settings.
        gateway: the gateway's handle (default: :func:`actors.gateway.get_gateway`).
        sink: the order sink's handle (default: the order manager,
            ``actors.order_actor.get_order_manager(settings)``).
        poll_interval: seconds between polls of the streams.
        namespace: Ray namespace of the actor.
    """
    if gateway is None:
        gateway = get_gateway(settings)
    if sink is None:  # the order manager's module is another part's: looked up at run time
        sink = importlib.import_module("actors.order_actor").get_order_manager(settings)
    options = {
        "name": runner_name(deployment_id),
        "namespace": namespace,
        "lifetime": "detached",
        "get_if_exists": True,
    }
    return StrategyRunnerActor.options(**options).remote(
        deployment_id, settings, gateway, sink, poll_interval
    )
