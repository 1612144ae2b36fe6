"""The lexical side of hybrid search: BM25 (bm25s) over script-aware tokens.

Tokens are made per run of one script, the same way for passages and queries:

* alphabetic scripts (Latin, Cyrillic, Greek, …): words, case-folded, reduced to their Snowball
  stem when the text's language has one (PyStemmer: "гарантий"/"гарантии" → "гарант"), then
  diacritics folded the way people type them (Romanian ş/ș → s, ţ/ț → t; é → e);
* Arabic: words with the tashkeel and tatweel removed, stemmed (Snowball Arabic), and the
  letter variants people mix up
  unified (pyarabic strips the marks; alef forms → ا, ta marbuta ة → ه, alef maqsura ى → ي);
* scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar): overlapping character
  bigrams (a lone character stays a unigram).

Each segment saves its BM25 postings with numpy (``allow_pickle=False``) and JSON in its
``bm25/`` folder, with each token's largest term weight (its upper bound); corpus-wide statistics
are combined at query time (:func:`search_segments`), which finds the exact top k without scoring
every posting of a common token (MaxScore pruning, Turtle & Flood 1995).
"""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

#: Recorded in the manifest: a change of tokenization makes old lexical indexes unusable.
TOKENIZER = "polyseek-script-v2-snowball+postings"
#: ISO 639-1 → Snowball algorithm (PyStemmer).
STEMMERS = {"ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech", "da": "danish",
            "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian", "fi": "finnish", "fr": "french",
            "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
            "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
            "fa": "persian", "pl": "polish", "pt": "portuguese", "ro": "romanian", "ru": "russian",
            "sr": "serbian", "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish"}
_local = threading.local()  # PyStemmer's stemmers must not be shared between threads
FOLDER = "bm25"
FILES = ("vocab.json", "indptr.npy", "rows.npy", "tfs.npy", "lengths.npy", "bounds.npy")
#: Segments written before the upper bounds were stored lack this file (their bound is the idf).
BOUNDS = "bounds.npy"
#: MaxScore pruning in :func:`search_segments`; False scores every posting (benchmarks/scale.py
#: compares both; the answers are the same).
PRUNE = True
#: Relative slack of the pruning tests: partial sums are added in another order than the exact
#: scores (float64 rounding ~1e-16), so a bound must beat the threshold by more than that.
SLACK = 1e-9
#: A token's postings are scanned rather than searched for each candidate when there are fewer
#: than this many per candidate (a binary search costs ~log2(postings) random reads).
SCAN = 32

_SPACELESS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
_RUNS = None


def _runs():
    """One regex finding word runs, with the kind of script named by the group that matched."""
    global _RUNS
    if _RUNS is None:
        import regex

        spaceless = "".join(rf"\p{{{s}}}" for s in _SPACELESS)
        # Arabic runs keep their combining marks (script Inherited) and tatweel (Common) inside.
        arabic = r"[[\p{Arabic}\p{M}\u0640]--[\p{P}\p{N}\p{S}]]"
        _RUNS = regex.compile(
            rf"(?P<spaceless>[{spaceless}][{spaceless}\p{{M}}]*)"
            rf"|(?P<arabic>[\p{{Arabic}}--[\p{{P}}\p{{N}}\p{{S}}\p{{M}}]]{arabic}*)"
            rf"|(?P<word>[[\p{{L}}\p{{M}}\p{{N}}]--[{spaceless}[\p{{Arabic}}--\p{{N}}]]]+)",
            regex.V1,
        )
    return _RUNS


def fold(word: str) -> str:
    """Case-fold, strip diacritics, ASCII digits: "Şeful" / "Șeful" → "seful", "٢٠١٠" → "2010"."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    kept = (str(unicodedata.decimal(ch)) if ch.isdecimal() else ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", "".join(kept))


_ARABIC_LETTERS = str.maketrans({"أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ة": "ه", "ى": "ي"})


def normalize_arabic(word: str) -> str:
    """Tashkeel and tatweel removed; alef variants (أ إ آ ٱ) → ا, ta marbuta ة → ه, alef
    maqsura ى → ي: the light normalization Arabic search engines use."""
    from pyarabic import araby

    return araby.strip_tashkeel(araby.strip_tatweel(word)).translate(_ARABIC_LETTERS)


def stemmer(lang: str | None):
    """This thread's Snowball stemmer for ``lang``, or None where Snowball has none."""
    algorithm = STEMMERS.get(lang or "")
    if algorithm is None:
        return None
    cache = _local.__dict__.setdefault("stemmers", {})
    if algorithm not in cache:
        import Stemmer

        cache[algorithm] = Stemmer.Stemmer(algorithm)
    return cache[algorithm]


def tokenize(text: str, lang: str | None = None, stem: bool = True) -> list[str]:
    """The lexical tokens of ``text`` (passage or query alike) in language ``lang`` (ISO 639-1;
    it only chooses the stemmer)."""
    from pyarabic import araby

    stems = stemmer(lang) if stem else None
    tokens: list[str] = []
    for m in _runs().finditer(text):
        kind, run = m.lastgroup, m.group()
        if kind == "word":
            word = run.casefold()
            tokens.append(fold(stems.stemWord(word) if stems else word))
        elif kind == "arabic":
            word = araby.strip_tashkeel(araby.strip_tatweel(run))  # marks off before stemming
            tokens.append((stems.stemWord(word) if stems and lang == "ar" else word).translate(_ARABIC_LETTERS))
        else:  # no spaces between words: overlapping bigrams of characters (graphemes)
            chars = _graphemes(run.casefold())
            tokens.extend(chars if len(chars) == 1 else [chars[i] + chars[i + 1] for i in range(len(chars) - 1)])
    return [t for t in tokens if t]


def _graphemes(text: str) -> list[str]:
    import regex

    return regex.findall(r"\X", text)


#: BM25 parameters (Lucene's, as bm25s used them before segments).
K1, B = 1.5, 0.75


class LexicalIndex:
    """BM25 postings of one segment's passages (row = passage's place in the segment): for each
    token, the rows holding it and how often. Document frequencies, the passage count and the
    average length are taken across all segments at query time (:func:`search_segments`), so a
    corpus split into segments scores exactly as one index of the same passages."""

    def __init__(self, vocab: dict[str, int], indptr: np.ndarray, rows: np.ndarray, tfs: np.ndarray,
                 lengths: np.ndarray, stem: bool = True, bounds: np.ndarray | None = None):
        self.vocab = vocab
        self.indptr, self.rows, self.tfs, self.lengths = indptr, rows, tfs, lengths
        self.n_passages = len(lengths)
        self.stem = stem  # queries are tokenized as the passages were
        # Each token's largest term weight at this segment's own average length (:func:`term_bounds`).
        self.bounds = bounds
        self.total_length = int(np.asarray(lengths, np.int64).sum())

    @classmethod
    def build(cls, texts: Sequence[str], langs: Sequence[str] | None = None, stem: bool = True) -> "LexicalIndex":
        """BM25 postings of ``texts``; ``langs`` (one per text) choose the stemmers."""
        from collections import Counter

        langs = langs if langs is not None else [None] * len(texts)
        seen: dict[tuple[str, str | None], Counter] = {}  # repeated passages (boilerplate) tokenized once
        vocab: dict[str, int] = {}
        cols, rows, tfs, lengths = [], [], [], np.zeros(len(texts), np.int32)
        for row, (text, lang) in enumerate(zip(texts, langs)):
            key = (text, lang)
            if key not in seen:
                seen[key] = Counter(tokenize(text, lang, stem))
            counts = seen[key]
            lengths[row] = sum(counts.values())
            for token, n in counts.items():
                cols.append(vocab.setdefault(token, len(vocab)))
                rows.append(row)
                tfs.append(n)
        del seen
        cols_a = np.asarray(cols, np.int64)
        order = np.lexsort((np.asarray(rows, np.int64), cols_a))
        indptr = np.zeros(len(vocab) + 1, np.int64)
        np.cumsum(np.bincount(cols_a, minlength=len(vocab)), out=indptr[1:])
        rows_a, tfs_a = np.asarray(rows, np.int32)[order], np.asarray(tfs, np.float32)[order]
        return cls(vocab, indptr, rows_a, tfs_a, lengths, stem, term_bounds(indptr, rows_a, tfs_a, lengths))

    def save(self, folder: Path) -> list[str]:
        """Write into ``folder/bm25`` (JSON and plain numpy arrays); the file names, relative to ``folder``."""
        import json

        out = folder / FOLDER
        out.mkdir(parents=True, exist_ok=True)
        tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        (out / "vocab.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
        bounds = self.bounds if self.bounds is not None else term_bounds(self.indptr, self.rows, self.tfs, self.lengths)
        for name, array in (("indptr", self.indptr), ("rows", self.rows), ("tfs", self.tfs), ("lengths", self.lengths),
                            ("bounds", bounds)):
            np.save(out / f"{name}.npy", array, allow_pickle=False)
        return [f"{FOLDER}/{name}" for name in FILES]

    @classmethod
    def load(cls, folder: Path, n_passages: int | None = None) -> "LexicalIndex":
        """Memory-mapped: a query reads the postings of its own tokens; the rest stays on disk."""
        import json

        from polyseek.errors import IndexFormatError

        base = folder / FOLDER
        tokens = json.loads((base / "vocab.json").read_text(encoding="utf-8"))
        # plain views of the mapped files (a query slices them often; memmap slices cost more)
        arrays = {name: np.asarray(np.load(base / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                  for name in ("indptr", "rows", "tfs", "lengths")}
        indptr, lengths = arrays["indptr"], arrays["lengths"]
        # read whole (8 bytes a token); older segments have none
        bounds = np.load(base / BOUNDS, allow_pickle=False) if (base / BOUNDS).exists() else None
        if (not isinstance(tokens, list) or len(indptr) != len(tokens) + 1 or indptr.ndim != 1
                or len(arrays["rows"]) != len(arrays["tfs"]) or (len(indptr) and int(indptr[-1]) != len(arrays["rows"]))
                or (n_passages is not None and len(lengths) != n_passages)
                or (bounds is not None and (bounds.shape != (len(tokens),) or bounds.dtype != np.float64))):
            raise IndexFormatError(f"the lexical index in {folder} is inconsistent: rebuild the index")
        return cls({t: i for i, t in enumerate(tokens)}, indptr, arrays["rows"], arrays["tfs"], lengths, bounds=bounds)

    def postings(self, token: str) -> tuple[np.ndarray, np.ndarray] | None:
        col = self.vocab.get(token)
        if col is None:
            return None
        lo, hi = int(self.indptr[col]), int(self.indptr[col + 1])
        return np.asarray(self.rows[lo:hi], np.int64), np.asarray(self.tfs[lo:hi], np.float64)

    def search(self, query: str, k: int, allowed_ids: np.ndarray | None = None,
               lang: str | None = None) -> list[tuple[int, float]]:
        """Up to ``k`` (row, bm25 score) with a score above zero, best first (ties by row); only
        ``allowed_ids`` (rows) when given; ``lang`` is the query's language (its stemmer)."""
        allowed = None if allowed_ids is None else np.unique(np.asarray(allowed_ids, np.int64))
        found = search_segments([LexicalPart(self, None, allowed, 0)], query, k, lang)
        return [(pid, score) for score, pid in found][:k]


def term_bounds(indptr: np.ndarray, rows: np.ndarray, tfs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each token's largest term weight ``tf / (tf + K1·(1 − B + B·len/avgdl))`` over its
    postings, at the segment's own average length (float64, one per token).

    With the corpus's average length ``a`` instead of the segment's ``s``, a weight grows by at
    most ``max(1, a / s)`` (the length term is divided by ``a / s``), so
    ``bound · max(1, a / s)`` bounds it in any corpus the segment is part of (deleting rows only
    lowers the maximum)."""
    n_tokens = len(indptr) - 1
    out = np.zeros(max(n_tokens, 0), np.float64)
    if n_tokens <= 0 or not len(rows):
        return out
    lengths = np.asarray(lengths, np.int64)
    avgdl = max(float(lengths.sum()) / len(lengths), 1e-9)
    step = 1 << 22  # postings weighed at a time (memory)
    lo_col = 0
    while lo_col < n_tokens:
        hi_col = int(np.searchsorted(indptr, int(indptr[lo_col]) + step, side="right")) - 1
        hi_col = min(n_tokens, max(hi_col, lo_col + 1))
        lo, hi = int(indptr[lo_col]), int(indptr[hi_col])
        tf = np.asarray(tfs[lo:hi], np.float64)
        weight = tf / (K1 * ((1 - B) + B * lengths[np.asarray(rows[lo:hi], np.int64)] / avgdl) + tf)
        starts = np.asarray(indptr[lo_col:hi_col], np.int64) - lo
        nonempty = starts < np.asarray(indptr[lo_col + 1 : hi_col + 1], np.int64) - lo
        if nonempty.any():
            out[lo_col:hi_col][nonempty] = np.maximum.reduceat(weight, starts[nonempty])
        lo_col = hi_col
    return out


class LexicalPart:
    """One segment in a corpus-wide BM25 search: its postings, its live rows (None: all), the
    rows a search may return (None: all live ones), the id of its row 0 and, when known, its
    ``stats`` (:meth:`stats`; a reader computes them once) and deleted rows."""

    def __init__(self, index: LexicalIndex, live: np.ndarray | None, allowed: np.ndarray | None, base: int,
                 stats: tuple[int, int] | None = None, deleted: np.ndarray | None = None):
        self.index, self.live, self.allowed, self.base = index, live, allowed, base
        self.deleted = deleted  # the rows not live, sorted (when known)
        self._stats = stats
        self._mask = None

    def stats(self) -> tuple[int, int]:
        """(live passages, their total length in tokens)."""
        if self._stats is None:
            if self.live is None:
                self._stats = self.index.n_passages, self.index.total_length
            else:
                self._stats = int(self.live.sum()), int(np.asarray(self.index.lengths, np.int64)[self.live].sum())
        return self._stats

    def span(self, token: str) -> tuple[int, int] | None:
        """Where ``token``'s postings lie in :attr:`LexicalIndex.rows` (None: not in this segment)."""
        col = self.index.vocab.get(token)
        if col is None:
            return None
        return int(self.index.indptr[col]), int(self.index.indptr[col + 1])

    def live_count(self, span: tuple[int, int]) -> int:
        """How many of the postings in ``span`` are live rows (the deleted rows are looked up in
        the list when they are few against it)."""
        if self.live is None:
            return span[1] - span[0]
        if self.deleted is not None and len(self.deleted) * SCAN < span[1] - span[0]:
            return span[1] - span[0] - int(self.lookup(span, self.deleted)[0].sum())
        return int(self.live[np.asarray(self.index.rows[span[0] : span[1]], np.int64)].sum())

    def usable(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` a search may return (live and allowed)."""
        if self.live is None and self.allowed is None:
            return np.ones(len(rows), bool)
        if self._mask is None:  # made once per search: a byte per row (zeroed by the system)
            if self.allowed is None:
                self._mask = self.live
            else:
                mask = np.zeros(self.index.n_passages, bool)
                mask[self.allowed] = True
                self._mask = mask if self.live is None else mask & self.live
        return self._mask[rows]

    def weights(self, where: np.ndarray | slice, rows: np.ndarray, idf: float, avgdl: float) -> np.ndarray:
        """BM25 weights ``idf · tf / (tf + K1·(1 − B + B·len/avgdl))`` of the postings at
        ``where`` (rows ``rows``), by the very arithmetic of a full scoring."""
        tfs = np.asarray(self.index.tfs[where], np.float64)
        lengths = np.asarray(self.index.lengths[rows], np.float64)
        return idf * (tfs / (K1 * ((1 - B) + B * lengths / avgdl) + tfs))

    def lookup(self, span: tuple[int, int], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of ``rows`` hold the token of ``span``, and where their postings are."""
        postings = self.index.rows[span[0] : span[1]]
        want = np.asarray(rows, postings.dtype)  # searchsorted would otherwise convert the whole list
        pos = np.searchsorted(postings, want)
        hit = pos < len(postings)
        hit[hit] = postings[pos[hit]] == want[hit]
        return hit, pos[hit] + span[0]


def search_segments(parts: Sequence[LexicalPart], query: str, k: int, lang: str | None = None,
                    ties: bool = False) -> list[tuple[float, int]]:
    """Corpus-wide BM25 (Lucene's idf, bm25s's term weight): the passage count, average length
    and document frequencies are those of all live rows of all ``parts``. Returns (score, id)
    best first, scores above zero; the ``k`` best (with ``ties``, also every row tied with the
    k-th, so the caller can break ties by something independent of the segmentation).

    With :data:`PRUNE`, only rows that can reach the top ``k`` are scored (:func:`_candidates`),
    and each is scored afresh the way a full scoring adds it up, so the answer, scores and ties
    included, is exactly that of scoring every posting (:func:`_full`)."""
    if not parts:
        return []
    stem = parts[0].index.stem
    tokens = [t for t in tokenize(query, lang, stem) if any(t in p.index.vocab for p in parts)]
    if not tokens or k < 1:
        return []
    n, total = 0, 0
    for part in parts:
        pn, pt = part.stats()
        n, total = n + pn, total + pt
    if n == 0:
        return []
    avgdl = total / n
    unique = sorted(set(tokens))
    spans = [[part.span(t) for t in unique] for part in parts]
    df = {t: sum(part.live_count(sp[j]) for part, sp in zip(parts, spans) if sp[j] is not None)
          for j, t in enumerate(unique)}
    if not PRUNE:
        return _full(parts, tokens, df, n, avgdl, k, ties)
    idf = {t: np.log(1.0 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    searched = [i for i, part in enumerate(parts) if part.allowed is None or len(part.allowed)]
    column = {t: j for j, t in enumerate(unique)}
    out: list[tuple[float, int]] = []
    for i, rows in _candidates(parts, searched, spans, unique, tokens, idf, avgdl, k).items():
        part = parts[i]
        scores = np.zeros(len(rows), np.float64)  # token by token in query order, as a full scoring adds
        for token in tokens:
            span = spans[i][column[token]]
            if span is not None:
                hit, where = part.lookup(span, rows)
                scores[hit] += part.weights(where, rows[hit], idf[token], avgdl)
        out += [(float(s), int(r) + part.base) for s, r in zip(scores.tolist(), rows.tolist()) if s > 0]
    return _best(out, k, ties)


def _best(out: list[tuple[float, int]], k: int, ties: bool) -> list[tuple[float, int]]:
    out.sort(key=lambda si: (-si[0], si[1]))
    if len(out) <= k:
        return out
    if ties:
        return [si for si in out if si[0] >= out[k - 1][0]]
    return out[:k]


def _candidates(parts: Sequence[LexicalPart], searched: list[int], spans: list[list], unique: list[str],
                tokens: list[str], idf: dict, avgdl: float, k: int) -> dict[int, np.ndarray]:
    """Part → its rows that may score at least the ``k``-th best score of all parts
    (a superset: every row that does is there). MaxScore: tokens are taken by decreasing upper
    bound (idf × the segment's stored largest weight, :func:`term_bounds`); every posting of a
    token is added while rows it has not reached could still beat the ``k``-th best partial score
    θ; once the bounds of the tokens left sum to less than θ, the rows reached so far are the only
    candidates, looked up in the remaining (long) posting lists by binary search, and dropped as
    soon as their partial score plus those bounds falls below θ."""
    from collections import Counter

    times = Counter(tokens)
    bound = np.zeros((len(parts), len(unique)), np.float64)
    for i in searched:
        index = parts[i].index
        own = index.total_length / max(index.n_passages, 1)
        grow = max(1.0, avgdl / own) if own > 0 else 1.0
        for j, token in enumerate(unique):
            if spans[i][j] is not None:
                weight = 1.0 if index.bounds is None else min(1.0, float(index.bounds[index.vocab[token]]) * grow)
                bound[i, j] = idf[token] * times[token] * weight * (1 + SLACK)
    order = np.argsort(-bound.max(axis=0), kind="stable").tolist()
    left = bound.sum(axis=1)  # per part: the bounds of the tokens not added yet
    taken = np.zeros(len(parts), np.float64)  # and of those added
    # Dense per part, as a full scoring (np.zeros pages are zeroed by the system when first
    # touched); which rows may be returned is applied when candidates are taken, not per posting.
    scores = {i: np.zeros(parts[i].index.n_passages, np.float64) for i in searched}
    reached: dict[int, list[np.ndarray]] = {i: [] for i in searched}
    theta, done, top = 0.0, 0, None  # top: per part, the usable rows at or above θ
    for j in order:
        if theta > 0 and left.max() < theta * (1 - SLACK):
            break
        new = {}
        for i in searched:
            span = spans[i][j]
            if span is not None:
                part = parts[i]
                rows = np.asarray(part.index.rows[span[0] : span[1]], np.int64)
                scores[i][rows] += times[unique[j]] * part.weights(slice(*span), rows, idf[unique[j]], avgdl)
                new[i] = rows
                reached[i].append(rows)
        left -= bound[:, j]
        taken += bound[:, j]
        done += 1
        # θ can stop the scan only once a row may score more than the bounds left (a row's
        # partial score is at most the bounds taken): until then it is not computed.
        if taken.max() <= left.max() * (1 - SLACK):
            continue
        if top is None:  # the first θ: among every usable row reached
            pool = {i: _reached(parts[i], reached[i]) for i in searched}
        else:  # every other row reached is below θ: the new k-th best is among these
            pool = dict(top)
            for i, rows in new.items():
                rows = rows[scores[i][rows] >= theta]  # (θ only grows)
                rows = rows[parts[i].usable(rows)]
                mark = np.zeros(parts[i].index.n_passages, bool)
                mark[top[i]] = True
                pool[i] = np.concatenate([top[i], rows[~mark[rows]]])
        theta, top = _kth(pool, {i: scores[i][rows] for i, rows in pool.items()}, k)
    cand = {i: _reached(parts[i], reached[i]) for i in searched}
    partial = {i: scores[i][rows] for i, rows in cand.items()}
    for j in order[done:]:
        for i in searched:
            keep = partial[i] + left[i] >= theta * (1 - SLACK)
            cand[i], partial[i] = cand[i][keep], partial[i][keep]
            span = spans[i][j]
            if span is None or not len(cand[i]):
                continue
            part = parts[i]
            if span[1] - span[0] < SCAN * len(cand[i]):  # many candidates: add the whole list, read theirs
                rows = np.asarray(part.index.rows[span[0] : span[1]], np.int64)
                scores[i][rows] += times[unique[j]] * part.weights(slice(*span), rows, idf[unique[j]], avgdl)
                partial[i] = scores[i][cand[i]]
            else:  # few: binary search for each in the list
                hit, where = part.lookup(span, cand[i])
                scores[i][cand[i][hit]] += times[unique[j]] * part.weights(where, cand[i][hit], idf[unique[j]], avgdl)
                partial[i] = scores[i][cand[i]]
        left -= bound[:, j]
        theta = max(theta, _kth(cand, partial, k)[0])
    return {i: rows[partial[i] >= theta * (1 - SLACK)] for i, rows in cand.items() if len(rows)}


def _reached(part: LexicalPart, lists: list[np.ndarray]) -> np.ndarray:
    """The usable rows of posting ``lists``, each once (in O(postings), not O(rows): a slot
    per row, of which only the rows reached are written)."""
    if not lists:
        return np.zeros(0, np.int64)
    rows = np.concatenate(lists)
    if len(lists) > 1:
        place = np.arange(len(rows))
        slot = np.empty(part.index.n_passages, np.int64)  # not zeroed: only the rows reached are read
        slot[rows] = place  # of repeated rows, one place is kept
        rows = rows[slot[rows] == place]
    return rows[part.usable(rows)]


def _kth(rows: dict[int, np.ndarray], scores: dict[int, np.ndarray], k: int) -> tuple[float, dict[int, np.ndarray]]:
    """The ``k``-th best of all ``scores`` (0 when fewer) and, per part, the rows at or above it."""
    every = np.concatenate(list(scores.values())) if scores else np.zeros(0)
    if len(every) < k:
        return 0.0, rows
    theta = float(-np.partition(-every, k - 1)[k - 1])
    return theta, {i: r[scores[i] >= theta] for i, r in rows.items()}


def _full(parts: Sequence[LexicalPart], tokens: list[str], df: dict, n: int, avgdl: float, k: int,
          ties: bool) -> list[tuple[float, int]]:
    """Every posting of every query token scored (what :func:`search_segments` did before pruning)."""
    out: list[tuple[float, int]] = []
    for part in parts:
        if part.allowed is not None and len(part.allowed) == 0:
            continue
        scores = np.zeros(part.index.n_passages, np.float64)
        lengths = None  # read once the segment holds a query token
        for token in tokens:
            span = part.span(token)
            if span is None:
                continue
            rows = np.asarray(part.index.rows[span[0] : span[1]], np.int64)
            tfs = np.asarray(part.index.tfs[span[0] : span[1]], np.float64)
            if lengths is None:
                lengths = np.asarray(part.index.lengths, np.float64)
            d = df[token]
            idf = np.log(1.0 + (n - d + 0.5) / (d + 0.5))
            scores[rows] += idf * (tfs / (K1 * ((1 - B) + B * lengths[rows] / avgdl) + tfs))
        if lengths is None:  # none of the query's tokens is in this segment
            continue
        mask = np.ones(part.index.n_passages, bool)
        if part.allowed is not None:
            mask[:] = False
            mask[np.asarray(part.allowed, np.int64)] = True
        if part.live is not None:
            mask &= part.live
        scores[~mask] = 0.0
        cand = np.flatnonzero(scores > 0)
        if len(cand) > k:
            kth = np.partition(-scores[cand], k - 1)[k - 1]
            cand = cand[-scores[cand] <= kth] if ties else cand[np.argsort(-scores[cand], kind="stable")[:k]]
        out += [(float(scores[r]), int(r) + part.base) for r in cand.tolist()]
    return _best(out, k, ties)
