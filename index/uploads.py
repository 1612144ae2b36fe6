"""Adding uploaded articles to a corpus folder, safely.

* A file name from a browser is untrusted: only its last path component is kept, reduced to
  letters, digits, ``. - _`` and spaces, never hidden, never ``..``; its extension must be one
  the corpus reader knows.
* Content is checked with the corpus reader before anything is written, so a file the next build
  would skip (binary, undecodable, empty, too large) is refused now, with the reason.
* Nothing is overwritten unless asked: a new file is linked into place only if the name is free
  (atomic no-clobber); a replacement is an atomic rename. A crash leaves either the old file or
  the new one, plus at most a hidden temporary file the reader ignores.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from index.corpus import EXTENSIONS, Document, SkipDocument, documents_from_bytes
from polyseek.errors import CorpusError

#: Largest accepted upload, per file (the page's uploader is set to the same limit).
UPLOAD_MAX_BYTES = 10 * 1024 * 1024
NAME_MAX_CHARS = 120
#: File systems count a name's length in bytes (255 on most): 120 CJK characters are 360 bytes.
NAME_MAX_BYTES = 200
_UNSAFE = re.compile(r"[^\w.\- ]+", re.UNICODE)


class UnsafeName(ValueError):
    pass


@dataclass
class UploadResult:
    saved: list[str] = field(default_factory=list)  # new files, as names in the corpus folder
    replaced: list[str] = field(default_factory=list)  # existing files replaced (overwrite asked)
    conflicts: list[str] = field(default_factory=list)  # names taken; not written
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (original name, reason)

    @property
    def written(self) -> list[str]:
        return self.saved + self.replaced


def safe_filename(name: str) -> str:
    """A file name safe to create in the corpus folder, or UnsafeName saying why there is none."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", str(name)))[-1]
    base = _UNSAFE.sub("_", base).strip(" .")
    base = re.sub(r"_+", "_", base)
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem.strip(" ._"):
        raise UnsafeName(f"{name!r} has no usable file name: name it like 'article.txt'")
    ext = "." + ext.lower()
    if ext not in EXTENSIONS:
        raise UnsafeName(f"{name!r}: unsupported format {ext!r}; Polyseek reads {', '.join(EXTENSIONS)}")
    stem = stem[: NAME_MAX_CHARS - len(ext)]
    stem = stem.encode("utf-8")[: NAME_MAX_BYTES - len(ext)].decode("utf-8", errors="ignore").rstrip(" .")
    return stem + ext


def existing(corpus_dir: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Which of the uploads' safe names already exist in the corpus folder (to ask first)."""
    root = Path(corpus_dir)
    out = []
    for name in names:
        try:
            if os.path.lexists(root / safe_filename(name)):
                out.append(safe_filename(name))
        except (UnsafeName, OSError, ValueError):
            pass
    return out


def save_uploads(corpus_dir: str | os.PathLike, files: Iterable[tuple[str, bytes]], overwrite: bool = False,
                 max_bytes: int = UPLOAD_MAX_BYTES) -> UploadResult:
    """Write ``(name, content)`` uploads into ``corpus_dir``. Each file is saved, replaced (only
    with ``overwrite``), reported as a conflict, or rejected with its reason."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise CorpusError(f"corpus folder {str(root)!r} does not exist: create it, or point POLYSEEK_CORPUS at yours")
    result, seen = UploadResult(), set()
    for original, data in files:
        try:
            name = safe_filename(original)
        except UnsafeName as exc:
            result.rejected.append((original, str(exc)))
            continue
        if name.casefold() in seen:
            result.rejected.append((original, f"another file in this upload is also named {name!r}"))
            continue
        seen.add(name.casefold())
        if len(data) > max_bytes:
            result.rejected.append((original, f"too large: {len(data):,} bytes, the limit is {max_bytes:,}"))
            continue
        try:
            if not any(isinstance(d, Document) for d in documents_from_bytes(data, name)):
                raise SkipDocument("no record with text in this export")
        except SkipDocument as exc:
            result.rejected.append((original, str(exc)))
            continue
        dest = root / name
        try:
            if os.path.lexists(dest) and not overwrite:
                result.conflicts.append(name)
                continue
            replaced = _write(dest, data, overwrite)
        except OSError as exc:  # a folder of that name, a full disk, no permission…
            result.rejected.append((original, f"cannot be written as {name!r} in {root}: "
                                              f"{exc.strerror or type(exc).__name__}"))
            continue
        if replaced is None:
            result.conflicts.append(name)
        else:
            (result.replaced if replaced else result.saved).append(name)
    return result


def _write(dest: Path, data: bytes, overwrite: bool) -> bool | None:
    """Write atomically. True: replaced a file; False: created one; None: the name was taken
    meanwhile and ``overwrite`` is off."""
    tmp = dest.parent / f".upload-{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            existed = dest.exists()
            os.replace(tmp, dest)
            return existed
        try:
            os.link(tmp, dest)  # fails if dest exists: never clobbers
        except FileExistsError:
            return None
        except OSError:  # a file system without hard links: exclusive create instead
            try:
                with open(dest, "xb") as fh:
                    fh.write(data)
            except FileExistsError:
                return None
        return False
    finally:
        tmp.unlink(missing_ok=True)
