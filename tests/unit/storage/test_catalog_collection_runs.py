"""Collection-run leases on SQLite and PostgreSQL: one run of a kind works at a time.

A driver creates a run holding a lease and renews it while it works; a second run of the
same kind is refused while the lease holds, and closes the first as interrupted once it has
run out (its driver was killed). Times are passed with ``at=``: nothing sleeps.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.errors import Conflict, NotFound
from storage.catalog import Catalog, ItemStatus, RunStatus
from storage.catalog.collection_runs import LEASE

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
ITEMS = [
    ("AAPL.NASDAQ", "1d", None, None),
    ("MSFT.NASDAQ", "1d", None, None),
    ("BHP.ASX", "1d", None, None),
]


def _count(catalog: Catalog, table: str) -> int:
    with catalog.db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _first_run_half_done(catalog: Catalog) -> int:
    """A daily run of host-a: AAPL running (its driver then dies), MSFT done, BHP pending."""
    runs = catalog.collection_runs
    run = runs.create("daily", ITEMS, at=T0, owner="host-a pid 1")
    aapl, msft, _bhp = runs.items(run.id)
    runs.start_item(aapl.id, at=T0)
    runs.start_item(msft.id, at=T0)
    runs.finish_item(msft.id, bars_written=5, at=T0)
    return run.id


def test_second_run_while_the_lease_holds_is_a_conflict_naming_run_and_owner(catalog):
    first = _first_run_half_done(catalog)
    before = (_count(catalog, "collection_runs"), _count(catalog, "collection_items"))
    for at in (T0 + timedelta(seconds=1), T0 + LEASE - timedelta(microseconds=1)):
        with pytest.raises(Conflict, match=rf"run {first}, owner host-a pid 1\) is still running"):
            catalog.collection_runs.create("daily", ITEMS[:1], at=at, owner="host-b pid 2")
    assert (_count(catalog, "collection_runs"), _count(catalog, "collection_items")) == before
    run = catalog.collection_runs.get(first)
    assert (run.status, run.owner, run.lease_until) == (
        RunStatus.RUNNING,
        "host-a pid 1",
        T0 + LEASE,
    )
    assert [i.status for i in catalog.collection_runs.items(first)] == [
        ItemStatus.RUNNING, ItemStatus.DONE, ItemStatus.PENDING,
    ]  # fmt: skip


def test_after_the_lease_runs_out_the_next_run_closes_the_first_as_interrupted(catalog):
    first = _first_run_half_done(catalog)
    later = T0 + LEASE  # the lease is over at its end
    second = catalog.collection_runs.create("daily", ITEMS[:1], at=later, owner="host-b pid 2")
    closed = catalog.collection_runs.get(first)
    assert (closed.status, closed.finished_at, closed.lease_until) == (
        RunStatus.FAILED,
        later,
        None,
    )
    aapl, msft, bhp = catalog.collection_runs.items(first)
    assert (aapl.status, aapl.finished_at) == (ItemStatus.FAILED, later)
    assert "interrupted" in aapl.error
    assert (msft.status, msft.bars_written) == (ItemStatus.DONE, 5)  # done work is kept
    assert bhp.status is ItemStatus.PENDING
    assert (second.status, second.owner, second.lease_until) == (
        RunStatus.RUNNING,
        "host-b pid 2",
        later + LEASE,
    )
    assert catalog.collection_runs.latest(kind="daily").id == second.id


def test_renew_extends_the_lease(catalog):
    first = _first_run_half_done(catalog)
    renewed = catalog.collection_runs.renew(first, at=T0 + timedelta(minutes=1))
    assert renewed.lease_until == T0 + timedelta(minutes=1) + LEASE
    with pytest.raises(Conflict, match=rf"run {first}"):  # past the first lease, not the renewal
        catalog.collection_runs.create("daily", ITEMS, at=T0 + LEASE + timedelta(seconds=1))
    long = catalog.collection_runs.renew(first, at=T0 + LEASE, lease=timedelta(hours=1))
    assert long.lease_until == T0 + LEASE + timedelta(hours=1)
    assert catalog.collection_runs.close_interrupted(at=T0 + timedelta(minutes=59)) == []
    assert catalog.collection_runs.get(first).status is RunStatus.RUNNING


def test_renew_of_a_run_that_is_not_running_is_a_conflict(catalog):
    first = _first_run_half_done(catalog)
    catalog.collection_runs.finish(first, at=T0)
    with pytest.raises(Conflict, match=rf"collection run {first} is failed"):
        catalog.collection_runs.renew(first, at=T0)
    assert catalog.collection_runs.get(first).lease_until is None
    # A driver whose run was closed for it (its lease ran out) learns so when it renews.
    second = catalog.collection_runs.create("daily", ITEMS, at=T0 + timedelta(seconds=1))
    catalog.collection_runs.create("daily", ITEMS, at=T0 + timedelta(seconds=1) + LEASE)
    with pytest.raises(Conflict, match="lease is gone"):
        catalog.collection_runs.renew(second.id, at=T0 + timedelta(seconds=2) + LEASE)
    assert catalog.collection_runs.get(second.id).lease_until is None
    with pytest.raises(NotFound):
        catalog.collection_runs.renew(999, at=T0)


def test_runs_of_other_kinds_are_unaffected(catalog):
    first = _first_run_half_done(catalog)
    history = catalog.collection_runs.create("history", ITEMS[:1], at=T0, owner="host-c")
    assert history.status is RunStatus.RUNNING
    catalog.collection_runs.renew(history.id, at=T0 + LEASE)  # outlives the daily lease
    catalog.collection_runs.create("daily", ITEMS[:1], at=T0 + LEASE)
    assert catalog.collection_runs.get(first).status is RunStatus.FAILED
    assert catalog.collection_runs.get(history.id).status is RunStatus.RUNNING
    assert catalog.collection_runs.get(history.id).lease_until == T0 + LEASE + LEASE


def test_database_holds_one_running_run_per_kind(catalog):
    sql = "INSERT INTO collection_runs (kind, status, created_at) VALUES (:kind, :status, :t)"
    stamp = T0.replace(tzinfo=None) if catalog.db.dialect == "sqlite" else T0
    rows = [("daily", "done"), ("daily", "failed"), ("daily", "done"), ("daily", "running")]
    with catalog.db.transaction() as session:
        for kind, status in [*rows, ("history", "running")]:
            session.execute(text(sql), {"kind": kind, "status": status, "t": stamp})
    with pytest.raises(Conflict), catalog.db.transaction() as session:
        session.execute(text(sql), {"kind": "daily", "status": "running", "t": stamp})
    assert _count(catalog, "collection_runs") == 5


@pytest.mark.timeout(120)
def test_drivers_starting_at_the_same_moment_get_one_run(catalog):
    drivers = [Catalog(catalog.url) for _ in range(4)]
    start = threading.Barrier(len(drivers))
    outcome: list[object] = []

    def drive(driver: Catalog, n: int) -> None:
        start.wait()
        try:
            outcome.append(driver.collection_runs.create("daily", ITEMS, owner=f"d{n}").id)
        except Conflict as exc:
            outcome.append(exc)

    threads = [threading.Thread(target=drive, args=(d, n)) for n, d in enumerate(drivers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for driver in drivers:
        driver.dispose()
    won = [o for o in outcome if isinstance(o, int)]
    assert len(won) == 1 and len(outcome) == 4, outcome
    assert _count(catalog, "collection_runs") == 1
    assert _count(catalog, "collection_items") == len(ITEMS)
