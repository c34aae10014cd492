"""``scizor token create|list|revoke``: the HTTP API's bearer tokens.

Tokens are stored as SHA-256 hashes only: ``create`` prints the token once and it cannot be
shown again (create another if it is lost, and revoke the old one). A running API notices a
revocation within its token cache time (15 s).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.table import Table

from cluster.cli import console, register, settings
from core.errors import ValidationError

token_app = typer.Typer(help="API tokens (bearer tokens with scopes).", no_args_is_help=True)

_DURATION = re.compile(r"(?P<n>\d{1,6})(?P<unit>[mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(text: str | None, *, now: datetime) -> datetime | None:
    """``--expires``: a duration (``90m``, ``12h``, ``30d``, ``2w``) or a date (``2027-01-31``).

    Raises:
        ValidationError: naming ``expires`` for anything else.
    """
    if text is None:
        return None
    value = text.strip().lower()
    duration = _DURATION.fullmatch(value)
    if duration:
        return now + timedelta(**{_UNITS[duration["unit"]]: int(duration["n"])})
    try:
        day = datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ValidationError(
            f"--expires {text!r} is neither a duration nor a date: write e.g. 30d, 12h, 2w, "
            "90m or 2027-01-31",
            field="expires",
        ) from None
    return day.replace(tzinfo=UTC)


def _catalog() -> Any:
    from storage.catalog import Catalog

    catalog = Catalog(settings().db.url)
    catalog.upgrade()
    return catalog


@token_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Who or what uses it (shown in the audit log)."),
    scope: str = typer.Option(..., "--scope", help="read, research, trade or admin."),
    expires: str | None = typer.Option(None, "--expires", help="e.g. 30d, 12h or 2027-01-31."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print the token alone, e.g. for TOKEN=$(...)."
    ),
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    if not name.strip():
        raise ValidationError("--name must not be empty", field="name")
    catalog = _catalog()
    try:
        now = datetime.now(UTC)
        record, plaintext = catalog.tokens.create(
            scope, name.strip(), expires_at=parse_expiry(expires, now=now), at=now
        )
    finally:
        catalog.dispose()
    if quiet:
        print(plaintext)
        return
    until = f"{record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else "never"
    console.print(f"Token {record.id} '{record.name}' (scope {record.scope}, expires {until}):")
    console.print(plaintext, markup=False, highlight=False, soft_wrap=True)
    console.print("Keep it now: it is stored hashed and will not be shown again.")


@token_app.command("list")
def list_tokens() -> None:
    """List tokens: id, name, scope, state, created, expires, last used."""
    catalog = _catalog()
    try:
        records = catalog.tokens.list()
    finally:
        catalog.dispose()
    now = datetime.now(UTC)
    table = Table(title=f"API tokens ({len(records)})", title_justify="left")
    for column in ("id", "name", "scope", "state", "created", "expires", "last used"):
        table.add_column(column)
    for r in records:
        table.add_row(
            str(r.id), r.name, str(r.scope), r.state(now), _when(r.created_at),
            _when(r.expires_at) or "never", _when(r.last_used_at) or "never",
        )  # fmt: skip
    console.print(table)


@token_app.command("revoke")
def revoke(token_id: int = typer.Argument(..., help="The id 'scizor token list' shows.")) -> None:
    """Revoke a token (running APIs refuse it within 15 s)."""
    catalog = _catalog()
    try:
        record = catalog.tokens.revoke(token_id)
    finally:
        catalog.dispose()
    console.print(f"Token {record.id} '{record.name}' revoked at {_when(record.revoked_at)}.")


def _when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


register(token_app, name="token")
