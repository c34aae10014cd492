"""``scizor symbols ...`` and ``scizor collect ...``: the data farmer's commands.

Every command builds settings once, opens the catalog (migrating it if needed) and, when it
needs IB, joins the Ray cluster and gets the gateway actor. Errors are SCIZOR errors, which
``scizor`` prints as one line and exit code 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from cluster import collect_plan as plan
from cluster.cli import console, register, settings
from core.errors import ParameterError, ScizorError
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
        """Open the catalog named by the settings (migrated to the latest schema)."""
        from storage.catalog import Catalog

        s = s or settings()
        catalog = Catalog(s.db.url)
        catalog.upgrade()
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


def _symbols_table(title: str, records: list[Any]) -> Table:
    table = Table(title=f"{title} ({len(records)})", title_justify="left")
    for column in ("symbol", "name", "exchange", "currency", "universe", "con_id", "verified"):
        table.add_column(column)
    for r in records:
        verified = f"{r.last_verified:%Y-%m-%d}" if r.last_verified else "never"
        table.add_row(
            r.symbol,
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
        table.add_column("symbol")
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
    symbol: str,
    exchange: str = typer.Option("SMART", "--exchange", help="IB exchange (SMART, ASX, ...)."),
    currency: str = typer.Option("USD", "--currency", help="Currency (USD, AUD, ...)."),
) -> None:
    """Add one symbol after checking IB knows it."""
    farm = Farm.open()
    try:
        record = farm.symbols().add(symbol, exchange=exchange, currency=currency)
    finally:
        farm.close()
    console.print(_symbols_table("Added", [record]))


@symbols_app.command("remove")
def remove(symbol: str) -> None:
    """Remove a symbol from the catalog (stored bars are kept)."""
    farm = Farm.open()
    try:
        record = farm.symbols(with_ib=False).remove(symbol)
    finally:
        farm.close()
    console.print(f"Removed {record.symbol} ({record.name or record.exchange}).")


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
        start, end = plan.window(now=datetime.now(UTC), years=years)
        targets = plan.targets([r.instrument for r in records], bar_size="1d", start=start, end=end)
        tally = _run(farm, "daily", targets, f"Daily bars, {len(targets)} symbols")
    finally:
        farm.close()
    if tally.failed:
        raise typer.Exit(1)


@collect_app.command("history")
def history(
    symbol: str,
    start: str | None = typer.Option(None, "--start", help="First day, YYYY-MM-DD."),
    end: str | None = typer.Option(None, "--end", help="Day after the last, YYYY-MM-DD."),
    bar_size: str = typer.Option("1d", "--bar-size", help="1s 5s 30s 1m 5m 15m 30m 1h 1d"),
    years: int = typer.Option(3, "--years", min=1, help="Look-back when --start is absent."),
) -> None:
    """Backfill one symbol's bars (3 years by default)."""
    from core.errors import NotFound
    from core.types import Instrument

    farm = Farm.open()
    try:
        try:
            instrument = farm.catalog.symbols.get(symbol.upper()).instrument
        except NotFound:
            instrument = Instrument(symbol=symbol.upper())
        lo, hi = plan.window(
            now=datetime.now(UTC),
            years=years,
            start=_date(start, "start"),
            end=_date(end, "end"),
        )
        targets = plan.targets([instrument], bar_size=bar_size, start=lo, end=hi)
        tally = _run(farm, "history", targets, f"{instrument.symbol} {bar_size} backfill")
    finally:
        farm.close()
    if tally.failed:
        raise typer.Exit(1)


register(symbols_app, name="symbols")
register(collect_app, name="collect")


def collect_main() -> None:
    """``python -m cluster.collect``: the ``collect`` group on its own."""
    from cluster.cli import err_console

    try:
        collect_app()
    except ScizorError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}")
        raise SystemExit(2) from exc
