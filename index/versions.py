"""Versions of an index folder, and the atomic switch between them.

::

    INDEX_DIR/
        CURRENT            names the version in service (replaced atomically)
        v-20261124T015012-3f9a/   manifest.json  store.sqlite  vectors.faiss
        .build-…/          a build in progress (or left by a crash: removed by the next writer)
        .lock              held by the one writer

A build writes a complete version into a ``.build-`` folder, renames it to ``v-…`` and only then
points ``CURRENT`` at it. A reader that opened the previous version keeps answering from it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from index.manifest import atomic_write_text, fsync_dir, read_small_file
from polyseek.errors import IndexFormatError, IndexLockedError, IndexNotFoundError

CURRENT = "CURRENT"
LOCK = ".lock"
_VERSION_NAME = re.compile(r"v-[A-Za-z0-9._-]{1,100}")


def current_version(index_dir: Path) -> Path:
    """The folder of the version in service, or IndexNotFoundError saying how to build one."""
    try:
        name = read_small_file(index_dir / CURRENT, 4096).decode("utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        raise IndexNotFoundError(
            f"no index at {index_dir}. Build one with: python -m index build data/ --index {index_dir}") from None
    except (OSError, ValueError) as exc:  # a link, FIFO or device; too long; not UTF-8
        raise IndexFormatError(f"{index_dir / CURRENT} cannot be read ({getattr(exc, 'strerror', None) or exc}): "
                               "rebuild the index") from None
    if not _VERSION_NAME.fullmatch(name):
        raise IndexFormatError(f"{index_dir / CURRENT} names {name[:80]!r}, not an index version: rebuild the index")
    return index_dir / name


def new_build_dir(index_dir: Path) -> Path:
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / f".build-{_stamp()}"
    path.mkdir()
    return path


def publish(index_dir: Path, build_dir: Path) -> Path:
    """Put the complete version in ``build_dir`` in service; remove the versions it replaces."""
    fsync_dir(build_dir)
    version = index_dir / f"v-{build_dir.name.removeprefix('.build-')}"
    os.replace(build_dir, version)
    fsync_dir(index_dir)
    atomic_write_text(index_dir / CURRENT, version.name + "\n")
    remove_stale(index_dir, keep=version)
    return version


def remove_stale(index_dir: Path, keep: Path | None = None) -> None:
    """Remove build folders and versions out of service. Call only while holding the writer lock."""
    if keep is None:
        try:
            keep = current_version(index_dir)
        except (IndexNotFoundError, IndexFormatError):  # no version in service to keep
            keep = None
    for child in index_dir.iterdir():
        if child.is_dir() and child != keep and (child.name.startswith(".build-") or child.name.startswith("v-")):
            shutil.rmtree(child, ignore_errors=True)


@contextmanager
def writer_lock(index_dir: Path):
    """Hold the single-writer lock. The operating system releases it when its process dies, so
    a crashed writer never leaves a stale lock behind."""
    from filelock import FileLock, Timeout

    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(index_dir / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise IndexLockedError(
            f"another process is writing the index at {index_dir}; wait for it to finish, then try again") from None
    try:
        yield
    finally:
        lock.release()


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
