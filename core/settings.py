"""Settings: one object, built once at an entry point and passed down.

Every variable is optional; with none set, SCIZOR runs on its embedded default (local Ray,
SQLite and Parquet under ``./var``, ibsim on 127.0.0.1). Nothing reads the environment at
import time: entry points call :meth:`Settings.from_env`, tests pass a plain dict. An unknown
``SCIZOR_*`` variable is an error, not ignored, so a typo cannot silently select a default.
Secrets (the database URL, the admin token) are ``SecretStr``: printing settings hides them.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError

PREFIX = "SCIZOR_"

EXTERNAL_VARIABLES = frozenset({"SCIZOR_TEST_PG_URL", "SCIZOR_LIVE_IB"})
"""``SCIZOR_*`` variables read by the test suite, not by :class:`Settings`; they are let through.

Every other ``SCIZOR_*`` variable must be a :class:`Settings` field, so that a typo such as
``SCIZOR_DATABSE_URL`` stops the program instead of silently falling back to a default.
"""

_SECRET_FIELDS = frozenset({"database_url", "admin_token"})


@dataclass(frozen=True, slots=True, kw_only=True)
class IBSettings:
    """Where the IB Gateway (or TWS, or ibsim) listens. ``host=None``: start ibsim."""

    host: str | None
    port: int
    client_id: int
    account: str | None
    timeout: float

    @property
    def embedded(self) -> bool:
        """True when SCIZOR starts its own ibsim instead of reaching a real gateway."""
        return self.host is None


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSettings:
    """The SQL catalog. ``repr`` shows :attr:`redacted_url`, never the password."""

    url: str

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite default."""
        return self.url.startswith("sqlite")

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``, safe to print or log."""
        # Greedy up to the last "@": a password may itself hold an unescaped "@".
        url = re.sub(r"(://[^:/@]*:).*@", r"\1***@", self.url)
        return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)

    def __repr__(self) -> str:
        return f"DatabaseSettings(url={self.redacted_url!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class RaySettings:
    """The Ray cluster. ``address=None``: start a local Ray."""

    address: str | None
    num_cpus: int | None
    dashboard_host: str
    dashboard_port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSettings:
    """Where bars and artifacts live: a local path or a pyarrow filesystem URI."""

    home: Path
    bar_store: str


@dataclass(frozen=True, slots=True, kw_only=True)
class APISettings:
    """The HTTP API served by Ray Serve."""

    host: str
    port: int
    admin_token: SecretStr | None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseSettings):
    """All of SCIZOR's configuration; environment variables are ``SCIZOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    home: Path = Field(default=Path("var"), description="Root for local state (SQLite, bars).")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL of the catalog (may hold a password)."
    )
    bar_store: str | None = Field(default=None, description="Bar store path or pyarrow URI.")
    ib_host: str | None = Field(default=None, description="IB Gateway host; unset: ibsim.")
    ib_port: int = Field(default=4002, ge=1, le=65535)
    ib_client_id: int = Field(default=1, ge=0, le=999_999_999)
    ib_account: str | None = None
    ib_timeout: float = Field(default=10.0, gt=0)
    ray_address: str | None = Field(default=None, description="Ray address; unset: local Ray.")
    ray_num_cpus: int | None = Field(default=None, ge=1)
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8265, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    admin_token: SecretStr | None = Field(
        default=None, description="The first admin API token, instead of a generated one."
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    api_rate: float = Field(default=20.0, gt=0, description="Requests/s a token may sustain.")
    api_burst: int = Field(default=40, ge=1, description="Requests a token may send at once.")
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Largest body.")
    api_token_cache_seconds: float = Field(
        default=15.0, ge=0, le=3600, description="How long a verified token is trusted."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read only what is passed in: the environment is injected by :meth:`from_env`."""
        return (init_settings,)

    @field_validator("log_level", mode="before")
    @classmethod
    def _known_level(cls, value: Any) -> Any:
        level = value.strip().upper() if isinstance(value, str) else value
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("admin_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        token = None if value is None else value.get_secret_value()
        if token is not None and (len(token) < 32 or any(c.isspace() for c in token)):
            raise ValueError(
                "needs at least 32 characters and no spaces; generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("ib_host", "ray_address", "database_url", "bar_store", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``SCIZOR_*`` variables of ``env`` (default: the process's).

        Raises:
            ConfigError: naming the variable and what it accepts; or naming each unknown
                ``SCIZOR_*`` variable (a likely typo) with the closest valid name.
        """
        source = os.environ if env is None else env
        ours = {key: value for key, value in source.items() if key.startswith(PREFIX)}
        unknown = sorted(key for key in ours if key not in cls.variables())
        if unknown:
            raise ConfigError(_unknown_message(unknown, cls.variables()))
        values = {
            key[len(PREFIX) :].lower(): value
            for key, value in ours.items()
            if key not in EXTERNAL_VARIABLES
        }
        try:
            return cls(**values)  # type: ignore[arg-type]  # strings are parsed by pydantic
        except ValidationError as exc:
            first = exc.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            name = PREFIX + field.upper() if field else "SCIZOR_*"
            got = "***" if field in _SECRET_FIELDS else repr(first.get("input"))
            raise ConfigError(f"{name}: {first['msg']} (got {got})") from exc

    @classmethod
    def variables(cls) -> frozenset[str]:
        """Return every ``SCIZOR_*`` name :meth:`from_env` accepts (fields and test-only ones)."""
        fields = {PREFIX + name.upper() for name in cls.model_fields}
        return frozenset(fields) | EXTERNAL_VARIABLES

    @property
    def ib(self) -> IBSettings:
        """IB connection settings."""
        return IBSettings(
            host=self.ib_host,
            port=self.ib_port,
            client_id=self.ib_client_id,
            account=self.ib_account,
            timeout=self.ib_timeout,
        )

    @property
    def db(self) -> DatabaseSettings:
        """Catalog database settings (SQLite under ``home`` by default)."""
        if self.database_url is not None:
            return DatabaseSettings(url=self.database_url.get_secret_value())
        return DatabaseSettings(url=f"sqlite:///{(self.home / 'scizor.db').resolve()}")

    @property
    def ray(self) -> RaySettings:
        """Ray settings."""
        return RaySettings(
            address=self.ray_address,
            num_cpus=self.ray_num_cpus,
            dashboard_host=self.dashboard_host,
            dashboard_port=self.dashboard_port,
        )

    @property
    def storage(self) -> StorageSettings:
        """Bar store and local state settings."""
        store = self.bar_store or str((self.home / "bars").resolve())
        return StorageSettings(home=self.home, bar_store=store)

    @property
    def api(self) -> APISettings:
        """HTTP API settings."""
        return APISettings(host=self.api_host, port=self.api_port, admin_token=self.admin_token)


def _unknown_message(unknown: list[str], valid: frozenset[str]) -> str:
    """Name each unknown variable with its closest valid spelling, or list the valid ones."""
    # Compare what follows the prefix: every name shares "SCIZOR_", which would make anything
    # look close to something.
    suffixes = {name[len(PREFIX) :]: name for name in valid}
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name[len(PREFIX) :], sorted(suffixes), n=1, cutoff=0.6)
        parts.append(f"{name} (did you mean {suffixes[close[0]]}?)" if close else name)
    hint = "" if all("did you mean" in p for p in parts) else f"; valid: {', '.join(sorted(valid))}"
    return (
        f"unknown variable(s) {', '.join(parts)}: rename or unset them; SCIZOR_* variables are "
        f"checked so that a typo cannot silently fall back to a default{hint}"
    )
