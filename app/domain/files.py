"""Every file Crossledger writes goes through here: written beside its final place, then renamed into it.

A kill, a full disk or a crash half-way leaves the previous file (or none), never a half-written one:
the new content goes to a hidden temporary file in the same folder, is flushed to the disk, and only
then takes the final name with one ``os.replace`` (atomic on every platform we run on).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

STALE_AFTER = 3600  # seconds: a temporary file this old beside its target was left by a killed writer

# Called with the temporary path once it is complete, just before the rename. Tests use it to stop a
# process at the one moment a kill must not hurt; it is never set in normal use.
before_replace: Callable[[Path], None] | None = None


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_temp(folder: Path, name: str, mode: int) -> Path:
    """A new empty file beside ``name``; ``mode`` is filtered by the umask as for any new file."""
    for _ in range(100):
        tmp = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name beside {folder / name}")


@contextlib.contextmanager
def atomic_path(path: str | Path, *, private: bool = False, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write the whole file to; on success it becomes ``path``.

    ``private`` makes the file readable by its owner only (databases, backups). ``durable=False`` skips
    the flush to disk (still whole-or-nothing against a killed process, not against a power cut): for
    the sandboxes' state, saved on every request.
    """
    path = Path(path)
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    keep = None
    if not private:
        try:
            keep = path.stat().st_mode & 0o777  # replacing a file keeps its permissions
        except OSError:
            keep = None
    tmp = _new_temp(folder, path.name, 0o600 if private else 0o666)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        if keep is not None and os.name == "posix":
            os.chmod(tmp, keep)
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        _fsync_dir(folder)
        _sweep(folder, path.name)


def _sweep(folder: Path, name: str) -> None:
    """Remove what a killed writer of ``name`` left behind: its hidden temporary files, once they are old
    enough that no other process can still be writing them."""
    cutoff = time.time() - STALE_AFTER
    for left in folder.glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            if left.stat().st_mtime < cutoff:
                left.unlink()


def write_bytes(path: str | Path, data: bytes, *, private: bool = False, durable: bool = True) -> Path:
    with atomic_path(path, private=private, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, private: bool = False, durable: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), private=private, durable=durable)
