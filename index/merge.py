"""Merging segments: a tiered merge policy, and ``optimize`` (everything into one segment).

The policy is a small TieredMergePolicy (Lucene): segments are grouped in tiers of similar size
(a tier spans a factor of :data:`TIER_FACTOR` in live passages; segments under
:data:`FLOOR` count as that size); when a tier holds more than :data:`SEGMENTS_PER_TIER`
segments, its :data:`MERGE_AT_ONCE` smallest are merged into one; a segment with more than
:data:`DELETES_ALLOWED` of its rows deleted is rewritten without them. An update merges only
what is cheap (at most :data:`AUTO_MERGE_MAX` live passages, from the vectors already stored:
nothing is embedded again); ``python -m index optimize`` merges everything.

A merge writes a new segment and publishes a new version listing it instead of the segments it
replaces, exactly as an update does: a crash leaves the previous version in service.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from index.commit import commit, read_deleted
from index.manifest import CATALOG, SEGMENTS, read_manifest
from index.segment import write_segment
from index.version_stories import live_corpus
from index import vectors as vector_module
from index.balance import language_means
from index.vectors import tuning_queries
from index.verify import verify_version
from index.versions import current_version, new_build_dir, remove_stale, writer_lock
from polyseek import settings
from polyseek.embedder import load_embedder

FLOOR = 1_000
TIER_FACTOR = 10
SEGMENTS_PER_TIER = 10
MERGE_AT_ONCE = 10
DELETES_ALLOWED = 0.33
AUTO_MERGE_MAX = 50_000


def live_sizes(segments: list[dict], deleted: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """Segment name → (live rows, all rows)."""
    return {info["name"]: (info["passages"] - len(deleted.get(info["name"], {}).get("rows", [])), info["passages"])
            for info in segments}


def live_total(segments: list[dict], deleted: dict[str, dict]) -> int:
    """The live rows of ``segments``: what a new segment's IVF cells are sized for."""
    return sum(live for live, _ in live_sizes(segments, deleted).values())


def plan_merge(sizes: dict[str, tuple[int, int]], limit: int = AUTO_MERGE_MAX) -> list[str]:
    """The segments to merge now (none: an empty list)."""
    tiers: dict[int, list[tuple[int, str]]] = {}
    for name, (live, _) in sizes.items():
        tier = int(math.log(max(live, FLOOR) / FLOOR, TIER_FACTOR))
        tiers.setdefault(tier, []).append((live, name))
    for tier in sorted(tiers):
        members = sorted(tiers[tier])
        if len(members) > SEGMENTS_PER_TIER:
            pick = members[:MERGE_AT_ONCE]
            if sum(live for live, _ in pick) <= limit:
                return [name for _, name in pick]
    for name, (live, total) in sorted(sizes.items(), key=lambda kv: kv[1][0]):
        if total and (total - live) / total > DELETES_ALLOWED and live <= limit:
            return [name]
    return []


def auto_merge(index_dir: Path, embedder=None) -> int:
    """Run the merge policy on the version in service (the caller holds the writer lock); the
    number of segments merged (0: none)."""
    folder = current_version(index_dir)
    manifest = read_manifest(folder)
    names = plan_merge(live_sizes(manifest.segments, read_deleted(folder, manifest)))
    if not names:
        return 0
    merge_segments(index_dir, names, embedder)
    return len(names)


def optimize_index(index_dir=None, embedder=None) -> tuple[int, int]:
    """Merge every segment of the index into one (dropping deleted rows) and put it in service.
    Returns (segments before, segments after)."""
    index_dir = settings.index_dir(index_dir)
    with writer_lock(index_dir):
        remove_stale(index_dir)
        folder = current_version(index_dir)
        manifest = read_manifest(folder)
        deleted = read_deleted(folder, manifest)
        before = len(manifest.segments)
        if before <= 1 and not any(d["rows"] for d in deleted.values()):
            return before, before
        merge_segments(index_dir, [info["name"] for info in manifest.segments], embedder)
        return before, len(read_manifest(current_version(index_dir)).segments)


def merge_segments(index_dir: Path, names: list[str], embedder=None) -> Path:
    """Merge the segments ``names`` of the version in service into one new segment (their live
    rows, vectors as stored) and publish the version (the caller holds the writer lock). The
    version's files are checked first (index.verify: segments recorded as checked and unchanged
    are not hashed again), so a file damaged on disk is named, not merged into a segment with
    fresh checksums."""
    started = time.perf_counter()
    folder = current_version(index_dir)
    manifest = read_manifest(folder)
    verify_version(index_dir, folder, manifest)
    deleted = read_deleted(folder, manifest)
    chosen = [(folder / SEGMENTS / info["name"], info) for info in manifest.segments if info["name"] in names]
    base = manifest.next_id
    documents, live, vectors_all = live_corpus(chosen, deleted)
    passages = [replace(p, passage_id=base + i) for i, p in enumerate(live)]
    build_dir = new_build_dir(index_dir)
    try:
        segments = [info for info in manifest.segments if info["name"] not in names]
        sources = {info["name"]: folder / SEGMENTS / info["name"] for info in segments}
        if passages:
            tuning = None
            if embedder is None and len(passages) > vector_module.EXACT_MAX:
                # An approximate segment is tuned on query vectors, which only the model makes.
                embedder = load_embedder(manifest.model)
            if embedder is not None:
                tuning = lambda: tuning_queries(embedder, passages)  # noqa: E731
            segments.append(write_segment(
                build_dir / SEGMENTS / f"s-{build_dir.name.removeprefix('.build-')}", base, documents, passages,
                vectors_all, language_means(vectors_all, [p.lang for p in passages]),
                exact_max=vector_module.EXACT_MAX, tuning_queries=tuning,
                index_size=live_total(manifest.segments, deleted),
                cells_from=[(sources[info["name"]], info) for info in segments]))
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    kept = {name: d for name, d in deleted.items() if name in sources}
    new = replace(manifest, built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  build_seconds=round(time.perf_counter() - started, 3), next_id=base + len(passages))
    renumber = (np.array([p.passage_id for p in live], np.int64), base + np.arange(len(live), dtype=np.int64))
    return commit(index_dir, build_dir, new, segments, sources, kept,
                  lambda path: shutil.copyfile(folder / CATALOG, path), previous=folder, renumber=renumber)
