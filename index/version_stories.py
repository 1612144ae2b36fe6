"""Margins and stories of a version: computed over all its live passages, whatever segments
hold them, when the version is written (index.commit).

The stories (index.stories) and passage links (index.margins) depend on the whole corpus: a new
document can join an old story, a deleted one can split it. So each version computes them for
all its live passages, taking the cross-language neighbourhoods of unchanged passages from the
version it replaces (index.margins.update_neighbours: only neighbourhoods that can have changed
are searched; the result is the same as a full search). This is the one part of an update whose
cost grows with the corpus (the model's vectors of every live passage are read).

Files of the version: ``margins.npy`` (each live passage's k-NN means, in passage-id order),
``neighbours.npy`` (their neighbours, as rows of that order) and ``stories.sqlite`` (the store's
story tables; passage ids are the index's).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from index.manifest import EMBEDDINGS, MARGINS, NEIGHBOURS, SEGMENTS, STORE, STORIES, Manifest, read_manifest
from index.margins import LINK_THRESHOLD, MARGIN_K, cross_language_neighbours, passage_links, update_neighbours
from index.stories import DATE_WINDOW_DAYS, DocInfo, StoryMember, group_stories
from index.store import PassageStore, write_store
from index.vectors import load_embeddings, save_embeddings


def live_corpus(pairs: list[tuple[Path, dict]], deleted: dict[str, dict]):
    """(documents, passages in id order, their model vectors) of the live rows of the segments."""
    documents, passages, vectors = [], [], []
    for folder, info in sorted(pairs, key=lambda pair: pair[1]["base"]):
        dead = deleted.get(info["name"], {"rows": [], "documents": []})
        dead_rows, dead_docs = set(dead["rows"]), set(dead["documents"])
        store = PassageStore(folder / STORE)
        try:
            documents += [d for d in store.all_documents() if d.doc_id not in dead_docs]
            rows = store.all_passages()
        finally:
            store.close()
        keep = np.asarray([i for i in range(len(rows)) if i not in dead_rows], np.int64)
        passages += [rows[i] for i in keep.tolist()]
        if len(keep):
            vectors.append(np.asarray(load_embeddings(folder / EMBEDDINGS)[keep], np.float32))
    dim = pairs[0][1]["dim"] if pairs else 1
    return documents, passages, (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32))


def write_version_stories(build_dir: Path, pairs: list[tuple[Path, dict]], deleted: dict[str, dict],
                          previous: Path | None) -> dict:
    """Write margins.npy, neighbours.npy and stories.sqlite into ``build_dir``; the manifest's
    ``stories`` entry. ``previous``: the version folder this one replaces (its neighbourhoods)."""
    started = time.perf_counter()
    documents, passages, vectors = live_corpus(pairs, deleted)
    langs = [p.lang for p in passages]
    lists = len(vectors) * max(0, len(set(langs)) - 1)
    old = _previous_neighbours(previous) if previous is not None else None
    if old is None:
        neighbours, searched = cross_language_neighbours(vectors, langs), lists
    else:
        old_id, old_neighbours, old_langs = old
        old_of = np.array([old_id.get((p.doc_id, p.lang, p.text), -1) for p in passages], np.int64)
        neighbours, searched = update_neighbours(vectors, langs, old_neighbours, old_langs, old_of)
    links = passage_links(neighbours, langs, LINK_THRESHOLD)
    position = {d.doc_id: i for i, d in enumerate(documents)}
    passage_doc = np.array([position[p.doc_id] for p in passages], np.int64)
    docs = [DocInfo(d.doc_id, d.title, d.lang, d.published, d.source) for d in documents]
    stories, members, kept = group_stories(docs, passage_doc, links, DATE_WINDOW_DAYS)
    links = tuple(x[kept] for x in links)
    ids = np.array([p.passage_id for p in passages], np.int64)  # row → passage id
    members = [StoryMember(m.doc_id, m.story_id, m.lang, m.published, m.source, int(ids[m.best_passage]), m.links)
               for m in members]
    id_links = (ids[np.asarray(links[0], np.int64)], ids[np.asarray(links[1], np.int64)], links[2], links[3])
    save_embeddings(build_dir / MARGINS, neighbours.means)
    np.save(build_dir / NEIGHBOURS, neighbours.ids, allow_pickle=False)
    write_store(build_dir / STORIES, [], [], {}, stories, members, id_links)
    return {"margin": "ratio", "k": MARGIN_K, "margin_languages": list(neighbours.langs), "link_threshold": LINK_THRESHOLD,
            "date_window_days": DATE_WINDOW_DAYS, "links": int(len(links[0])), "stories": len(stories),
            "multi_document_stories": sum(1 for s in stories if s.size > 1),
            "neighbour_lists_searched": int(searched), "neighbour_lists": int(lists),
            "seconds": round(time.perf_counter() - started, 3)}


def _previous_neighbours(folder: Path):
    """The replaced version's passages, by (doc_id, language, text) → row, its neighbour rows and
    their language columns (None when it has none or they cannot be read: then every
    neighbourhood is searched)."""
    from index.commit import read_deleted
    from polyseek.errors import PolyseekError

    try:
        manifest: Manifest = read_manifest(folder)
        if NEIGHBOURS not in manifest.files:
            return None
        ids = np.load(folder / NEIGHBOURS, allow_pickle=False)
        pairs = [(folder / SEGMENTS / info["name"], info) for info in manifest.segments]
        _, passages, _ = _live_passages(pairs, read_deleted(folder, manifest))
    except (PolyseekError, OSError, ValueError):
        return None
    columns = manifest.stories.get("margin_languages")
    if ids.dtype != np.int64 or ids.ndim != 3 or len(ids) != len(passages) or not isinstance(columns, list):
        return None
    old_id: dict = {}
    for row, p in enumerate(passages):
        key = (p.doc_id, p.lang, p.text)
        old_id[key] = -1 if key in old_id else row  # a passage repeated in its document: searched afresh
    return old_id, ids, tuple(columns)


def _live_passages(pairs, deleted):
    """The live passages of the segments in id order (no vectors read)."""
    passages = []
    for folder, info in sorted(pairs, key=lambda pair: pair[1]["base"]):
        dead_rows = set(deleted.get(info["name"], {"rows": []})["rows"])
        store = PassageStore(folder / STORE)
        try:
            rows = store.all_passages()
        finally:
            store.close()
        passages += [p for i, p in enumerate(rows) if i not in dead_rows]
    return None, passages, None
