"""File-system plumbing for the bar store: root resolution, atomic replace, writer locks.

Atomicity: a file is written to a hidden temp name in its final directory, then renamed over
the final name. On a local disk the rename is atomic, so a reader (or a process killed
mid-write) sees the old file or the new one, never half of one. On an object store each PUT of
an object is atomic already.

Durability (local disks): the temp file is fsynced before the rename and its directory after
it (as is the parent of every directory a write creates), so after a power loss a file holds
its old bytes or its complete new ones, never an empty or partial ``data.parquet``; and because
the manifest is written last, it never outlives the data it describes. Remote pyarrow file
systems are left to their own guarantees (an object PUT is durable once it returns).

Locking: on a local file system writers of the same symbol and bar size take an exclusive
``fcntl.flock`` on a lock file under ``<root>/.locks/``; the kernel drops it when the holder
dies, so a killed writer never leaves a stale lock. Object stores have no locks: two writers
of the same symbol race and the last rename wins per partition (no corruption, but one
writer's rows of that partition may be lost), so run one writer per symbol there.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import uuid
from collections.abc import Callable, Iterator

import pyarrow.fs as pafs

from core.errors import StorageError

TEMP_PREFIX = ".tmp-"
LOCK_DIR = ".locks"

# Called with (temp_path, final_path) between writing a temp file and renaming it; tests use
# it to kill a writer at exactly that point.
RenameHook = Callable[[str, str], None]


def resolve_root(
    root: str | os.PathLike[str], filesystem: pafs.FileSystem | None
) -> tuple[pafs.FileSystem, str]:
    """Return the file system and base path for a root path or URI.

    Args:
        root: A local path, or a URI pyarrow understands (``file://``, ``s3://``, ``gs://``...).
        filesystem: An already configured file system; ``root`` is then a path inside it.

    Raises:
        StorageError: if pyarrow cannot open the URI.
    """
    text = os.fspath(root)
    if filesystem is not None:
        return filesystem, text.rstrip("/")
    if "://" not in text:
        return pafs.LocalFileSystem(), os.path.abspath(text)
    return _from_uri(text)


@functools.lru_cache(maxsize=32)
def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    # Cached per process: an object-store client is costly to build and safe to share, and
    # every Ray task that opens the store would otherwise build its own.
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:
        raise StorageError(f"bar store root {uri!r} cannot be opened: {exc}") from exc
    return fs, path.rstrip("/")


def is_local(fs: pafs.FileSystem) -> bool:
    """Return True for the local file system (where rename is atomic and flock works)."""
    return isinstance(fs, pafs.LocalFileSystem)


def temp_path_for(final: str) -> str:
    """Return a hidden, unique temp path in the same directory as ``final``."""
    directory, name = final.rsplit("/", 1)
    return f"{directory}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}"


def atomic_replace(
    fs: pafs.FileSystem,
    final: str,
    write: Callable[[str], None],
    *,
    before_rename: RenameHook | None = None,
) -> None:
    """Write ``final`` through a temp file in its directory, then rename it into place.

    Args:
        fs: The file system.
        final: The path to create or replace.
        write: Writes the complete file to the temp path it is given.
        before_rename: Test hook called between the write and the rename.
    """
    directory = final.rsplit("/", 1)[0]
    if not is_local(fs):
        # A PUT of one object is atomic on object stores, and durable once it returns; remote
        # file systems are left as they are (no fsync through pyarrow's remote file systems).
        fs.create_dir(directory, recursive=True)
        write(final)
        return
    make_dirs_durable(directory)
    temp = temp_path_for(final)
    try:
        write(temp)
        fsync_path(temp)  # the bytes reach the disk before the name points at them
        if before_rename is not None:
            before_rename(temp, final)
        os.replace(temp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_path(directory)  # the rename itself survives a power loss


def fsync_path(path: str) -> None:
    """Flush a local file's (or directory's) data and metadata to the disk.

    Raises:
        OSError: if the path cannot be opened or the disk reports a write error.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(directory: str) -> None:
    """Create a local ``directory`` and its missing parents, each entry fsynced in its parent."""
    missing: list[str] = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    if not missing:
        return
    os.makedirs(directory, exist_ok=True)
    for path in reversed(missing):  # outermost first; each new entry lives in its parent
        fsync_path(os.path.dirname(path))


def remove_stale_temps(fs: pafs.FileSystem, directory: str) -> None:
    """Delete temp files left in ``directory`` by killed writers (call under the lock)."""
    if not is_local(fs) or not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if name.startswith(TEMP_PREFIX):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


@contextlib.contextmanager
def writer_lock(fs: pafs.FileSystem, base: str, key: str) -> Iterator[None]:
    """Hold the exclusive writer lock named ``key`` (a no-op on non-local file systems)."""
    if not is_local(fs):
        yield
        return
    lock_dir = os.path.join(base, LOCK_DIR)
    make_dirs_durable(lock_dir)  # may create the store's root: its entry must survive too
    fd = os.open(os.path.join(lock_dir, f"{key}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
