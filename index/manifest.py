"""The manifest: what an index is, and which model must encode its queries.

``manifest.json`` is written last into a version folder; a folder without one is not an index.
Readers check the format version and the files' sizes before trusting anything else.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath

from polyseek.errors import IndexFormatError

FORMAT_VERSION = 5  # 2: document metadata (url, source, published, author, pages); 3: margins and stories; 4: segments;
# 5: margins and stories kept per version as the writer's state (neighbours by passage id, their cosines, links); FAISS rows padded to a multiple of 16 floats
MANIFEST = "manifest.json"
STORE = "store.sqlite"
VECTORS = "vectors.faiss"
EMBEDDINGS = "embeddings.npy"  # the model's vectors (float32, passage-id order): updates reuse them
MARGINS = "margins.npy"  # each passage's mean cosine to its k nearest passages in other languages (index.margins)
NEIGHBOURS = "neighbours.npy"  # those k nearest passages' ids (int32 or int64, passage x language x k): updates reuse them
NEIGHBOUR_COSINES = "neighbour_cosines.npy"  # their cosines (float32, as NEIGHBOURS)
MARGIN_ROWS = "margin_rows.npy"  # each live passage's id, language column and document (index.version_stories)
LINKS = "links.npy"  # every passage link before grouping into stories (index.version_stories)
#: Files only the writer reads (an update's starting point): a reader need not check them.
WRITER_STATE = (NEIGHBOURS, NEIGHBOUR_COSINES, MARGIN_ROWS, LINKS)
STORIES = "stories.sqlite"  # the version's stories and passage links (index.stories; the store's story tables)
CATALOG = "catalog.sqlite"  # the corpus as the version saw it: files (size, time, digest) and their documents
DELETED = "deleted.json"  # per segment: the rows and documents this version removed from it
SEGMENTS = "segments"  # the version's segments, one folder each (index.segment)
SEGMENT_NAME = re.compile(r"s-[A-Za-z0-9._-]{1,100}")
MEANS = "means.npy"  # the language means (float32, one row per language of ``languages``, sorted)


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: str
    model_fingerprint: str
    dim: int
    metric: str
    vector_index: str
    language_prior: float  # vectors are stored minus their language's (shrunk) mean
    prompts: dict[str, str]
    passages: int
    documents: int
    languages: dict[str, int]
    chunk_tokens: int
    corpus: str
    built_at: str
    build_seconds: float
    files: dict[str, int] = field(default_factory=dict)  # file name -> size in bytes
    libraries: dict[str, str] = field(default_factory=dict)
    lexical: str = ""  # tokenizer of the BM25 index in bm25/ ("" = none: dense search only)
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> blake2b-256 hex digest
    fields: dict[str, str] = field(default_factory=dict)  # JSONL/CSV field names (ours -> the export's)
    vector_params: dict = field(default_factory=dict)  # index.vectors.plan_vector_index + tuned nprobe, recall
    segments: list = field(default_factory=list)  # index.segment descriptions, in id order
    next_id: int = 0  # the first passage id the next segment may use
    limits: dict = field(default_factory=dict)  # the documents' budgets this version was read with
    stories: dict = field(default_factory=dict)  # index.margins / index.stories settings, counts and seconds


def write_manifest(folder: Path, manifest: Manifest) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(asdict(manifest), indent=2, ensure_ascii=False) + "\n")


#: A manifest is a few kilobytes; one larger than this is not one.
MANIFEST_MAX_BYTES = 1 << 20


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a version folder, checked: every field of the right type, every file it
    lists a regular file (not a link, FIFO or device) of the recorded size. IndexFormatError
    naming what is wrong otherwise; never a hang or another kind of error."""
    path = folder / MANIFEST
    try:
        data = json.loads(read_small_file(path, MANIFEST_MAX_BYTES).decode("utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing: this folder is not a complete index; rebuild it") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise IndexFormatError(f"{path} is corrupt ({type(exc).__name__}: {str(exc)[:200]}): rebuild the index") from exc
    except OSError as exc:
        raise IndexFormatError(f"{path} cannot be read ({exc.strerror or exc}): rebuild the index") from exc
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path} has index format version {version!r}; this Polyseek reads version {FORMAT_VERSION}. "
            "Rebuild the index with this version (python -m index build CORPUS).")
    try:
        manifest = Manifest(**data)
    except TypeError as exc:
        raise IndexFormatError(f"{path} does not have the fields of a version {FORMAT_VERSION} manifest ({exc}): rebuild the index") from exc
    _check_fields(manifest, path)
    for name, size in manifest.files.items():
        actual = regular_file_size(folder / name)
        if actual != size:
            state = "missing" if actual is None else f"{actual:,} bytes, the manifest says {size:,}"
            raise IndexFormatError(f"{folder / name} is {state}: the index is damaged; rebuild it")
    return manifest


_FIELD_TYPES = {"int": int, "str": str, "float": float, "dict[str, str]": (str, str), "dict[str, int]": (str, int),
                "dict": dict, "list": list}


def _check_fields(manifest: Manifest, path: Path) -> None:
    """Every field of the type the dataclass declares; counts not negative; file names plain
    paths inside the version folder; the store and the vectors listed."""
    def bad(name: str, rule: str):
        return IndexFormatError(f"{path}: {name} = {str(getattr(manifest, name))[:80]!r} {rule}: the index is damaged; rebuild it")

    def is_a(value, kind) -> bool:
        if kind is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, kind)

    for f in fields(Manifest):
        kind, value = _FIELD_TYPES[f.type], getattr(manifest, f.name)
        if isinstance(kind, tuple):
            ok = isinstance(value, dict) and all(is_a(k, kind[0]) and is_a(v, kind[1]) for k, v in value.items())
        else:
            ok = is_a(value, kind)
        if not ok:
            raise bad(f.name, f"is not of type {f.type}")
        if kind is int and value < 0 or isinstance(kind, tuple) and kind[1] is int and min(value.values(), default=0) < 0:
            raise bad(f.name, "is negative")
    if manifest.dim < 1:
        raise bad("dim", "is not a dimension")
    for name in list(manifest.files) + list(manifest.checksums):
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or "\x00" in name or any(p in (".", "..") for p in parts):
            raise IndexFormatError(f"{path} lists the file {name[:80]!r}, which is not inside the version folder: "
                                   "the index is damaged; rebuild it")
    names = [CATALOG, DELETED, MEANS]
    for info in manifest.segments:
        check_info(info, path)
        names += [f"{SEGMENTS}/{info['name']}/{name}" for name in (STORE, VECTORS, EMBEDDINGS)]
    for name in names:
        if name not in manifest.files:
            raise IndexFormatError(f"{path} does not list {name}: the index is damaged; rebuild it")
    params = manifest.vector_params
    if params.get("kind") == "ivf-sq8" and not (is_a(params.get("nprobe"), int) and params["nprobe"] >= 1):
        raise bad("vector_params", "has no valid nprobe")


def regular_file_size(path: Path) -> int | None:
    """The size of ``path`` when it is a regular file (a link is not followed); None otherwise."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def require_regular(path: Path) -> None:
    """IndexFormatError unless ``path`` is a regular file (not a link, FIFO, device or folder):
    an index is never read through anything that could block or never end."""
    if regular_file_size(path) is None:
        raise IndexFormatError(f"{path} is missing or not a regular file: the index is damaged; rebuild it")


def open_unfollowed(path: Path) -> tuple[int, os.stat_result]:
    """A file descriptor of ``path`` and its status, opened without following a link and without
    blocking on a FIFO (so a FIFO or device is never waited on); reads block again when it is a
    regular file. The caller refuses what is not one, and closes the descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def open_regular(path: Path) -> int:
    """A file descriptor of ``path``, opened without following a link and without blocking on a
    FIFO; OSError, or IndexFormatError when it is not a regular file."""
    fd, info = open_unfollowed(path)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise IndexFormatError(f"{path} is not a regular file: the index is damaged; rebuild it")
    return fd


def read_small_file(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file ``path`` (ValueError when it holds more)."""
    fd = open_regular(path)
    try:
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"more than {limit:,} bytes")
    return data


def file_digest(path: Path) -> str:
    """blake2b-256 of a file's bytes (read in 1 MiB blocks)."""
    import hashlib

    h = hashlib.blake2b(digest_size=32)
    with os.fdopen(open_regular(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(folder: Path, manifest: Manifest, skip: tuple[str, ...] = ()) -> None:
    """Check every file of a version (but ``skip``: files the caller will not read) against the
    digest the manifest recorded: a file damaged without changing size raises IndexFormatError
    naming it, before anything reads it."""
    for name, digest in manifest.checksums.items():
        if name in skip:
            continue
        try:
            actual = file_digest(folder / name)
        except OSError as exc:
            raise IndexFormatError(f"{folder / name} cannot be read ({exc.strerror or exc}): rebuild the index") from exc
        if actual != digest:
            raise IndexFormatError(f"{folder / name} does not match its checksum: the index is damaged; rebuild it")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``path`` so that readers see the old content or the new, never a part."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_info(info, where) -> None:
    """IndexFormatError unless ``info`` has the shape of a segment's description."""
    ok = (isinstance(info, dict) and isinstance(info.get("name"), str) and SEGMENT_NAME.fullmatch(info["name"])
          and all(isinstance(info.get(k), int) and not isinstance(info.get(k), bool) and info[k] >= 0
                  for k in ("base", "passages", "documents", "dim", "lexical_length"))
          and isinstance(info.get("languages"), list) and all(isinstance(x, str) for x in info["languages"])
          and isinstance(info.get("counts"), dict) and isinstance(info.get("vector_params"), dict)
          and isinstance(info.get("files"), dict) and isinstance(info.get("checksums"), dict))
    if not ok:
        raise IndexFormatError(f"{where}: a segment description is malformed: the index is damaged; rebuild it")
    params = info["vector_params"]
    if params.get("kind") == "ivf-sq8" and not all(
            isinstance(params.get(key), int) and not isinstance(params[key], bool) and params[key] >= 1
            for key in ("nprobe", *(("filter_nprobe",) if "filter_nprobe" in params else ()))):
        raise IndexFormatError(f"{where}: segment {info['name']} has no valid nprobe: the index is damaged; rebuild it")
