"""Parity: replay stored bars through ibsim into a paper deployment and compare its trades
with a backtest of the same strategy on the same bars.

:func:`check_parity` does both sides and compares them (:mod:`actors.parity_trades`):

* **Backtest**: :func:`actors.parity_trades.backtest_trades` on the stored bars, with the
  conventions the live path reproduces (``next_open`` fills, the runner's sizing, IBKR
  commissions).
* **Paper**: a throwaway world, so the operator's trading state is never touched: a fresh
  SQLite catalog and bar store in a temporary directory, an ibsim (in a thread of this
  process, over TCP) replaying the same bars with ``bar_quotes=True`` and a
  :class:`core.clock.ManualClock`, and its own gateway, risk-manager and order-manager Ray
  actors (unique names in the ``scizor-parity`` namespace, killed at the end) on the cluster
  this process is connected to. The deployment is created in that catalog as a paper
  deployment and traded by the real :class:`actors.strategy_runner.StrategyRunner` (plain
  class, in this process) whose feed is a :class:`ReplayFeed` and whose sink is the order
  manager actor.

Who drives the clock: this function, never a timer. For each bar after the warm-up (which
is preloaded into the runner's bar store, as a deployment's first start loads it) it moves
ibsim's clock to a minute after that session's close, hands the bar to the runner and steps
it once; the runner evaluates it and sends its market order through the order manager,
risk manager and gateway to ibsim, where it waits (the market is closed). The clock then
moves to the next session's open, where ibsim's bar quote is that session's open with no
spread, so the order fills there, and the replay waits until the fill has reached the
order manager's catalog before the next bar. A signal on the last bar has no next open on
either side: its order stays unfilled.

Limits: daily bars (``1d``) only; instruments ibsim knows (its bundled world), on one
exchange calendar; run it on the node that hosts the head's actors (the replay's ibsim
listens on 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actors.deployments import DeploymentSpec, create_deployment, resolve_strategy
from actors.gateway import get_gateway
from actors.order_actor import get_order_manager
from actors.parity_io import ReplayFeed, ReplayHistory
from actors.parity_trades import (
    Divergence,
    ParityResult,
    Trade,
    backtest_trades,
    compare_trades,
    paper_trades,
)
from actors.risk_actor import get_risk_manager
from actors.runner_io import ActorSink, GatewayFeed, HistorySource
from actors.strategy_runner import StrategyRunner
from core.clock import ManualClock
from core.errors import DataError, ValidationError
from core.instruments import parse
from core.settings import Settings
from core.types import OrderStatus
from ibsim.contracts import ContractInfo, default_world
from ibsim.market import calendar_schedule
from ibsim.testing import running_ibsim
from storage.catalog import Catalog
from strategies.base import Strategy
from strategies.costs import CommissionSpec

__all__ = [
    "Divergence",
    "ParityResult",
    "ParitySpec",
    "ReplayFeed",
    "ReplayHistory",
    "Trade",
    "check_parity",
    "spec_from_deployment",
]

NAMESPACE = "scizor-parity"
ACCOUNT_CASH = 1_000_000.0
"""The simulated account's cash (and the backtest's): buying power never binds."""
FILL_TIMEOUT_S = 60.0
"""How long the replay waits for an order's fills to reach the catalog."""
AFTER_CLOSE_S = 60
"""Seconds after a session's close at which its bar is handed to the runner."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ParitySpec:
    """What to compare.

    Attributes:
        strategy: a library strategy's name, or a rule-spec document.
        instruments: canonical instrument ids.
        start, end: the first and last bar dates (both included).
        params: the strategy's parameters.
        bar_size: the bars (``1d`` only).
        capital: the deployment's capital, split evenly over the instruments.
        commission: the backtest's commission (``"ibkr"``: what ibsim charges).
    """

    strategy: str | Mapping[str, Any]
    instruments: Sequence[str]
    start: date | datetime | str
    end: date | datetime | str
    params: Mapping[str, Any] = field(default_factory=dict)
    bar_size: str = "1d"
    capital: float = 100_000.0
    commission: CommissionSpec = "ibkr"

    def __post_init__(self) -> None:
        """Refuse what the replay cannot do before anything starts.

        Raises:
            ValidationError: naming ``bar_size`` (not ``1d``) or ``capital`` (not > 0).
        """
        if self.bar_size != "1d":
            raise ValidationError(
                f"parity replays daily bars only; got bar_size {self.bar_size!r}",
                field="bar_size",
            )
        if not (isinstance(self.capital, int | float) and self.capital > 0):
            raise ValidationError(f"capital must be > 0, got {self.capital!r}", field="capital")


def spec_from_deployment(
    catalog: Catalog, deployment_id: int, *, start: Any, end: Any, **overrides: Any
) -> ParitySpec:
    """Return the :class:`ParitySpec` of an existing deployment (read only) over a range.

    Raises:
        NotFound: no such deployment.
    """
    record = catalog.deployments.get(deployment_id)
    strategy: str | Mapping[str, Any] = record.rule_spec or record.strategy
    given = {
        "strategy": strategy,
        "instruments": list(record.instruments),
        "params": dict(record.params),
        "bar_size": record.bar_size,
        "capital": float(record.capital or 100_000),
    }
    return ParitySpec(start=start, end=end, **{**given, **overrides})


def check_parity(
    spec: ParitySpec,
    bars: HistorySource,
    *,
    namespace: str = NAMESPACE,
    pin_to_head: bool = True,
    fill_timeout: float = FILL_TIMEOUT_S,
) -> ParityResult:
    """Backtest ``spec`` and replay it into a throwaway paper deployment; compare the trades.

    Needs a connected Ray (the actors of the paper side run on it).

    Args:
        spec: the strategy, instruments and range.
        bars: the stored bars (a :class:`storage.bars.BarStore`); only read.
        namespace: the Ray namespace of the replay's actors.
        pin_to_head: pin them to the ``scizor_head`` node, as the platform's are.
        fill_timeout: seconds to wait for each order's fills.

    Raises:
        ValidationError: naming the field: a bar size other than 1d, an instrument ibsim
            does not know, instruments on different calendars, an empty range.
        DataError: no stored bars in the range.
        NotFound, ParameterError: an unknown strategy, bad parameters.
    """
    strategy, params = _strategy(spec)
    contracts = {i: _contract(i) for i in dict.fromkeys(str(parse(i)) for i in spec.instruments)}
    if len({c.calendar_name for c in contracts.values()}) > 1:
        raise ValidationError(
            "parity replays instruments of one exchange calendar at a time", field="instruments"
        )
    frames = {i: _read(bars, i, spec) for i in contracts}
    capital = float(spec.capital) / len(contracts)
    backtest: list[Trade] = []
    for instrument, frame in frames.items():
        backtest += backtest_trades(
            frame, strategy, params, instrument=instrument, capital=capital,
            cash=ACCOUNT_CASH, commission=spec.commission,
            currency=contracts[instrument].currency,
        )  # fmt: skip
    replay = _Replay(spec, contracts, frames, namespace=namespace, pin_to_head=pin_to_head,
                     fill_timeout=fill_timeout)  # fmt: skip
    fills, problems, orders = replay.run()
    index = pd.DatetimeIndex(sorted(set().union(*(f.index for f in frames.values()))))
    paper = paper_trades(fills, index, bar_of=replay.session_of)
    matched, divergences = compare_trades(backtest, paper)
    return ParityResult(
        strategy=strategy.name, params=dict(params), instruments=list(contracts),
        bar_size=spec.bar_size, start=index[0], end=index[-1], backtest=tuple(backtest),
        paper=tuple(paper), matched=matched, divergences=tuple(divergences),
        problems=tuple(problems), orders=tuple(orders),
    )  # fmt: skip


def _strategy(spec: ParitySpec) -> tuple[Strategy, dict[str, Any]]:
    given = DeploymentSpec(
        strategy=spec.strategy, instruments=list(spec.instruments), capital=1, params=spec.params
    )
    return resolve_strategy(given)


def _contract(instrument: str) -> ContractInfo:
    iid = parse(instrument, field="instruments")
    found = [
        c
        for c in default_world().match(symbol=iid.symbol)
        if c.primary_exchange.upper() == iid.venue
    ]
    if len(found) != 1:
        raise ValidationError(
            f"ibsim does not know {instrument}; parity replays instruments of its bundled "
            "world (ibsim/data/contracts.csv)",
            field="instruments",
        )
    return found[0]


def _read(bars: HistorySource, instrument: str, spec: ParitySpec) -> pd.DataFrame:
    start = _utc_day(spec.start)
    end = _utc_day(spec.end) + pd.Timedelta(days=1)
    if end <= start:
        raise ValidationError(f"end {spec.end} is before start {spec.start}", field="end")
    frame = bars.read(instrument, spec.bar_size, start=start, end=end)
    if len(frame) < 2:
        raise DataError(
            f"{len(frame)} stored {spec.bar_size} bars of {instrument} between {spec.start} "
            f"and {spec.end}; collect them first ('scizor collect history {instrument}')",
            field="bars",
        )
    return frame[["open", "high", "low", "close", "volume"]]


def _utc_day(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.normalize()


class _Replay:
    """The paper side of one parity check (see the module docstring)."""

    def __init__(
        self,
        spec: ParitySpec,
        contracts: Mapping[str, ContractInfo],
        frames: Mapping[str, pd.DataFrame],
        *,
        namespace: str,
        pin_to_head: bool,
        fill_timeout: float,
    ) -> None:
        self.spec, self.contracts, self.frames = spec, contracts, frames
        self.namespace, self.pin_to_head, self.fill_timeout = namespace, pin_to_head, fill_timeout
        days, opens, closes = calendar_schedule(next(iter(contracts.values())).calendar_name)
        self._days = pd.DatetimeIndex(days).tz_localize("UTC")
        self._opens, self._closes = opens, closes
        self.problems: list[str] = []

    def run(self) -> tuple[list[Any], list[str], list[str]]:
        """Replay the bars; return (fills, problems, order refs sent)."""
        import ray

        strategy, params = _strategy(self.spec)
        times = sorted(set().union(*(f.index for f in self.frames.values())))
        first = min(strategy.warmup(params), len(times) - 1)  # the warm-up is preloaded
        clock = ManualClock(self._at(times[first], close=True))
        replay = {self.contracts[i].symbol: f for i, f in self.frames.items()}
        sim_options = {"replay": replay, "bar_quotes": True, "pacing": "off", "cash": ACCOUNT_CASH}
        with (
            tempfile.TemporaryDirectory(prefix="scizor-parity-", dir=_scratch()) as tmp,
            running_ibsim(clock=clock, **sim_options) as sim,
        ):
            catalog = Catalog(catalog_url(tmp))
            catalog.upgrade()
            settings = Settings.from_env({
                "SCIZOR_HOME": tmp, "SCIZOR_DATABASE_URL": catalog_url(tmp),
                "SCIZOR_IB_HOST": "127.0.0.1", "SCIZOR_IB_PORT": str(sim.port),
                "SCIZOR_IB_CLIENT_ID": "1",
            })  # fmt: skip
            actors: list[Any] = []
            try:
                om = self._actors(settings, actors)
                record = create_deployment(
                    catalog,
                    DeploymentSpec(
                        strategy=self.spec.strategy, instruments=list(self.contracts),
                        capital=self.spec.capital, params=self.spec.params,
                        account=sim.account, bar_size="1d",
                    ),
                )  # fmt: skip
                history = ReplayHistory(
                    {i: f[f.index < times[first]] for i, f in self.frames.items()}
                )
                feed = ReplayFeed(self.frames, accounts=GatewayFeed(actors[0]))
                runner = StrategyRunner(
                    record.id, catalog=catalog, history=history, feed=feed, sink=ActorSink(om)
                )
                asyncio.run(self._drive(runner, feed, clock, om, times[first:]))
                return catalog.executions.list(), self.problems, list(runner.sent)
            finally:
                for actor in reversed(actors):
                    with contextlib.suppress(Exception):  # already gone is fine
                        ray.kill(actor, no_restart=True)
                catalog.dispose()

    def _actors(self, settings: Settings, actors: list[Any]) -> Any:
        tag = f"parity-{os.getpid()}-{time.monotonic_ns()}"
        names: dict[str, Any] = {"gateway_name": f"gw-{tag}", "risk_name": f"risk-{tag}"}
        where: dict[str, Any] = {"namespace": self.namespace, "pin_to_head": self.pin_to_head}
        actors.append(
            get_gateway(settings, name=names["gateway_name"], subscribers=(f"om-{tag}",), **where)
        )
        actors.append(get_risk_manager(settings, name=names["risk_name"], **where))
        om = get_order_manager(settings, name=f"om-{tag}", **names, **where)
        actors.append(om)
        return om

    async def _drive(
        self,
        runner: StrategyRunner,
        feed: ReplayFeed,
        clock: ManualClock,
        om: Any,
        times: Sequence[pd.Timestamp],
    ) -> None:
        await runner.start(loop=False)
        try:
            for k, when in enumerate(times):
                _advance(clock, self._at(when, close=True))
                feed.release(when)
                before = len(runner.sent)
                await runner.step()
                sent = runner.sent[before:]
                if sent and k + 1 < len(times):
                    _advance(clock, self._at(times[k + 1], close=False))
                    for ref in sent:
                        await self._filled(om, ref)
        finally:
            await runner.stop()

    def session_of(self, when: datetime) -> pd.Timestamp:
        """The bar (its session's date, UTC) of the session open at ``when``."""
        i = int(np.searchsorted(self._opens, when.timestamp(), side="right")) - 1
        return pd.Timestamp(self._days[max(i, 0)])

    def _at(self, when: pd.Timestamp, *, close: bool) -> datetime:
        """The bar's session open, or a minute after its close (UTC)."""
        i = int(self._days.searchsorted(when.normalize()))
        if i >= len(self._days) or self._days[i] != when.normalize():
            raise DataError(
                f"the bar at {when} is not a session of "
                f"{next(iter(self.contracts.values())).calendar_name}",
                field="bars",
            )
        epoch = int(self._closes[i]) + AFTER_CLOSE_S if close else int(self._opens[i])
        return datetime.fromtimestamp(epoch, UTC)

    async def _filled(self, om: Any, ref: str) -> None:
        deadline = time.monotonic() + self.fill_timeout
        while True:
            record = await om.order.remote(ref)
            if record.status == OrderStatus.FILLED:
                return
            if record.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
                self.problems.append(f"order {ref} ended {record.status.value}")
                return
            if time.monotonic() > deadline:
                self.problems.append(
                    f"order {ref} not filled within {self.fill_timeout:g} s "
                    f"({record.status.value}, {record.filled_quantity} filled)"
                )
                return
            await asyncio.sleep(0.02)


def catalog_url(home: str) -> str:
    """The replay's throwaway SQLite catalog in ``home``."""
    return f"sqlite:///{Path(home) / 'parity.db'}"


def _scratch() -> str | None:
    """A memory-backed temporary directory when there is one: the catalog commits per bar."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _advance(clock: ManualClock, to: datetime) -> None:
    ahead = (to - clock.now()).total_seconds()
    if ahead > 0:
        clock.advance(ahead)
