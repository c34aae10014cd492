"""``scizor symbols ...`` and ``scizor collect ...``: the data farmer's commands.

Every command builds settings once, opens the catalog (migrating it if needed) and, when it
needs IB, joins the Ray cluster and gets the gateway actor. Errors are SCIZOR errors, which
``scizor`` prints as one line and exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import typer
from rich.table import Table

from cluster import collect_plan as plan
from cluster.cli import app, console, register, settings
from core.errors import ParameterError
from core.settings import Settings

symbols_app = typer.Typer(help="The symbol universe (bundled lists, IB validation).")
collect_app = typer.Typer(help="Collect bars from IB into the Parquet store, over Ray.")

UNIVERSE_OPT = typer.Option(
    None, "--universe", "-u", help="Bundled universe (asx200, nasdaq, etfs); repeatable."
)


@dataclass(slots=True)
class Farm:
    """What the commands work with: settings, catalog, and (lazily) Ray and the gateway."""

    settings: Settings
    catalog: Any
    _gateway: Any = None

    @classmethod
    def open(cls, s: Settings | None = None) -> Farm:
        """Open the catalog named by the settings (migrated to the latest schema), and move a
        bar store written before instrument ids to ``instrument=`` partitions."""
        from cluster.barstore import migrate_bar_store
        from storage.catalog import Catalog

        s = s or settings()
        catalog = Catalog(s.db.url)
        catalog.upgrade()
        report = migrate_bar_store(s.storage.bar_store, catalog)
        if report is not None and report.changed:
            _print_migration(report)
        return cls(settings=s, catalog=catalog)

    @property
    def gateway(self) -> Any:
        """The gateway actor (joins the Ray cluster on first use)."""
        if self._gateway is None:
            from actors.gateway import get_gateway
            from cluster import bootstrap

            bootstrap.connect(self.settings)
            self._gateway = get_gateway(self.settings)
        return self._gateway

    def symbols(self, *, with_ib: bool = True) -> Any:
        """The symbol service (with the IB lookup when ``with_ib``)."""
        from cluster.symbols import SymbolService, gateway_lookup

        lookup = gateway_lookup(self.gateway) if with_ib else None
        return SymbolService(self.catalog, lookup=lookup)

    def close(self) -> None:
        """Release the catalog's connections."""
        self.catalog.dispose()


def _print_migration(report: Any) -> None:
    console.print(
        f"Bar store migrated to instrument ids: {len(report.moved)} directories moved, "
        f"{len(report.quarantined)} set aside."
    )
    if report.quarantined:
        table = Table(
            title="Bars of ambiguous or unknown symbols, kept aside (recollect by instrument id)",
            title_justify="left",
        )
        table.add_column("bar size/symbol")
        table.add_column("kept at")
        for key, path in sorted(report.quarantined.items()):
            table.add_row(key, path)
        console.print(table)


def _symbols_table(title: str, records: list[Any]) -> Table:
    table = Table(title=f"{title} ({len(records)})", title_justify="left")
    columns = ("instrument", "name", "exchange", "currency", "universe", "con_id", "verified")
    for column in columns:
        table.add_column(column)
    for r in records:
        verified = f"{r.last_verified:%Y-%m-%d}" if r.last_verified else "never"
        table.add_row(
            r.id,
            r.name,
            r.primary_exchange or r.exchange,
            r.currency,
            r.universe or "",
            str(r.con_id or ""),
            verified,
        )
    return table


def _print_validation(report: Any) -> None:
    console.print(
        f"Checked {report.checked}: {len(report.verified)} valid, "
        f"{len(report.invalid)} invalid (removed), {len(report.errors)} unanswered."
    )
    if report.invalid:
        console.print(_symbols_table("Invalid symbols removed (IB error 200)", report.invalid))
    if report.errors:
        table = Table(title="Not checked (will retry next time)", title_justify="left")
        table.add_column("instrument")
        table.add_column("error")
        for symbol, error in sorted(report.errors.items()):
            table.add_row(symbol, error)
        console.print(table)


@symbols_app.command("populate")
def populate(
    universe: list[str] | None = UNIVERSE_OPT,
    force: bool = typer.Option(False, "--force", help="Skip IB validation (unverified)."),
) -> None:
    """Insert the bundled universes into the catalog and validate them with IB."""
    farm = Farm.open()
    try:
        report = farm.symbols(with_ib=not force).populate(universe or None, force=force)
    finally:
        farm.close()
    for name, count in report.upserted.items():
        console.print(f"{name}: {count} symbols inserted or refreshed")
    if report.validation is None:
        console.print("Validation skipped (--force): symbols are present but unverified.")
    else:
        _print_validation(report.validation)


@symbols_app.command("validate")
def validate(
    force_revalidate: bool = typer.Option(
        False, "--force-revalidate", help="Check every symbol, even if verified within 90 days."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Check at most N symbols."),
) -> None:
    """Ask IB about symbols not verified within 90 days; mark unknown ones invalid."""
    farm = Farm.open()
    try:
        report = farm.symbols().validate(force_revalidate=force_revalidate, limit=limit)
    finally:
        farm.close()
    _print_validation(report)


@symbols_app.command("add")
def add(
    instrument: str = typer.Argument(..., help="SYMBOL.VENUE, e.g. VEA.ASX or VEA.ARCA."),
) -> None:
    """Add one listing by instrument id after checking IB knows it."""
    farm = Farm.open()
    try:
        record = farm.symbols().add(instrument)
    finally:
        farm.close()
    console.print(_symbols_table("Added", [record]))


@symbols_app.command("remove")
def remove(
    instrument: str = typer.Argument(..., help="SYMBOL.VENUE, or a symbol with one listing."),
) -> None:
    """Remove a listing from the catalog (stored bars are kept)."""
    farm = Farm.open()
    try:
        record = farm.symbols(with_ib=False).remove(instrument)
    finally:
        farm.close()
    console.print(f"Removed {record.id} ({record.name or record.exchange}).")


@symbols_app.command("list")
def list_symbols(
    universe: str | None = typer.Option(None, "--universe", "-u", help="Only this universe."),
    invalid: bool = typer.Option(False, "--invalid", help="Show symbols IB did not know."),
) -> None:
    """List the symbols of the catalog."""
    from cluster.symbols import universe_key

    farm = Farm.open()
    try:
        name = universe_key(universe) if universe else None
        records = farm.symbols(with_ib=False).list(universe=name, invalid=invalid)
    finally:
        farm.close()
    console.print(_symbols_table("Invalid symbols" if invalid else "Symbols", records))


def _date(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ParameterError(f"--{name} {value!r} is not a date; use YYYY-MM-DD") from None


def _stamp(value: datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


def _run(farm: Farm, kind: str, targets: list[plan.Target], title: str) -> plan.Tally:
    from cluster.collect import pacing_wait, run_collection
    from cluster.collect_report import live_progress, summary

    gateway = farm.gateway
    with live_progress(
        console, total=len(targets), title=title, pacing=lambda: pacing_wait(gateway)
    ) as update:
        run_id, tally = run_collection(
            kind,
            targets,
            gateway=gateway,
            store_root=farm.settings.storage.bar_store,
            catalog=farm.catalog,
            on_result=update,
        )
    console.print(summary(tally, title=title, run_id=run_id))
    return tally


@collect_app.command("daily")
def daily(
    years: int = typer.Option(5, "--years", min=1, help="Look-back in years."),
    universe: list[str] | None = UNIVERSE_OPT,
) -> None:
    """Bring every valid symbol's daily bars up to date (only missing sessions are fetched)."""
    farm = Farm.open()
    try:
        records = farm.symbols(with_ib=False).collectable(universe or None)
        if not records:
            raise ParameterError(
                "no valid symbols to collect; run 'scizor symbols populate' first",
                field="universe",
            )
        tally = _collect_daily(farm, records, years)
    finally:
        farm.close()
    if tally.failed:
        raise typer.Exit(1)


def _collect_daily(farm: Farm, records: list[Any], years: int) -> plan.Tally:
    """Bring ``records``' daily bars up to date over the last ``years`` (a 'daily' run)."""
    start, end = plan.window(now=datetime.now(UTC), years=years)
    targets = plan.targets([r.instrument for r in records], bar_size="1d", start=start, end=end)
    return _run(farm, "daily", targets, f"Daily bars, {len(targets)} instruments")


@collect_app.command("history")
def history(
    instrument: str = typer.Argument(..., help="SYMBOL.VENUE, or a symbol with one listing."),
    start: str | None = typer.Option(None, "--start", help="First day, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--end", help="Day after the last, YYYY-MM-DD."),
    bar_size: str = typer.Option("1d", "--bar-size", help="1s 5s 30s 1m 5m 15m 30m 1h 1d"),
    years: int = typer.Option(3, "--years", min=1, help="Look-back when --start is absent."),
) -> None:
    """Backfill one instrument's bars (3 years by default); it must be in the catalog."""
    lo, hi = plan.window(
        now=datetime.now(UTC), years=years, start=_date(start, "start"), end=_date(end, "end")
    )
    farm = Farm.open()
    try:
        listing = farm.catalog.symbols.get(instrument)  # NotFound / ambiguous: listed
        targets = plan.targets([listing.instrument], bar_size=bar_size, start=lo, end=hi)
        tally = _run(farm, "history", targets, f"{listing.id} {bar_size} backfill")
    finally:
        farm.close()
    if tally.failed:
        raise typer.Exit(1)


@app.command("bars")
def bars(
    instrument: str = typer.Argument(..., help="SYMBOL.VENUE, or a symbol with one listing."),
    bar_size: str = typer.Option("1d", "--bar-size", help="1s 5s 30s 1m 5m 15m 30m 1h 1d"),
    start: str | None = typer.Option(None, "--start", help="First day, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--end", help="Day after the last, YYYY-MM-DD."),
    tail: int = typer.Option(10, "--tail", min=1, help="How many of the last bars to show."),
) -> None:
    """Show an instrument's stored bars (the last --tail of them, and how many there are)."""
    from storage.barquery import read_bars

    farm = Farm.open()
    try:
        key, frame = read_bars(
            farm.settings.storage.bar_store, farm.catalog, instrument, bar_size=bar_size,
            start=_stamp(_date(start, "start")), end=_stamp(_date(end, "end")),
        )  # fmt: skip
    finally:
        farm.close()
    span = f"{frame.index[0]:%Y-%m-%d %H:%M} to {frame.index[-1]:%Y-%m-%d %H:%M}"
    table = Table(title=f"{key} {bar_size}: {len(frame)} bars, {span}", title_justify="left")
    for column in ("ts", "open", "high", "low", "close", "volume"):
        table.add_column(column, justify="left" if column == "ts" else "right")
    for ts, row in frame.tail(tail).iterrows():
        table.add_row(
            f"{ts:%Y-%m-%d %H:%M}", *(f"{row[c]:,.4f}" for c in ("open", "high", "low", "close")),
            f"{row['volume']:,.0f}",
        )  # fmt: skip
    console.print(table)


register(symbols_app, name="symbols")
register(collect_app, name="collect")


PREPARE_YEARS = 5
"""The daily history ``scizor prepare`` (so ``scizor up``) collects."""


@app.command("prepare")
def prepare(
    years: int = typer.Option(PREPARE_YEARS, "--years", min=1, help="Daily look-back in years."),
    warm: bool = typer.Option(True, "--warm/--no-warm", help="Compile the engine's kernels."),
) -> None:
    """Get ready to research: universe validated, daily history collected, kernels compiled.

    The bundled universe goes into the catalog and is validated with IB, its daily history is
    collected, the engine's kernels are compiled. 'scizor up' runs this in the background as a
    Ray Job ('scizor status' shows how far it is); run again, it only checks what is due and
    fetches the sessions the store lacks."""
    from core.errors import Conflict

    farm = Farm.open()
    try:
        service = farm.symbols()
        report = service.populate(None)  # validates only what is due (90 days)
        for name, count in report.upserted.items():
            console.print(f"{name}: {count} symbols inserted or refreshed")
        if report.validation is not None:
            _print_validation(report.validation)
        try:
            tally = _collect_daily(farm, service.collectable(None), years)
        except Conflict as exc:  # someone's 'collect daily' is at it: it does the same work
            console.print(f"Daily collection not started: {exc}")
            tally = None
    finally:
        farm.close()
    if warm:
        from strategies.warm import warm_up

        with console.status("Compiling the engine's kernels..."):
            seconds = warm_up()
        console.print(f"Engine kernels ready ({sum(seconds.values()):.1f} s).")
    if tally is not None and tally.failed:
        raise typer.Exit(1)
