"""Margins, passage links and stories of a version, kept up to date at the cost of what changed.

The stories (index.stories) and passage links (index.margins) depend on the whole corpus: a new
document can join an old story, a deleted one can split it. A build computes them over all live
passages (:func:`full_state`). An update or a merge starts from the version it replaces and
changes only what its new and deleted passages can change (:func:`update_state`); the result is
the one a full computation of the same passages gives:

1. Neighbourhoods. A new passage, or one that lost a neighbour to a deletion, is searched in
   full: one product of its vector with every live passage's (the segments' ``embeddings.npy``,
   memory-mapped). That same product says which old passages a new one enters the k nearest of
   (its cosine beats their k-th in its language): only those lists are merged with it.
2. Links are derived again only for pairs with an end whose neighbourhood changed (as
   :func:`index.margins.passage_links` would derive them); the others are carried.
3. Stories are grouped again only for the connected components (documents joined by links) that
   hold a document whose links changed, and for new and deleted documents; the greedy grouping
   of one component never depends on another, and its order is by document id, not by place.
   The stories file of the replaced version is copied and edited.

Files of the version (all rows in passage-id order of the live passages):

- ``margins.npy``: each passage's k-NN means per language (read by queries);
- ``neighbours.npy`` / ``neighbour_cosines.npy``: the k nearest passage ids per language (int32 while
  ids fit) and their cosines (-1 / -inf where none);
- ``margin_rows.npy``: each passage's id, language column, document (its first passage id), the
  document's day and story;
- ``links.npy``: every link (a < b, margin, cosine), before grouping (the date window may keep a
  link out of the stories);
- ``stories.sqlite``: the store's story tables (stories, members, the links kept inside stories).

Only the first and the last are read by queries; the others are the writer's state.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.manifest import (EMBEDDINGS, LINKS, MARGIN_ROWS, MARGINS, NEIGHBOUR_COSINES, NEIGHBOURS, SEGMENTS, STORE,
                            STORIES, Manifest, read_manifest)
from index.margins import (LINK_THRESHOLD, MARGIN_K, cross_language_neighbours, knn_mean, margin_vectors, passage_links,
                           ratio_margin)
from index.stories import DATE_WINDOW_DAYS, DocInfo, StoryMember, _day as story_day, group_stories, story_id_of
from index.sql_batches import execute_in, select_in
from index.store import PassageStore, write_store
from index.vectors import load_embeddings, save_embeddings

#: A live passage: its id, language column, document (its first passage id), the document's
#: day (date ordinal; -1 when undated) and story (the first passage id of the story's document
#: with the lowest id).
ROW = np.dtype([("id", "<i8"), ("lang", "<i2"), ("doc", "<i8"), ("day", "<i4"), ("story", "<i8")])
LINK = np.dtype([("a", "<i8"), ("b", "<i8"), ("margin", "<f4"), ("cosine", "<f4")])
#: Largest id for which set membership is a table lookup (a table of this many bytes).
TABLE_MAX = 1 << 28


@dataclass
class State:
    """A version's neighbourhoods and links, row-aligned with its live passages."""

    columns: tuple[str, ...]  # language of each column
    rows: np.ndarray  # ROW, sorted by id
    ids: np.ndarray  # (n, columns, k) int64 passage ids, -1 where none
    cosines: np.ndarray  # (n, columns, k) float32, -inf where none
    means: np.ndarray  # (n, columns) float32
    links: np.ndarray  # LINK, sorted by (a, b), a < b


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


def live_passages(pairs: list[tuple[Path, dict]], deleted: dict[str, dict]) -> list:
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
    return passages


def write_version_stories(build_dir: Path, pairs: list[tuple[Path, dict]], deleted: dict[str, dict],
                          previous: Path | None, renumber: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Write the files above into ``build_dir``; return the manifest's ``stories`` entry.
    ``previous``: the version folder this one replaces; ``renumber``: (old ids, new ids) of
    passages a merge gave new ids."""
    started = time.perf_counter()
    done = None
    if previous is not None:
        done = update_state(build_dir, pairs, deleted, previous, renumber)
    if done is None:
        done = full_state(build_dir, pairs, deleted)
    state, searched, lists, work = done
    _save(build_dir, state)
    con = sqlite3.connect(f"file:{build_dir / STORIES}?mode=ro", uri=True)
    try:
        stories, multi = con.execute("SELECT count(*), coalesce(sum(size > 1), 0) FROM stories").fetchone()
        kept = con.execute("SELECT count(*) FROM passage_links").fetchone()[0] // 2
    finally:
        con.close()
    return {"margin": "ratio", "k": MARGIN_K, "margin_languages": list(state.columns), "link_threshold": LINK_THRESHOLD,
            "date_window_days": DATE_WINDOW_DAYS, "links": int(kept), "stories": int(stories),
            "multi_document_stories": int(multi), "neighbour_lists_searched": int(searched),
            "neighbour_lists": int(lists), **work, "seconds": round(time.perf_counter() - started, 3)}


# --- a full computation (a build, or a change of the languages) ---

def full_state(build_dir: Path, pairs, deleted) -> tuple[State, int, int, dict]:
    documents, passages, vectors = live_corpus(pairs, deleted)
    langs = [p.lang for p in passages]
    columns = tuple(sorted(set(langs)))
    code = {lang: i for i, lang in enumerate(columns)}
    first: dict[str, int] = {}
    for p in passages:
        first.setdefault(p.doc_id, p.passage_id)
    rows = np.zeros(len(passages), ROW)
    rows["id"] = [p.passage_id for p in passages]
    rows["lang"] = [code[lang] for lang in langs]
    rows["doc"] = [first[p.doc_id] for p in passages]
    day = {d.doc_id: _day(d.published) for d in documents}
    rows["day"] = [day[p.doc_id] for p in passages]
    found = cross_language_neighbours(vectors, langs)
    ids = np.where(found.ids >= 0, rows["id"][np.maximum(found.ids, 0)], -1)
    a, b, margin, cosine = passage_links(found, langs, LINK_THRESHOLD)
    links = _links(rows["id"][a], rows["id"][b], margin, cosine)
    state = State(columns, rows, ids, found.cosines, found.means, links)
    info = {first[d.doc_id]: DocInfo(d.doc_id, d.title, d.lang, d.published, d.source)
            for d in documents if d.doc_id in first}
    stories, members, kept = _group(info, links, state)
    _set_stories(state.rows, members, {d.doc_id: key for key, d in info.items()})
    write_store(build_dir / STORIES, [], [], {}, stories, members,
                (kept["a"], kept["b"], kept["margin"], kept["cosine"]))
    lists = len(passages) * max(0, len(columns) - 1)
    return state, lists, lists, {"stories_edited": 0, "documents_regrouped": len(documents)}


def _day(published: str) -> int:
    found = story_day(published)
    return found.toordinal() if found is not None else -1


def _set_stories(rows: np.ndarray, members: list[StoryMember], key_of: dict[str, int]) -> None:
    """Record in ``rows`` the story of the documents of ``members`` (doc_id → first passage id
    in ``key_of``): the key of its document with the lowest id."""
    lowest: dict[str, str] = {}
    for m in members:
        if m.story_id not in lowest or m.doc_id < lowest[m.story_id]:
            lowest[m.story_id] = m.doc_id
    docs = np.array(sorted(key_of[m.doc_id] for m in members), np.int64)
    story = {key_of[m.doc_id]: key_of[lowest[m.story_id]] for m in members}
    where = _member(rows["doc"], docs)
    rows["story"][where] = [story[d] for d in rows["doc"][where].tolist()]


def _group(info: dict[int, DocInfo], links: np.ndarray, state: State):
    """Stories of the documents ``info`` (first passage id → DocInfo) from ``links`` (all with
    both ends in those documents): (stories, members with passage ids, links kept)."""
    keys = sorted(info, key=lambda key: info[key].doc_id)  # by id: the grouping's order never depends on places
    position = {key: i for i, key in enumerate(keys)}
    pids = np.unique(np.concatenate([links["a"], links["b"], np.asarray(keys, np.int64)]))
    doc_of = _lookup(state.rows, pids)["doc"]
    passage_doc = np.array([position[int(d)] for d in doc_of.tolist()], np.int64)
    local = (np.searchsorted(pids, links["a"]), np.searchsorted(pids, links["b"]), links["margin"], links["cosine"])
    stories, members, kept = group_stories([info[key] for key in keys], passage_doc, local, DATE_WINDOW_DAYS)
    members = [StoryMember(m.doc_id, m.story_id, m.lang, m.published, m.source, int(pids[m.best_passage]), m.links)
               for m in members]
    return stories, members, links[kept]


# --- an update: what changed ---

def update_state(build_dir: Path, pairs, deleted, previous: Path, renumber=None) -> tuple[State, int, int, dict] | None:
    """The state of the new version from the one of ``previous``; None when that cannot be
    used (missing or unreadable): then the caller computes it in full. A language that comes
    (or goes) adds (or drops) a column."""
    old, prev_pairs = _load_state(previous)
    if old is None:
        return None
    k = old.ids.shape[2]
    if renumber is not None and len(renumber[0]):
        old = _renumber(old, *renumber)
    live = _live_ids(pairs, deleted)
    place = np.minimum(np.searchsorted(live, old.rows["id"]), max(len(live) - 1, 0))
    carried = (live[place] == old.rows["id"]) if len(live) else np.zeros(len(old.rows), bool)
    dead = old.rows[~carried]
    added = np.setdiff1d(live, old.rows["id"], assume_unique=True)
    new_rows, new_langs = _passage_rows(pairs, added)
    columns = tuple(sorted({old.columns[c] for c in np.unique(old.rows["lang"][carried]).tolist()} | set(new_langs)))
    if not len(live):
        return None
    if columns != old.columns:  # a language came or went: a column for it (filled below), or none
        old = _recolumn(old, columns)
    code = {lang: i for i, lang in enumerate(columns)}
    new_rows["lang"] = [code[lang] for lang in new_langs]
    n_old, n_new, cols = int(carried.sum()), len(added), len(columns)
    every = carried.all()  # (no copy of the old rows then, but for the one that appends the new)
    kind = old.ids.dtype if int(live[-1]) < np.iinfo(np.int32).max else np.int64
    rows = np.concatenate([old.rows if every else old.rows[carried], new_rows])
    ids = np.concatenate([old.ids if every else old.ids[carried], np.full((n_new, cols, k), -1, kind)]).astype(kind, copy=False)
    cos = np.concatenate([old.cosines if every else old.cosines[carried], np.full((n_new, cols, k), -np.inf, np.float32)])
    means = np.concatenate([old.means if every else old.means[carried], np.full((n_new, cols), np.nan, np.float32)])
    order = np.argsort(rows["id"], kind="stable")
    if not np.array_equal(order, np.arange(len(order))):
        rows, ids, cos, means = rows[order], ids[order], cos[order], means[order]
    is_new = _member(rows["id"], added) if n_new else np.zeros(len(rows), bool)
    # 1. Which lists are searched in full: new passages, and those that lost a neighbour.
    lost = np.zeros(len(rows), bool)
    if len(dead):
        lost = _member(ids, dead["id"]).any(axis=(1, 2))
    query = np.flatnonzero(is_new | lost)
    changed = np.zeros(len(rows), bool)
    changed[query] = True
    if len(query):
        sims = _products(pairs, rows["id"], rows["id"][query])  # (rows, queries) cosines
        _search(rows["lang"], rows["id"], ids, cos, sims, query, k)
        _enter(rows["lang"], rows["id"], ids, cos, sims, query, is_new, changed, k)
    means[changed] = knn_mean(cos[changed])
    state = State(columns, rows, ids, cos, means, old.links)
    # 2. Links: those with an end that changed (or is gone) are derived again.
    touched = np.sort(np.concatenate([dead["id"], rows["id"][changed]]))
    gone = _member(old.links["a"], touched) | _member(old.links["b"], touched)
    fresh = _derive_links(state, changed)
    state.links = _sort_links(np.concatenate([old.links[~gone], fresh]))
    # 3. Stories: the components holding a document whose links changed, new or deleted.
    before = {tuple(x) for x in old.links[gone][["a", "b", "margin"]].tolist()}
    after = {tuple(x) for x in fresh[["a", "b", "margin"]].tolist()}
    seeds = np.array(sorted({p for link in before ^ after for p in link[:2]}), np.int64)
    known = np.concatenate([rows, dead])
    known = known[np.argsort(known["id"], kind="stable")]
    seed_docs = _lookup(known, seeds)["doc"] if len(seeds) else np.zeros(0, np.int64)
    edited, regrouped = _edit_stories(build_dir, previous, prev_pairs, pairs, state, renumber, np.unique(seed_docs),
                                      np.unique(new_rows["doc"]), dead, known)
    return state, len(query) * max(0, cols - 1), len(rows) * max(0, cols - 1), {
        "stories_edited": edited, "documents_regrouped": regrouped}


def _load_state(folder: Path):
    """The state of the version in ``folder`` and its (segment folder, description) pairs; (None,
    None) when it has none or it cannot be read."""
    from polyseek.errors import PolyseekError

    try:
        manifest: Manifest = read_manifest(folder)
        if not all(name in manifest.files for name in (MARGINS, NEIGHBOURS, NEIGHBOUR_COSINES, MARGIN_ROWS, LINKS, STORIES)):
            return None, None
        columns = manifest.stories.get("margin_languages")
        rows = np.load(folder / MARGIN_ROWS, allow_pickle=False)
        ids = np.load(folder / NEIGHBOURS, allow_pickle=False)
        cos = np.load(folder / NEIGHBOUR_COSINES, allow_pickle=False)
        means = np.load(folder / MARGINS, allow_pickle=False)
        links = np.load(folder / LINKS, allow_pickle=False)
    except (PolyseekError, OSError, ValueError):
        return None, None
    n = len(rows)
    if (not isinstance(columns, list) or rows.dtype != ROW or links.dtype != LINK or ids.dtype not in (np.int32, np.int64)
            or ids.shape != (n, len(columns), MARGIN_K) or cos.dtype != np.float32 or cos.shape != ids.shape
            or means.dtype != np.float32 or means.shape != (n, len(columns)) or n != manifest.passages):
        return None, None
    pairs = [(folder / SEGMENTS / info["name"], info) for info in manifest.segments]
    return State(tuple(columns), rows, ids, cos, means, links), pairs


def _renumber(state: State, old_ids: np.ndarray, new_ids: np.ndarray) -> State:
    """``state`` with the passages a merge renumbered under their new ids."""
    order = np.argsort(old_ids)
    old_ids, new_ids = np.asarray(old_ids, np.int64)[order], np.asarray(new_ids, np.int64)[order]

    def remap(x):
        x = np.asarray(x, np.int64)
        at = np.minimum(np.searchsorted(old_ids, x), len(old_ids) - 1)
        return np.where(old_ids[at] == x, new_ids[at], x)

    rows = state.rows.copy()
    rows["id"], rows["doc"], rows["story"] = remap(rows["id"]), remap(rows["doc"]), remap(rows["story"])
    order = np.argsort(rows["id"], kind="stable")
    links = state.links.copy()
    a, b = remap(links["a"]), remap(links["b"])
    links["a"], links["b"] = np.minimum(a, b), np.maximum(a, b)
    return State(state.columns, rows[order], remap(state.ids)[order], state.cosines[order], state.means[order],
                 _sort_links(links))


def _recolumn(state: State, columns: tuple[str, ...]) -> State:
    """``state`` with one column per language of ``columns``: a new language's column is empty
    (every passage's list in it is then filled with the new passages, which are all of that
    language's), a language gone loses its column (its passages are all deleted)."""
    n, _, k = state.ids.shape
    ids = np.full((n, len(columns), k), -1, state.ids.dtype)
    cos = np.full((n, len(columns), k), -np.inf, np.float32)
    means = np.full((n, len(columns)), np.nan, np.float32)
    code = np.full(len(state.columns), -1, np.int16)
    for j, lang in enumerate(columns):
        if lang in state.columns:
            i = state.columns.index(lang)
            ids[:, j], cos[:, j], means[:, j], code[i] = state.ids[:, i], state.cosines[:, i], state.means[:, i], j
    rows = state.rows.copy()
    rows["lang"] = code[rows["lang"]]
    return State(columns, rows, ids, cos, means, state.links)


def _live_ids(pairs, deleted) -> np.ndarray:
    parts = []
    for _, info in sorted(pairs, key=lambda pair: pair[1]["base"]):
        keep = np.ones(info["passages"], bool)
        keep[np.asarray(deleted.get(info["name"], {}).get("rows", []), np.int64)] = False
        parts.append(info["base"] + np.flatnonzero(keep))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _segments_of(pairs, ids: np.ndarray):
    """(folder, info, positions in ``ids``) for each segment holding some of the sorted ``ids``."""
    for folder, info in sorted(pairs, key=lambda pair: pair[1]["base"]):
        lo, hi = np.searchsorted(ids, [info["base"], info["base"] + info["passages"]])
        if hi > lo:
            yield folder, info, np.arange(lo, hi)


def _passage_rows(pairs, ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """ROW entries (language column left 0) and languages of the passages ``ids`` (sorted)."""
    rows = np.zeros(len(ids), ROW)
    rows["id"] = ids
    langs: list[str] = [""] * len(ids)
    for folder, info, where in _segments_of(pairs, ids):
        con = sqlite3.connect(f"file:{folder / STORE}?mode=ro", uri=True)
        try:
            found = con.execute("SELECT p.passage_id, p.doc_id, p.lang, d.published FROM passages p JOIN documents d "
                                "ON d.doc_id = p.doc_id WHERE p.passage_id BETWEEN ? AND ? ORDER BY p.passage_id",
                                (int(ids[where[0]]), int(ids[where[-1]]))).fetchall()
        finally:
            con.close()
        first: dict[str, int] = {}
        by_id = {}
        for pid, doc, lang, published in found:
            first.setdefault(doc, pid)
            by_id[pid] = (doc, lang, published)
        for i in where.tolist():
            doc, lang, published = by_id[int(ids[i])]
            rows["doc"][i], rows["day"][i], rows["story"][i] = first[doc], _day(published), -1
            langs[i] = lang
    return rows, langs


def _doc_info(pairs, keys) -> dict[int, DocInfo]:
    """First passage id → DocInfo of the documents whose first passages are ``keys``."""
    keys = np.unique(np.asarray(list(keys), np.int64))
    out = {}
    for folder, _, where in _segments_of(pairs, keys):
        con = sqlite3.connect(f"file:{folder / STORE}?mode=ro", uri=True)
        try:
            for pid, doc_id, title, lang, published, source in select_in(
                    con, "SELECT p.passage_id, d.doc_id, d.title, d.lang, d.published, d.source FROM passages p "
                    "JOIN documents d ON d.doc_id = p.doc_id WHERE p.passage_id IN ({})", keys[where].tolist()):
                out[pid] = DocInfo(doc_id, title, lang, published, source)
        finally:
            con.close()
    return out


def _member(values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """``values`` ∈ ``of`` (ids, -1 for none), elementwise: a table lookup when the ids are not
    too far apart (one pass over ``values``), else a binary search per value."""
    values = np.asarray(values)
    if not len(of) or not values.size:
        return np.zeros(values.shape, bool)
    top = max(int(values.max()), int(of.max()))
    if 0 <= min(int(values.min()), int(of.min())) + 1 and top < TABLE_MAX:
        table = np.zeros(top + 2, bool)
        table[np.asarray(of, np.int64) + 1] = True
        return table[values + 1]
    of = np.sort(of)
    at = np.minimum(np.searchsorted(of, values), len(of) - 1)
    return of[at] == values


def _lookup(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The rows (sorted by id) of the passages ``ids`` (all present)."""
    return rows[np.searchsorted(rows["id"], ids)]


def _products(pairs, live: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Cosines (of :func:`index.margins.margin_vectors`) of every live passage with each of the
    ``queries`` (passage ids): (live, queries) float32. One pass over the segments' vectors."""
    vectors = None
    order = np.argsort(queries)
    for folder, info, where in _segments_of(pairs, queries[order]):
        stored = load_embeddings(folder / EMBEDDINGS)
        got = margin_vectors(stored[queries[order][where] - info["base"]])
        if vectors is None:
            vectors = np.zeros((len(queries), stored.shape[1]), np.float32)
        vectors[order[where]] = got
    out = np.empty((len(live), len(queries)), np.float32)
    for folder, info, where in _segments_of(pairs, live):
        stored = load_embeddings(folder / EMBEDDINGS)
        local = live[where] - info["base"]
        if len(local) == info["passages"]:
            out[where] = stored @ vectors.T
        else:
            out[where] = (stored @ vectors.T)[local]
    return out


def _search(lang, pid, ids, cos, sims, query, k) -> None:
    """The lists of the ``query`` rows, in full: the k best of each other language."""
    ids[query], cos[query] = -1, -np.inf
    q_lang = lang[query]
    for col in range(ids.shape[1]):
        targets = np.flatnonzero(lang == col)
        asking = np.flatnonzero(q_lang != col)
        if not len(targets) or not len(asking):
            continue
        n = min(k, len(targets))
        block = sims[targets][:, asking]  # (targets, asking)
        top = np.argpartition(-block, n - 1, axis=0)[:n] if n < len(targets) else np.tile(
            np.arange(len(targets))[:, None], (1, len(asking)))
        vals = np.take_along_axis(block, top, axis=0)
        rank = np.lexsort((pid[targets][top], -vals), axis=0)  # best first; ties by id
        top, vals = np.take_along_axis(top, rank, axis=0), np.take_along_axis(vals, rank, axis=0)
        ids[query[asking], col, :n] = pid[targets][top].T
        cos[query[asking], col, :n] = vals.T


def _enter(lang, pid, ids, cos, sims, query, is_new, changed, k) -> None:
    """New passages entering the lists of the rows not searched in full."""
    others = np.ones(len(lang), bool)
    others[query] = False
    new_q = np.flatnonzero(is_new[query])  # columns of ``sims``
    for col in range(ids.shape[1]):
        mine = new_q[lang[query[new_q]] == col]
        if not len(mine):
            continue
        block = sims[:, mine]
        kth = cos[:, col, k - 1]
        rows = np.flatnonzero(others & (lang != col) & (block.max(axis=1) > kth))
        if not len(rows):
            continue
        both_ids = np.concatenate([ids[rows, col], np.broadcast_to(pid[query[mine]], (len(rows), len(mine)))], axis=1)
        both_cos = np.concatenate([cos[rows, col], block[rows]], axis=1)
        rank = np.lexsort((np.where(both_ids < 0, np.iinfo(np.int64).max, both_ids), -both_cos), axis=1)[:, :k]
        ids[rows, col] = np.take_along_axis(both_ids, rank, axis=1)
        cos[rows, col] = np.take_along_axis(both_cos, rank, axis=1)
        ids[rows, col] = np.where(np.isfinite(cos[rows, col]), ids[rows, col], -1)
        changed[rows] = True


def _derive_links(state: State, changed: np.ndarray) -> np.ndarray:
    """The links with an end among the ``changed`` rows, as :func:`index.margins.passage_links`
    derives them from all rows: each occurrence of a pair in a list, by the first row's order."""
    ids, cos, lang, pid = state.ids, state.cosines, state.rows["lang"].astype(np.int64), state.rows["id"]
    rows = np.flatnonzero(changed)
    cols, k = ids.shape[1], ids.shape[2]
    a = [np.repeat(rows, cols * k)]
    b, c = [ids[rows].ravel()], [cos[rows].ravel()]
    listed = _member(ids, pid[rows]) & ~changed[:, None, None]
    if listed.any():
        a.append(np.nonzero(listed)[0])
        b.append(ids[listed])
        c.append(cos[listed])
    a, b, c = np.concatenate(a), np.concatenate(b), np.concatenate(c)
    keep = b >= 0
    a, b, c = a[keep], b[keep], c[keep]
    order = np.argsort(a, kind="stable")
    a, b, c = a[order], b[order], c[order]
    rb = np.searchsorted(pid, b)
    margin = ratio_margin(c, state.means[a, lang[rb]], state.means[rb, lang[a]])
    keep = margin >= LINK_THRESHOLD
    a, rb, c, margin = a[keep], rb[keep], c[keep], margin[keep]
    lo, hi = np.minimum(a, rb), np.maximum(a, rb)
    if not len(lo):
        return np.zeros(0, LINK)
    _, first = np.unique(np.stack([lo, hi], axis=1), axis=0, return_index=True)
    first = np.sort(first)
    return _links(pid[lo[first]], pid[hi[first]], margin[first], c[first])


def _links(a, b, margin, cosine) -> np.ndarray:
    out = np.zeros(len(a), LINK)
    out["a"], out["b"], out["margin"], out["cosine"] = a, b, margin, cosine
    return _sort_links(out)


def _sort_links(links: np.ndarray) -> np.ndarray:
    return links[np.lexsort((links["b"], links["a"]))]


def _edit_stories(build_dir: Path, previous: Path, prev_pairs, pairs, state: State, renumber, seed_docs: np.ndarray,
                  new_docs: np.ndarray, dead: np.ndarray, known: np.ndarray) -> None:
    """The previous version's stories file, copied, with the stories of the touched documents
    made again: those of the components (documents joined by links) holding ``seed_docs`` (whose
    links changed) or ``new_docs``, and the stories that held a document now deleted.

    A component whose dated documents all lie within the date window is one story whatever the
    order of merging: its story is edited in place (members whose links changed, the story's
    row); any other is grouped again in full (:func:`index.stories.group_stories`)."""
    links, rows = state.links, state.rows
    da, db = _lookup(rows, links["a"])["doc"], _lookup(rows, links["b"])["doc"]
    nodes = np.unique(np.concatenate([da, db]))
    label = np.zeros(0, np.int64)
    if len(nodes):
        label = _components(len(nodes), np.searchsorted(nodes, da), np.searchsorted(nodes, db))
    dead_docs = np.unique(dead["doc"])
    docs, first = np.unique(known["doc"], return_index=True)  # each document once, new and deleted ones too
    doc_story, doc_day = known["story"][first], known["day"][first]

    def label_of(ds: np.ndarray) -> np.ndarray:  # -1: in no link (or deleted)
        out = np.full(len(ds), -1, np.int64)
        inside = _member(ds, nodes) & ~_member(ds, dead_docs)
        out[inside] = label[np.searchsorted(nodes, ds[inside])]
        return out

    # The touched documents, closed: whole components, whole old stories.
    touched = np.unique(np.concatenate([seed_docs, new_docs, dead_docs]))
    while True:
        labels = label_of(touched)
        stories = doc_story[np.searchsorted(docs, touched)]
        more = np.unique(np.concatenate([touched, nodes[np.isin(label, labels[labels >= 0])],
                                         docs[np.isin(doc_story, stories[stories >= 0])]]))
        if len(more) == len(touched):
            break
        touched = more
    labels, stories = label_of(touched), doc_story[np.searchsorted(docs, touched)]
    # Groups of touched documents joined by a component or an old story.
    index = np.arange(len(touched))
    src, dst = [index], [index]
    for key in (labels, stories):
        has = key >= 0
        _, first_of, inverse = np.unique(key[has], return_index=True, return_inverse=True)
        src.append(index[has])
        dst.append(index[has][first_of][inverse])
    src, dst = np.concatenate(src), np.concatenate(dst)
    group = _components(len(touched), src, dst)
    alive = ~_member(touched, dead_docs)
    refresh = np.unique(np.concatenate([seed_docs, new_docs]))
    fast, slow = [], []
    order = np.argsort(group, kind="stable")
    moved = []  # documents of a fast group outside its largest component: written again
    for members in np.split(order, np.flatnonzero(np.diff(group[order])) + 1):
        live = members[alive[members]]
        part = np.where(labels[live] >= 0, labels[live], -2 - live)  # a document in no link: its own part
        parts = [live[part == x] for x in np.unique(part)]
        spans = [doc_day[np.searchsorted(docs, touched[p])] for p in parts]
        if all(not (d >= 0).any() or d[d >= 0].max() - d[d >= 0].min() <= DATE_WINDOW_DAYS for d in spans):
            parts = [touched[p] for p in sorted(parts, key=lambda p: (-len(p), touched[p].min()))]
            fast.append((parts, touched[members[~alive[members]]], np.unique(stories[members][stories[members] >= 0])))
            moved += parts[1:]
        else:
            slow.append(members)
    slow = np.concatenate(slow) if slow else np.zeros(0, np.int64)
    slow_live = touched[slow][alive[slow]]
    keys = np.unique(np.concatenate([stories[stories >= 0], slow_live, touched[alive & _member(touched, refresh)], *moved]))
    info = _doc_info(pairs, keys[~_member(keys, dead_docs)])
    info.update({key: value for key, value in _doc_info(prev_pairs, keys[_member(keys, dead_docs)]).items()
                 if key not in info})
    gone = _doc_info(prev_pairs, dead_docs)
    shutil.copyfile(previous / STORIES, build_dir / STORIES)
    con = sqlite3.connect(build_dir / STORIES)
    try:
        with con:
            if renumber is not None and len(renumber[0]):
                con.execute("CREATE TEMP TABLE renumber (old INTEGER PRIMARY KEY, new INTEGER NOT NULL)")
                con.executemany("INSERT INTO renumber VALUES (?, ?)",
                                zip(np.asarray(renumber[0]).tolist(), np.asarray(renumber[1]).tolist()))
                con.execute("UPDATE story_documents SET best_passage = (SELECT new FROM renumber WHERE old = best_passage) "
                            "WHERE best_passage IN (SELECT old FROM renumber)")
                for col in ("a", "b"):
                    con.execute(f"UPDATE passage_links SET {col} = (SELECT new FROM renumber WHERE old = {col}) "
                                f"WHERE {col} IN (SELECT old FROM renumber)")
            # All old stories go (or are marked) before any is written: story ids are documents' names.
            plans = [plan for i, (parts, gone_docs, old_stories) in enumerate(fast)
                     for plan in _clear_stories(con, state, info, gone, parts, gone_docs, old_stories, refresh, known, f"~{i}")]
            if len(slow):  # the others: their old stories go, their documents are grouped again
                old_ids = sorted({story_id_of(info[key].doc_id) for key in np.unique(stories[slow]).tolist() if key >= 0})
                passages = known["id"][_member(known["doc"], touched[slow])].tolist()
                execute_in(con, "DELETE FROM passage_links WHERE a IN ({})", passages)
                execute_in(con, "DELETE FROM story_documents WHERE story_id IN ({})", old_ids)
                execute_in(con, "DELETE FROM stories WHERE story_id IN ({})", old_ids)
            for plan in plans:
                _write_story(con, state, pairs, info, plan, da, db)
            if len(slow):
                chosen = {key: info[key] for key in slow_live.tolist()}
                mine = _member(da, np.asarray(sorted(chosen), np.int64))
                made, members_out, kept = _group(chosen, links[mine], state)
                _set_stories(rows, members_out, {d.doc_id: key for key, d in chosen.items()})
                _insert(con, made, members_out, kept)
    finally:
        con.close()
    return len(fast), len(slow_live)


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The connected component of each of ``n`` nodes joined by the edges ``a``–``b``: its lowest
    node (label propagation with pointer jumping, a few passes over the edges)."""
    label = np.arange(n, dtype=np.int64)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    while True:
        la, lb = label[a], label[b]
        if np.array_equal(la, lb):
            return label
        low = np.minimum(la, lb)
        np.minimum.at(label, la, low)  # each root hooks under the lowest root it touches
        np.minimum.at(label, lb, low)
        while True:  # then every node points at its root
            up = label[label]
            if np.array_equal(up, label):
                break
            label = up


def _clear_stories(con, state: State, info, gone, parts, gone_docs, old_stories, refresh, known, mark: str) -> list:
    """First half of editing stories in place: each of the components ``parts`` (documents,
    largest first) lies within the date window, so it is one story whatever the grouping's
    order; they replace the ``old_stories`` (keys), which held only their documents and the
    deleted ``gone_docs``. The members whose links changed (``refresh``), those of the smaller
    parts and their links are removed; the others (of the largest part) are marked ``mark``
    (story ids are names of documents: an edited document may name a story of another group, so
    all groups clear before any writes). Returns a plan per part for :func:`_write_story`."""
    old_ids = sorted({story_id_of(info[key].doc_id) for key in old_stories.tolist()})
    redo = [parts[0][_member(parts[0], refresh)], *parts[1:]] if parts else []
    dropped = [gone[key].doc_id for key in gone_docs.tolist()]
    old = known["id"][_member(known["doc"], np.concatenate([*redo, gone_docs]).astype(np.int64))].tolist()
    found = select_in(con, "SELECT a, b FROM passage_links WHERE a IN ({})", old)
    con.executemany("DELETE FROM passage_links WHERE a = ? AND b = ?", [p for a, b in found for p in ((a, b), (b, a))])
    execute_in(con, "DELETE FROM story_documents WHERE doc_id IN ({})",
             sorted(set(dropped) | {info[key].doc_id for part in redo for key in part.tolist()}))
    execute_in(con, f"UPDATE story_documents SET story_id = '{mark}' WHERE story_id IN ({{}})", old_ids)
    execute_in(con, "DELETE FROM stories WHERE story_id IN ({})", old_ids)
    plans = []
    for i, (part, again) in enumerate(zip(parts, redo)):
        lowest = min(info[key].doc_id for key in again.tolist()) if len(again) else None
        key = {info[k].doc_id: k for k in again.tolist()}.get(lowest)
        if i == 0:
            kept, best = con.execute("SELECT min(doc_id), best_passage FROM story_documents WHERE story_id = ?",
                                     (mark,)).fetchone()
            if kept is not None and (lowest is None or kept < lowest):
                lowest, key = kept, int(_lookup(state.rows, np.asarray([best]))["doc"][0])
        plans.append({"live": part, "redo": again, "story": story_id_of(lowest), "key": key,
                      "mark": mark if i == 0 else None})
    return plans


def _write_story(con, state: State, pairs, info, plan: dict, da, db) -> None:
    """Second half: the marked members join the story, the refreshed ones are written with their
    links, and the story's row is made from its members."""
    story, redo = plan["story"], plan["redo"]
    if plan["mark"] is not None:
        con.execute("UPDATE story_documents SET story_id = ? WHERE story_id = ?", (story, plan["mark"]))
    mine = np.flatnonzero(_member(da, redo) | _member(db, redo))
    count: dict[int, int] = {}
    best: dict[int, tuple[float, int]] = {}
    for x, y, m, dx, dy in zip(state.links["a"][mine].tolist(), state.links["b"][mine].tolist(),
                               state.links["margin"][mine].tolist(), da[mine].tolist(), db[mine].tolist()):
        for p, d in ((x, dx), (y, dy)):  # as index.stories counts them
            count[d] = count.get(d, 0) + 1
            if m > best.get(d, (-1.0, -1))[0]:
                best[d] = (m, p)
    con.executemany("INSERT INTO story_documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ((info[key].doc_id, story, info[key].lang, info[key].published, info[key].source,
                      best.get(key, (0, key))[1], count.get(key, 0)) for key in redo.tolist()))
    kept = state.links[mine]
    con.executemany("INSERT INTO passage_links VALUES (?, ?, ?, ?)",
                    (row for x, y, m, c in kept[["a", "b", "margin", "cosine"]].tolist() for row in ((x, y, m, c), (y, x, m, c))))
    # The story's row, as index.stories makes it, from its members.
    size = con.execute("SELECT count(*) FROM story_documents WHERE story_id = ?", (story,)).fetchone()[0]
    langs = dict(con.execute("SELECT lang, count(*) FROM story_documents WHERE story_id = ? GROUP BY lang "
                             "ORDER BY count(*) DESC, lang", (story,)).fetchall())
    first_date, last_date, first_stamp = con.execute(
        "SELECT min(substr(published, 1, 10)), max(substr(published, 1, 10)), min(published) FROM story_documents "
        "WHERE story_id = ? AND published != ''", (story,)).fetchone()
    first_langs = [x for (x,) in con.execute("SELECT DISTINCT lang FROM story_documents WHERE story_id = ? AND "
                                              "published = ? ORDER BY lang", (story, first_stamp or "\0"))]
    rep, rep_passage = con.execute("SELECT doc_id, best_passage FROM story_documents WHERE story_id = ? ORDER BY "
                                   "links DESC, published = '', substr(published, 1, 10), doc_id LIMIT 1", (story,)).fetchone()
    rep_key = int(_lookup(state.rows, np.asarray([rep_passage]))["doc"][0])
    title = (info.get(rep_key) or _doc_info(pairs, [rep_key])[rep_key]).title
    con.execute("INSERT INTO stories VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (story, title, size, _json(langs), first_date or "", last_date or "", ",".join(first_langs), rep))
    state.rows["story"][_member(state.rows["doc"], plan["live"])] = plan["key"]


def _insert(con, stories, members, kept) -> None:
    con.executemany("INSERT INTO stories VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ((s.story_id, s.title, s.size, _json(s.languages), s.first_date, s.last_date, s.first_lang,
                      s.representative) for s in stories))
    con.executemany("INSERT INTO story_documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ((m.doc_id, m.story_id, m.lang, m.published, m.source, m.best_passage, m.links) for m in members))
    con.executemany("INSERT INTO passage_links VALUES (?, ?, ?, ?)",
                    (row for x, y, m, c in kept[["a", "b", "margin", "cosine"]].tolist()
                     for row in ((x, y, m, c), (y, x, m, c))))


def _json(value) -> str:
    import json

    return json.dumps(value)


def _save(build_dir: Path, state: State) -> None:
    save_embeddings(build_dir / MARGINS, np.ascontiguousarray(state.means, np.float32))
    small = not state.ids.size or int(state.ids.max()) < np.iinfo(np.int32).max  # half the bytes to write and check
    np.save(build_dir / NEIGHBOURS, np.ascontiguousarray(state.ids, np.int32 if small else np.int64), allow_pickle=False)
    np.save(build_dir / NEIGHBOUR_COSINES, np.ascontiguousarray(state.cosines, np.float32), allow_pickle=False)
    np.save(build_dir / MARGIN_ROWS, state.rows, allow_pickle=False)
    np.save(build_dir / LINKS, state.links, allow_pickle=False)
