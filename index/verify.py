"""Checksums checked once per immutable segment.

A version's files are checked against the blake2b digests its manifest records before anything
reads them. Segments never change once written, so a segment whose files were checked is
recorded in ``INDEX_DIR/.verified/<segment>`` with each file's inode, size and modification
time: a later open or update skips its digests while those are unchanged. Any write to a
segment file (a new time, a new size, a file replaced) makes it checked again. A file changed
within :data:`SETTLE_NS` of the check is not recorded (its time may not have moved yet), so a
freshly written file is not recorded until it has settled, except by its writer
(:func:`record_written`: the segments a build, update or merge has just written and hashed are
recorded when the version is published, so its first open hashes no segment). The version's
own files (deletions, means, margins, stories) are always checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from index.manifest import SEGMENTS, Manifest, atomic_write_text, verify_files

VERIFIED = ".verified"
SETTLE_NS = 2_000_000_000


def _stamp(folder: Path, info: dict) -> str | None:
    """What the record of a checked segment says: its files' identity and its digests (None when
    a file is missing or has changed too recently to be recorded)."""
    seg = folder / SEGMENTS / info["name"]
    files = []
    now = time.time_ns()
    for name in sorted(info["checksums"]):
        try:
            st = os.lstat(seg / name)
        except OSError:
            return None
        if now - st.st_mtime_ns < SETTLE_NS:
            return None
        files.append([name, st.st_ino, st.st_size, st.st_mtime_ns])
    body = json.dumps({"files": files, "checksums": info["checksums"]}, sort_keys=True)
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def verify_version(index_dir: Path, folder: Path, manifest: Manifest, skip: tuple[str, ...] = ()) -> None:
    """:func:`index.manifest.verify_files` for the version in ``folder``, skipping the files of
    segments recorded as checked (and ``skip``: files the caller will not read); records what it
    checked. IndexFormatError names a damaged file."""
    marks = index_dir / VERIFIED
    skipped, fresh = set(skip), []
    for info in manifest.segments:
        prefix = f"{SEGMENTS}/{info['name']}/"
        stamp = _stamp(folder, info)
        done = set()
        record = _recorded(marks / info["name"])
        if stamp is not None and record and record.get("stamp") == stamp:
            done = {name for name in record.get("checked", []) if isinstance(name, str)}
        skipped |= {prefix + name for name in done}
        fresh.append((info, stamp, done | {name for name in info["checksums"] if prefix + name not in skip}))
    verify_files(folder, manifest, skip=tuple(skipped))
    for info, stamp, checked in fresh:
        if stamp is not None:
            try:
                marks.mkdir(exist_ok=True)
                atomic_write_text(marks / info["name"], json.dumps({"stamp": stamp, "checked": sorted(checked)}))
            except OSError:  # a read-only index folder: checked again next time
                pass


def record_written(index_dir: Path, folder: Path, infos: list[dict]) -> None:
    """Record segments the writer has just written as checked, so that the first open after a
    build, an update or a merge does not hash them again: their digests were computed from the
    files on disk when they were written (index.segment), which is what a check would do.

    The files' modification times are first set :data:`SETTLE_NS` into the past (atomically per
    file, before the record is written): a later write to one gives it the current time, which
    the record then no longer matches, so the racy-time rule above still holds. Best effort: a
    segment that cannot be recorded is checked at its first open."""
    marks = index_dir / VERIFIED
    past = time.time_ns() - 2 * SETTLE_NS
    for info in infos:
        seg = folder / SEGMENTS / info["name"]
        try:
            for name in sorted(info["checksums"]):
                st = os.lstat(seg / name)
                if st.st_mtime_ns > past:
                    os.utime(seg / name, ns=(st.st_atime_ns, past), follow_symlinks=False)
            stamp = _stamp(folder, info)
            if stamp is not None:
                marks.mkdir(exist_ok=True)
                atomic_write_text(marks / info["name"], json.dumps({"stamp": stamp, "checked": sorted(info["checksums"])}))
        except OSError:
            continue


def forget_others(index_dir: Path, manifest: Manifest) -> None:
    """Remove the records of segments ``manifest`` does not hold (the writer calls this)."""
    marks = index_dir / VERIFIED
    if not marks.is_dir():
        return
    kept = {info["name"] for info in manifest.segments}
    for path in marks.iterdir():
        if path.name not in kept:
            path.unlink(missing_ok=True)


def _recorded(path: Path) -> dict | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > 65536:
            return None
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError, RecursionError):
        return None
