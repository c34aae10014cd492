"""Shared fixtures for every test: a throwaway PostgreSQL server and per-test databases.

Fixtures (all lazy: PostgreSQL starts only when a test first asks for it):

- ``pg_url`` (session): a SQLAlchemy URL (``postgresql+psycopg://...``) of a database on a
  throwaway server started with ``initdb``/``pg_ctl`` in a temp dir, or of the server named by
  ``SCIZOR_TEST_PG_URL`` when that variable is set.
- ``db_url`` (function, params ``sqlite``/``postgresql``): a fresh, EMPTY database per test.
- ``catalog_url`` (function, same params): a fresh database migrated to the catalog's head.
- ``catalog`` (function, same params): a ``storage.catalog.Catalog`` on ``catalog_url``.

If the server cannot start, fixtures that need it FAIL with the server log; they never skip.

Cleanup: the server and its ``/tmp/scizor-pg-*`` directory go away at the end of the session,
also when pytest is stopped by SIGTERM (a CI cancel): while the server is up, SIGTERM raises
an interrupt so fixture teardown runs. A session killed outright (SIGKILL) cannot clean up, so
every session that starts a server first sweeps the directories of dead sessions (each owner
holds an ``flock`` on its directory's ``owner.lock`` for as long as it lives).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

BACKENDS = ["sqlite", "postgresql"]
PG_ENV = "SCIZOR_TEST_PG_URL"
_PG_USER = "scizor"
_DIR_PREFIX = "scizor-pg-"
_OWNER_LOCK = "owner.lock"
# A directory with no owner lock (an older harness, or one created a moment ago) is swept only
# once its server is dead AND it is older than this.
_UNOWNED_GRACE_S = 600.0


def _find_pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    pytest.fail(
        f"PostgreSQL's {name} is not on PATH nor in /usr/lib/postgresql/*/bin; install the "
        f"postgresql server package (make system-packages) or set {PG_ENV} to an existing server.",
        pytrace=False,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class _PgServer:
    """A PostgreSQL server in a temp dir, run as ``postgres`` when we are root."""

    root: Path
    port: int = 0
    as_postgres: bool = field(default_factory=lambda: os.geteuid() == 0)
    running: bool = False

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def _run(self, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        # initdb refuses to run as root, so drop to the postgres user for the server tools.
        full = ["runuser", "-u", "postgres", "--", *cmd] if self.as_postgres else list(cmd)
        return subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no server log)"

    def start(self) -> None:
        if self.as_postgres:
            shutil.chown(self.root, user="postgres", group="postgres")
        initdb = self._run(
            _find_pg_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            _PG_USER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        if initdb.returncode != 0:
            pytest.fail(
                f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}",
                pytrace=False,
            )
        last = ""
        for _attempt in range(3):  # another process may grab the free port first
            self.port = _free_port()
            opts = (
                f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c synchronous_commit=off -c shared_buffers=32MB "
                "-c max_connections=100"
            )
            pg_ctl = _find_pg_bin("pg_ctl")
            res = self._run(
                pg_ctl, "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
                "-o", opts,
            )  # fmt: skip
            if res.returncode == 0:
                self.running = True
                return
            last = f"{res.stdout}\n{res.stderr}\n{self._log_tail()}"
        pytest.fail(f"PostgreSQL did not start (pg_ctl start):\n{last}", pytrace=False)

    def stop(self) -> None:
        # postmaster.pid also covers a start interrupted after the server came up.
        if self.running or (self.data / "postmaster.pid").exists():
            self.running = False
            with contextlib.suppress(Exception):
                self._run(_find_pg_bin("pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data))
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{_PG_USER}@127.0.0.1:{self.port}/postgres"


def _own_dir(root: Path) -> int:
    """Mark ``root`` as this process's: an flock the kernel drops when the process dies."""
    fd = os.open(root / _OWNER_LOCK, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by children
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _server_alive(root: Path) -> bool:
    """True when the postmaster recorded in ``root``'s data directory is still running."""
    try:
        pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale_servers(tmp: Path) -> list[Path]:
    """Stop the servers and delete the directories of sessions that died; return those swept.

    A directory whose owner lock is free belongs to a dead session: its server (if one is still
    running) is stopped and the directory removed. A directory without an owner lock is removed
    only when its server is dead and it is older than the grace period.
    """
    swept: list[Path] = []
    for root in sorted(tmp.glob(f"{_DIR_PREFIX}*")):
        lock = root / _OWNER_LOCK
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            try:
                age = time.time() - root.stat().st_mtime
            except OSError:
                continue
            if age < _UNOWNED_GRACE_S or _server_alive(root):
                continue
            shutil.rmtree(root, ignore_errors=True)
            swept.append(root)
            continue
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its session is alive
            _PgServer(root, running=_server_alive(root)).stop()
            swept.append(root)
        finally:
            os.close(fd)
    return swept


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: pytest stops the session as for Ctrl-C and runs fixture teardown."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`_Terminated` once (later ones are ignored so the
    cleanup it triggers can finish); the previous handler is restored on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def on_sigterm(signum: int, frame: types.FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise _Terminated(f"received signal {signum} (SIGTERM): stopping the test session")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


class _PgAdmin:
    """Create and drop databases on the test server (an AUTOCOMMIT admin connection)."""

    def __init__(self, server_url: str) -> None:
        from sqlalchemy import create_engine

        self.server_url = server_url
        self.engine = create_engine(
            _with_database(server_url, "postgres"), isolation_level="AUTOCOMMIT"
        )
        self._templates: dict[str, str] = {}
        self.created: list[str] = []

    def execute(self, sql: str) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text(sql))

    def create(self, *, template: str | None = None, prefix: str = "t") -> str:
        name = f"scizor_{prefix}_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template or "template0"}"')
        self.created.append(name)
        return _with_database(self.server_url, name)

    def drop(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        name = make_url(url).database
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def template(self, key: str, prepare: Callable[[str], None]) -> str:
        """Return the name of a template database built once by ``prepare(url)``."""
        if key not in self._templates:
            url = self.create(prefix=f"tpl_{key}")
            prepare(url)  # prepare must dispose its engines: CREATE ... TEMPLATE needs no users
            self._templates[key] = str(_database_name(url))
        return self._templates[key]

    def close(self) -> None:
        for name in list(self.created):
            with contextlib.suppress(Exception):
                self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.engine.dispose()


def _database_name(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).database


def _migrate(url: str) -> None:
    from storage.catalog import Catalog

    catalog = Catalog(url)
    try:
        catalog.upgrade()
    finally:
        catalog.dispose()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the PostgreSQL server for this run (its ``postgres`` database); started lazily."""
    external = os.environ.get(PG_ENV)
    if external:
        yield external
        return
    _sweep_stale_servers(Path(tempfile.gettempdir()))
    server = _PgServer(Path(tempfile.mkdtemp(prefix=_DIR_PREFIX)))
    owner = _own_dir(server.root)
    atexit.register(server.stop)  # also stop the server if the session dies mid-way
    try:
        with _sigterm_interrupts():
            try:
                server.start()
                yield server.url
            finally:
                server.stop()
    finally:
        os.close(owner)


@pytest.fixture(scope="session")
def pg_admin(pg_server_url: str) -> Iterator[_PgAdmin]:
    """Create/drop databases on the test server; drops what it created at the end."""
    admin = _PgAdmin(pg_server_url)
    try:
        admin.execute("SELECT 1")
    except Exception as exc:
        pytest.fail(f"cannot connect to PostgreSQL at {pg_server_url}: {exc}", pytrace=False)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def pg_url(pg_admin: _PgAdmin) -> str:
    """URL of one empty database shared by the whole session (``postgresql+psycopg://``)."""
    return pg_admin.create(prefix="session")


@pytest.fixture(scope="session")
def _sqlite_catalog_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog-template") / "template.db"
    _migrate(f"sqlite:///{path}")
    return path


def _fresh_db(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "catalog.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("_sqlite_catalog_template"), path)
        yield f"sqlite:///{path}"
        return
    admin: _PgAdmin = request.getfixturevalue("pg_admin")
    template = admin.template("catalog", _migrate) if migrated else None
    url = admin.create(template=template)
    try:
        yield url
    finally:
        admin.drop(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for this test: SQLite file under tmp_path, or PostgreSQL."""
    yield from _fresh_db(request, tmp_path, migrated=False)


@pytest.fixture(params=BACKENDS)
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database already migrated to the catalog's head, on SQLite or PostgreSQL."""
    yield from _fresh_db(request, tmp_path, migrated=True)


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Any]:
    """A ``storage.catalog.Catalog`` on a fresh migrated database; disposed afterwards."""
    from storage.catalog import Catalog

    cat = Catalog(catalog_url)
    try:
        yield cat
    finally:
        cat.dispose()
