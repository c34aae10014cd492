"""Settings: one object, built once at an entry point and passed down.

Every variable is optional; with none set, SCIZOR runs on its embedded default (local Ray,
SQLite and Parquet under ``./var``, ibsim on 127.0.0.1). Nothing reads the environment at
import time: entry points call :meth:`Settings.from_env`, tests pass a plain dict.
"""

from __future__ import annotations

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
    """The SQL catalog."""

    url: str

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite default."""
        return self.url.startswith("sqlite")

    @property
    def redacted_url(self) -> str:
        """The URL with any password replaced by ``***``, safe to print or log."""
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", self.url)


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


class Settings(BaseSettings):
    """All of SCIZOR's configuration; environment variables are ``SCIZOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)

    home: Path = Field(default=Path("var"), description="Root for local state (SQLite, bars).")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the catalog.")
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
    admin_token: SecretStr | None = None
    log_level: str = "INFO"

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

    @field_validator("ib_host", "ray_address", "database_url", "bar_store", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``SCIZOR_*`` variables of ``env`` (default: the process's).

        Raises:
            ConfigError: naming the variable and what it accepts.
        """
        source = os.environ if env is None else env
        values = {
            key[len(PREFIX) :].lower(): value
            for key, value in source.items()
            if key.startswith(PREFIX)
        }
        try:
            return cls(**values)  # type: ignore[arg-type]  # strings are parsed by pydantic
        except ValidationError as exc:
            first = exc.errors()[0]
            name = PREFIX + str(first["loc"][0]).upper() if first["loc"] else "SCIZOR_*"
            raise ConfigError(f"{name}: {first['msg']} (got {first.get('input')!r})") from exc

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
        url = self.database_url or f"sqlite:///{(self.home / 'scizor.db').resolve()}"
        return DatabaseSettings(url=url)

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
