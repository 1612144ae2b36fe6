"""The manifest: what an index is, and which model must encode its queries.

``manifest.json`` is written last into a version folder; a folder without one is not an index.
Readers check the format version and the files' sizes before trusting anything else.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from polyseek.errors import IndexFormatError

FORMAT_VERSION = 3  # 2: document metadata (url, source, published, author, pages); 3: margins and stories
MANIFEST = "manifest.json"
STORE = "store.sqlite"
VECTORS = "vectors.faiss"
EMBEDDINGS = "embeddings.npy"  # the model's vectors (float32, passage-id order): updates reuse them
MARGINS = "margins.npy"  # each passage's mean cosine to its k nearest passages in other languages (index.margins)


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
    stories: dict = field(default_factory=dict)  # index.margins / index.stories settings, counts and seconds


def write_manifest(folder: Path, manifest: Manifest) -> None:
    atomic_write_text(folder / MANIFEST, json.dumps(asdict(manifest), indent=2, ensure_ascii=False) + "\n")


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing: this folder is not a complete index; rebuild it") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path} is corrupt ({exc}): rebuild the index") from exc
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{path} has index format version {version!r}; this Polyseek reads version {FORMAT_VERSION}. "
            "Rebuild the index with this version (python -m index build CORPUS).")
    try:
        manifest = Manifest(**data)
    except TypeError as exc:
        raise IndexFormatError(f"{path} does not have the fields of a version {FORMAT_VERSION} manifest ({exc}): rebuild the index") from exc
    for name, size in manifest.files.items():
        actual = (folder / name).stat().st_size if (folder / name).is_file() else None
        if actual != size:
            state = "missing" if actual is None else f"{actual:,} bytes, the manifest says {size:,}"
            raise IndexFormatError(f"{folder / name} is {state}: the index is damaged; rebuild it")
    return manifest


def file_digest(path: Path) -> str:
    """blake2b-256 of a file's bytes (read in 1 MiB blocks)."""
    import hashlib

    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
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
