"""The gateway's fills: IB's executions and commission reports fed into one FillBook.

Live ``execDetails`` and ``commissionReport`` events, and every executions request, feed
:class:`actors.fills.FillBook`, which hands out a fill only once its commission is in (see
:mod:`actors.fills` for the contract callers rely on). An execution is named by canonical
id, which may need a contract lookup at IB first (IB leaves the primary exchange out of
``execDetails``), so a commission report can reach the book before its execution does: the
book joins them in either order.

Listeners added with :meth:`FillFeed.on_fill` are called with each fill the moment the book
completes it (each fill once per session, like :meth:`FillBook.take_new`), so fills can be
pushed to the order manager instead of polled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import ib_async

from actors import ib_convert as conv
from actors.contract_resolver import ContractResolver
from actors.fills import FillBook
from actors.ib_link import IBLink
from core.errors import Conflict, ScizorError
from core.types import Fill

log = logging.getLogger(__name__)


class FillFeed:
    """Feed IB's executions and commission reports into a :class:`FillBook`.

    Args:
        link: The paced request path (its ``ib`` emits the live events).
        resolver: Names each execution's listing by canonical id.
        book: Where fills are joined (a new one by default).
    """

    def __init__(
        self, link: IBLink, resolver: ContractResolver, *, book: FillBook | None = None
    ) -> None:
        self._link = link
        self._resolver = resolver
        self.book = book or FillBook()
        self.conflicts = 0
        self.errors = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._listeners: list[Callable[[Fill], None]] = []
        link.ib.execDetailsEvent += self._on_execution
        link.ib.commissionReportEvent += self._on_commission

    def on_fill(self, listener: Callable[[Fill], None]) -> None:
        """Call ``listener(fill)`` with every fill completed from now on (once each)."""
        self._listeners.append(listener)

    def poll(self) -> list[Fill]:
        """Return the complete fills not returned before (each fill once per session)."""
        return self.book.take_new()

    async def executions(self) -> list[Fill]:
        """Ask IB for today's executions; return those whose commission report is in.

        Raises:
            BrokerError: if IB does not answer (or NotConnected without a connection).
        """
        ib = self._link.ib
        answered = await self._link.paced_request("executions", ib.reqExecutionsAsync)
        # ib_async answers an execId it has seen before with a fresh, empty commission
        # report; the report itself lands on the fill it stored first.
        stored = {f.execution.execId: f for f in ib.fills()}
        ids: list[str] = []
        for fill in answered:
            exec_id = fill.execution.execId
            await self._ingest(stored.get(exec_id, fill))
            ids.append(exec_id)
        found = [self.book.fill(i) for i in dict.fromkeys(ids)]
        return [f for f in found if f is not None]

    async def _ingest(self, fill: ib_async.Fill) -> None:
        """Add both halves of ``fill`` that IB has sent (the commission first: it needs no
        lookup, and the book joins the halves in either order)."""
        self._add_commission(fill.commissionReport)
        execution = conv.execution_of(
            fill, instrument=await self._resolver.instrument_id(fill.contract)
        )
        self._guarded(lambda: self.book.add_execution(execution))

    def _on_execution(self, trade: ib_async.Trade, fill: ib_async.Fill) -> None:
        task = asyncio.ensure_future(self._ingest(fill))
        self._tasks.add(task)
        task.add_done_callback(self._ingested)

    def _on_commission(
        self, trade: ib_async.Trade, fill: ib_async.Fill, report: ib_async.CommissionReport
    ) -> None:
        self._add_commission(report)

    def _add_commission(self, report: ib_async.CommissionReport) -> None:
        self._guarded(lambda: self._commission(report))

    def _commission(self, report: ib_async.CommissionReport) -> Fill | None:
        commission = conv.commission_of(report)
        return None if commission is None else self.book.add_commission(commission)

    def _guarded(self, add: Callable[[], Fill | None]) -> None:
        try:
            completed = add()
        except Conflict as exc:  # keep the first report; a human must look at this one
            self.conflicts += 1
            log.error("%s", exc)
            return
        if completed is not None:
            self._notify(completed)

    def _notify(self, fill: Fill) -> None:
        for listener in list(self._listeners):
            try:
                listener(fill)
            except Exception:  # one listener's failure must not stop the feed or the others
                self.errors += 1
                log.exception("fill listener failed on %s", fill.exec_id)

    def _ingested(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, ScizorError):  # the next executions() request recovers it
            self.errors += 1
            log.warning("live execution not recorded yet: %s", exc)
        elif exc is not None:
            self.errors += 1
            log.error("live execution not recorded", exc_info=exc)
