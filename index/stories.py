"""Stories: documents in one or more languages that report the same event, grouped at build time
from the passage links of :mod:`index.margins`.

Two documents are candidates for one story when a passage of one is linked to a passage of the
other. Candidate pairs are merged strongest first (most links, then highest margin) into stories,
unless the merge would make a story span more than :data:`DATE_WINDOW_DAYS` between its first and
last dated document: two articles a year apart are not one story, however alike. Each document
is in exactly one story; a document with no counterpart is a story of one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np

#: The longest a story may run, first to last dated report. News in several languages about one
#: event appears within days; a week's slack more keeps follow-ups of the same event together
#: while a report of the next summit, months later, starts a story of its own.
DATE_WINDOW_DAYS = 14


@dataclass(frozen=True)
class StoryRow:
    story_id: str
    title: str
    size: int  # documents
    languages: dict[str, int]  # documents per language, most first
    first_date: str  # ISO dates of the first and last dated report; "" when none is dated
    last_date: str
    first_lang: str  # the language(s) that reported it first, comma-separated when tied ("" when none is dated)
    representative: str  # doc_id whose title stands for the story


@dataclass(frozen=True)
class StoryMember:
    doc_id: str
    story_id: str
    lang: str
    published: str
    source: str
    best_passage: int  # the passage with the strongest link inside the story (else the first)
    links: int  # passage links to other documents of the story


@dataclass(frozen=True)
class DocInfo:
    doc_id: str
    title: str
    lang: str
    published: str = ""
    source: str = ""


def group_stories(docs: list[DocInfo], passage_doc: np.ndarray, links: tuple, window_days: int = DATE_WINDOW_DAYS
                  ) -> tuple[list[StoryRow], list[StoryMember], np.ndarray]:
    """Stories of ``docs`` from passage ``links`` ``(a, b, margin, cosine)``; ``passage_doc[p]``
    is the index in ``docs`` of passage p's document. Returns the stories, their members, and a
    mask of the links kept (both ends in one story)."""
    a, b, margin, _ = links
    da, db = passage_doc[a], passage_doc[b]
    days = [_day(d.published) for d in docs]
    pair_links: dict[tuple[int, int], list] = {}
    for x, y, m in zip(da.tolist(), db.tolist(), np.asarray(margin).tolist()):
        if x != y:
            entry = pair_links.setdefault((min(x, y), max(x, y)), [0, 0.0])
            entry[0] += 1
            entry[1] = max(entry[1], m)
    parent = list(range(len(docs)))
    span = [(d, d) if d is not None else None for d in days]

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (x, y), _ in sorted(pair_links.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0])):
        rx, ry = find(x), find(y)
        if rx == ry:
            continue
        merged = _merge_span(span[rx], span[ry])
        if merged is not None and (merged[1] - merged[0]).days > window_days:
            continue
        parent[ry] = rx
        span[rx] = merged
    root = np.array([find(i) for i in range(len(docs))], np.int64)
    kept = root[da] == root[db]
    return (*_rows(docs, root, days, a[kept], b[kept], np.asarray(margin)[kept], passage_doc), kept)


def _rows(docs, root, days, a, b, margin, passage_doc):
    doc_links = np.zeros(len(docs), np.int64)
    best = {}  # doc index -> (margin, passage)
    for x, y, m in zip(a.tolist(), b.tolist(), margin.tolist()):
        for p in (x, y):
            d = int(passage_doc[p])
            doc_links[d] += 1
            if m > best.get(d, (-1.0, -1))[0]:
                best[d] = (m, p)
    first_passage = {}
    for p, d in enumerate(passage_doc.tolist()):
        first_passage.setdefault(d, p)
    members: dict[int, list[int]] = {}
    for i, r in enumerate(root.tolist()):
        members.setdefault(r, []).append(i)
    stories, rows = [], []
    for group in members.values():
        ids = sorted(docs[i].doc_id for i in group)
        story_id = story_id_of(ids[0])
        dated = sorted((days[i], docs[i].lang, docs[i].doc_id) for i in group if days[i] is not None)
        # First report: the earliest publication time (full ISO strings compare in order).
        stamps = sorted((docs[i].published, docs[i].lang) for i in group if days[i] is not None)
        first = sorted({lang for stamp, lang in stamps if stamp == stamps[0][0]}) if stamps else []
        rep = min(group, key=lambda i: (-doc_links[i], days[i] or date.max, docs[i].doc_id))
        counts: dict[str, int] = {}
        for i in group:
            counts[docs[i].lang] = counts.get(docs[i].lang, 0) + 1
        stories.append(StoryRow(story_id, docs[rep].title, len(group),
                                dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
                                dated[0][0].isoformat() if dated else "", dated[-1][0].isoformat() if dated else "",
                                ",".join(first), docs[rep].doc_id))
        for i in group:
            d = docs[i]
            rows.append(StoryMember(d.doc_id, story_id, d.lang, d.published, d.source,
                                    best.get(i, (0, first_passage.get(i, -1)))[1], int(doc_links[i])))
    return stories, rows


def story_id_of(lowest_doc_id: str) -> str:
    """A story's id: named after its document with the lowest id (the same in every build)."""
    return "s" + hashlib.blake2b(lowest_doc_id.encode("utf-8"), digest_size=5).hexdigest()


def _day(published: str) -> date | None:
    try:
        return date.fromisoformat(published[:10]) if published else None
    except ValueError:
        return None


def _merge_span(x, y):
    if x is None:
        return y
    if y is None:
        return x
    return min(x[0], y[0]), max(x[1], y[1])
