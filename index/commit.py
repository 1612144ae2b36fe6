"""A commit point: a version folder listing its segments and what it deleted from them.

::

    v-20261124T201500-3f9a/
        manifest.json    format 3: model, counts, the segments (index.segment descriptions), and
                         every file's size and checksum (written last)
        catalog.sqlite   the corpus as this version saw it (index.catalog)
        deleted.json     per segment: the rows and documents this version no longer holds
        means.npy        the corpus's language means (live passages only)
        segments/s-…/    one folder per segment: hard links to the segment's immutable files

A version links the files of the segments it keeps, so writing one costs what changed; the
file system frees a segment's files when the last version linking them is removed
(:func:`index.versions.remove_stale`, never while that version is in service).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from index.manifest import (CATALOG, DELETED, EMBEDDINGS, MARGINS, MEANS, SEGMENTS, STORIES, WRITER_STATE, Manifest,
                            file_digest, read_small_file, write_manifest)
from index.segment import LANGUAGES, SEGMENT_MANIFEST, SUMS
from index.balance import LANGUAGE_PRIOR
from index.vectors import load_embeddings
from index.version_stories import write_version_stories
from index.verify import record_written
from index.versions import new_build_dir, publish
from polyseek.errors import IndexFormatError

#: deleted.json is small (deleted ids until a merge reclaims them); larger than this, it is damaged.
DELETED_MAX_BYTES = 256 << 20


def read_deleted(folder: Path, manifest: Manifest) -> dict[str, dict]:
    """Segment name → {"rows": sorted local rows deleted, "documents": doc ids deleted}."""
    try:
        data = json.loads(read_small_file(folder / DELETED, DELETED_MAX_BYTES).decode("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise IndexFormatError(f"{folder / DELETED} cannot be read ({type(exc).__name__}): rebuild the index") from exc
    sizes = {info["name"]: info["passages"] for info in manifest.segments}
    if not isinstance(data, dict) or any(name not in sizes for name in data):
        raise IndexFormatError(f"{folder / DELETED} names segments the version does not hold: rebuild the index")
    out = {}
    for name, entry in data.items():
        rows = entry.get("rows") if isinstance(entry, dict) else None
        docs = entry.get("documents") if isinstance(entry, dict) else None
        if (not isinstance(rows, list) or not isinstance(docs, list) or not all(isinstance(d, str) for d in docs)
                or not all(isinstance(r, int) and not isinstance(r, bool) and 0 <= r < sizes[name] for r in rows)):
            raise IndexFormatError(f"{folder / DELETED}: the deletions of {name} are malformed: rebuild the index")
        out[name] = {"rows": sorted(set(rows)), "documents": sorted(set(docs))}
    return out


def _languages_of(folder: Path, info: dict, rows: np.ndarray) -> list[str]:
    """The language of each of a segment's ``rows``: from its ``languages.npy`` (index.segment),
    or the store of a segment written without one."""
    names = info["languages"]
    if LANGUAGES in info["files"]:
        try:
            codes = np.load(folder / LANGUAGES, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexFormatError(f"{folder / LANGUAGES} is unreadable ({exc}): rebuild the index") from exc
        if codes.shape == (info["passages"],) and codes.dtype == np.int16:
            mine = np.asarray(codes[rows])
            if len(mine) and 0 <= int(mine.min()) and int(mine.max()) < len(names):
                return [names[c] for c in mine.tolist()]
        raise IndexFormatError(f"{folder / LANGUAGES} does not hold the languages its segment describes: rebuild the index")
    from index.manifest import STORE
    from index.store import PassageStore

    store = PassageStore(folder / STORE)
    try:
        return store.languages_of(info["base"] + rows)
    finally:
        store.close()


def corpus_means(segments: list[tuple[Path, dict]], deleted: dict[str, dict], dim: int,
                 prior: float = LANGUAGE_PRIOR) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """The language means and passage counts of the live passages of ``segments`` ((folder,
    description) pairs): each segment's per-language sums, less its deleted rows' vectors, in
    float64 — the same means a build of those passages alone computes (index.balance.language_means)."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for folder, info in segments:
        seg_sums = np.load(folder / SUMS, allow_pickle=False)
        if seg_sums.shape != (len(info["languages"]), dim):
            raise IndexFormatError(f"{folder / SUMS} holds {seg_sums.shape}, not one {dim}-vector per language: rebuild the index")
        seg_sums = np.array(seg_sums, np.float64)
        seg_counts = {lang: int(info["counts"].get(lang, 0)) for lang in info["languages"]}
        rows = deleted.get(info["name"], {}).get("rows", [])
        if rows:
            vectors = load_embeddings(folder / EMBEDDINGS)
            langs = _languages_of(folder, info, np.asarray(rows, np.int64))
            code = {lang: i for i, lang in enumerate(info["languages"])}
            deleted_vectors = np.asarray(vectors[np.asarray(rows, np.int64)], np.float64)
            for lang, vec in zip(langs, deleted_vectors):
                seg_sums[code[lang]] -= vec
                seg_counts[lang] -= 1
        for lang, i in zip(info["languages"], range(len(info["languages"]))):
            if seg_counts[lang] <= 0:
                continue
            sums[lang] = sums.get(lang, np.zeros(dim, np.float64)) + seg_sums[i]
            counts[lang] = counts.get(lang, 0) + seg_counts[lang]
    total = sum(counts.values())
    if not total:
        return {}, {}
    overall = sum(sums.values()) / total
    means = {lang: ((sums[lang] + prior * overall) / (counts[lang] + prior)).astype(np.float32) for lang in sorted(sums)}
    return means, counts


def save_means(path: Path, means: dict[str, np.ndarray], dim: int) -> None:
    array = np.stack([means[lang] for lang in sorted(means)]) if means else np.zeros((0, dim), np.float32)
    np.save(path, np.ascontiguousarray(array, "<f4"), allow_pickle=False)


def load_means(folder: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    try:
        array = np.load(folder / MEANS, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{folder / MEANS} is unreadable ({exc}): rebuild the index") from exc
    langs = sorted(manifest.languages)
    if array.shape != (len(langs), manifest.dim) or array.dtype != np.dtype("<f4"):
        raise IndexFormatError(f"{folder / MEANS} holds {array.shape}, not one {manifest.dim}-dimension mean per "
                               "language of the index: rebuild the index")
    return {lang: array[i].copy() for i, lang in enumerate(langs)}


def segment_files(info: dict) -> list[str]:
    return [*info["files"], SEGMENT_MANIFEST]


def commit(index_dir: Path, build_dir: Path | None, manifest: Manifest, segments: list[dict],
           sources: dict[str, Path], deleted: dict[str, dict], write_catalog, previous: Path | None = None,
           renumber=None) -> Path:
    """Complete the version in ``build_dir`` and put it in service (the caller holds the writer
    lock). ``segments``: descriptions of the version's segments; those named in ``sources``
    (name → folder of the segment in an older version) are linked from there, the others are
    already written in ``build_dir/segments``. ``deleted``: rows and documents removed per
    segment. ``write_catalog(path)`` writes the catalog. ``manifest`` gives the fields that do not
    depend on the segments. ``previous``: the version this one is made from (its margins
    and stories are updated, not computed again); ``renumber``: (old ids, new ids) of the
    passages a merge moved."""
    build_dir = build_dir or new_build_dir(index_dir)
    try:
        seg_root = build_dir / SEGMENTS
        seg_root.mkdir(exist_ok=True)
        for info in segments:
            target = seg_root / info["name"]
            if info["name"] in sources:
                for name in segment_files(info):
                    (target / name).parent.mkdir(parents=True, exist_ok=True)
                    os.link(sources[info["name"]] / name, target / name)
        deleted = {name: d for name, d in deleted.items() if d["rows"]}
        pairs = [(seg_root / info["name"], info) for info in segments]
        means, counts = corpus_means(pairs, deleted, manifest.dim)
        save_means(build_dir / MEANS, means, manifest.dim)
        (build_dir / DELETED).write_text(json.dumps(deleted, ensure_ascii=False), encoding="utf-8")
        write_catalog(build_dir / CATALOG)
        story_info = write_version_stories(build_dir, pairs, deleted, previous, renumber)
        files, checksums = {}, {}
        for info in segments:
            prefix = f"{SEGMENTS}/{info['name']}/"
            for name, size in info["files"].items():
                files[prefix + name] = size
                checksums[prefix + name] = info["checksums"][name]
            files[prefix + SEGMENT_MANIFEST] = (seg_root / info["name"] / SEGMENT_MANIFEST).stat().st_size
            checksums[prefix + SEGMENT_MANIFEST] = file_digest(seg_root / info["name"] / SEGMENT_MANIFEST)
        for name in (CATALOG, DELETED, MEANS, MARGINS, STORIES, *WRITER_STATE):
            files[name] = (build_dir / name).stat().st_size
            checksums[name] = file_digest(build_dir / name)
        largest = max(segments, key=lambda info: info["passages"], default=None)
        params = dict(largest["vector_params"]) if largest else {"kind": "flat"}
        live_docs = sum(info["documents"] - len(deleted.get(info["name"], {}).get("documents", [])) for info in segments)
        write_manifest(build_dir, replace(
            manifest, passages=sum(counts.values()), documents=live_docs,
            languages=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            vector_index="IDMap2,Flat" if params["kind"] == "flat" else "IVF,SQ8", vector_params=params,
            segments=sorted(segments, key=lambda info: info["base"]), files=files, checksums=checksums,
            stories=story_info,
            next_id=max([manifest.next_id] + [info["base"] + info["passages"] for info in segments])))
        version = publish(index_dir, build_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    # The segments written for this version were hashed as they were written: recorded as checked.
    record_written(index_dir, version, [info for info in segments if info["name"] not in sources])
    return version
