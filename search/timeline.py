"""Timelines: how many documents of each language match a query, per day or week of publication.

A document matches when its best passage's standardized score (language-balanced score over the
query's spread in that language, as watches score) reaches the watches' threshold
(``index.watches.DEFAULT_THRESHOLD``), so a timeline counts what a watch would have reported. The search is the searcher's own (dense, one passage per document), run once per
language so that each language gets up to ``MAX_K`` documents; documents without a
publication date are counted apart."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

from index.watches import DEFAULT_THRESHOLD
from polyseek.languages import language_codes
from polyseek.errors import QueryError
from search.searcher import MAX_K, Searcher

INTERVALS = ("day", "week")


@dataclass
class Timeline:
    query: str
    interval: str
    threshold: float
    periods: list[str]  # first day of each period (weeks start on Monday), oldest first, no gaps
    counts: dict[str, list[int]]  # language → documents per period, aligned with ``periods``
    undated: dict[str, int]  # language → matching documents without a publication date
    truncated: list[str] = field(default_factory=list)  # languages where MAX_K documents matched: more may

    def to_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[dict]:
        """One row per period: {"period": ..., lang: count, ...}, for tables and charts."""
        return [{"period": p, **{lang: self.counts[lang][i] for lang in self.counts}} for i, p in enumerate(self.periods)]


def timeline(searcher: Searcher, query: str, langs: list[str] | None = None, *, interval: str = "day",
             sources: list[str] | None = None, since: str | None = None, until: str | None = None,
             threshold: float = DEFAULT_THRESHOLD) -> Timeline:
    if interval not in INTERVALS:
        raise QueryError(f"interval {interval!r} is unknown: use one of {', '.join(INTERVALS)}")
    qvec = searcher.encode_query(query)
    wanted = [c for c in language_codes(langs) if c in searcher.languages] if langs else list(searcher.languages)
    dated: dict[str, Counter] = {}
    undated: dict[str, int] = {}
    truncated = []
    spread = searcher.language_spread(qvec) if wanted else {}
    for lang in wanted:
        hits = searcher.search_vector(qvec, MAX_K, [lang], per_document=True, mode="dense", sources=sources,
                                      since=since, until=until)
        matched = [h for h, z in zip(hits, searcher.standardized(qvec, hits, spread)) if z >= threshold]
        if len(matched) == MAX_K:
            truncated.append(lang)
        dated[lang] = Counter(_period(h.date, interval) for h in matched if _day(h.date))
        undated[lang] = sum(1 for h in matched if not _day(h.date))
    periods = _span([p for c in dated.values() for p in c], interval)
    counts = {lang: [dated[lang].get(p, 0) for p in periods] for lang in wanted}
    return Timeline(query, interval, threshold, periods, counts, undated, truncated)


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _period(value: str, interval: str) -> str:
    day = _day(value)
    if interval == "week":
        day -= timedelta(days=day.weekday())
    return day.isoformat()


def _span(periods: list[str], interval: str) -> list[str]:
    """Every period from the first to the last (zeros drawn as zeros, not skipped)."""
    if not periods:
        return []
    first, last = date.fromisoformat(min(periods)), date.fromisoformat(max(periods))
    step = timedelta(days=7 if interval == "week" else 1)
    out = []
    while first <= last:
        out.append(first.isoformat())
        first += step
    return out
