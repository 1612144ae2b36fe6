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
``bm25/`` folder; corpus-wide statistics are combined at query time (:func:`search_segments`).
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
FILES = ("vocab.json", "indptr.npy", "rows.npy", "tfs.npy", "lengths.npy")

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
                 lengths: np.ndarray, stem: bool = True):
        self.vocab = vocab
        self.indptr, self.rows, self.tfs, self.lengths = indptr, rows, tfs, lengths
        self.n_passages = len(lengths)
        self.stem = stem  # queries are tokenized as the passages were

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
        return cls(vocab, indptr, np.asarray(rows, np.int32)[order], np.asarray(tfs, np.float32)[order], lengths, stem)

    def save(self, folder: Path) -> list[str]:
        """Write into ``folder/bm25`` (JSON and plain numpy arrays); the file names, relative to ``folder``."""
        import json

        out = folder / FOLDER
        out.mkdir(parents=True, exist_ok=True)
        tokens = sorted(self.vocab, key=self.vocab.__getitem__)
        (out / "vocab.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
        for name, array in (("indptr", self.indptr), ("rows", self.rows), ("tfs", self.tfs), ("lengths", self.lengths)):
            np.save(out / f"{name}.npy", array, allow_pickle=False)
        return [f"{FOLDER}/{name}" for name in FILES]

    @classmethod
    def load(cls, folder: Path, n_passages: int | None = None) -> "LexicalIndex":
        """Memory-mapped: a query reads the postings of its own tokens; the rest stays on disk."""
        import json

        from polyseek.errors import IndexFormatError

        base = folder / FOLDER
        tokens = json.loads((base / "vocab.json").read_text(encoding="utf-8"))
        arrays = {name: np.load(base / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                  for name in ("indptr", "rows", "tfs", "lengths")}
        indptr, lengths = arrays["indptr"], arrays["lengths"]
        if (not isinstance(tokens, list) or len(indptr) != len(tokens) + 1 or indptr.ndim != 1
                or len(arrays["rows"]) != len(arrays["tfs"]) or (len(indptr) and int(indptr[-1]) != len(arrays["rows"]))
                or (n_passages is not None and len(lengths) != n_passages)):
            raise IndexFormatError(f"the lexical index in {folder} is inconsistent: rebuild the index")
        return cls({t: i for i, t in enumerate(tokens)}, indptr, arrays["rows"], arrays["tfs"], lengths)

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
        found = search_segments([LexicalPart(self, None, allowed_ids, 0)], query, k, lang)
        return [(pid, score) for score, pid in found][:k]


class LexicalPart:
    """One segment in a corpus-wide BM25 search: its postings, its live rows (None: all), the
    rows a search may return (None: all live ones) and the id of its row 0."""

    def __init__(self, index: LexicalIndex, live: np.ndarray | None, allowed: np.ndarray | None, base: int):
        self.index, self.live, self.allowed, self.base = index, live, allowed, base

    def stats(self) -> tuple[int, int]:
        """(live passages, their total length in tokens)."""
        if self.live is None:
            return self.index.n_passages, int(np.asarray(self.index.lengths, np.int64).sum())
        return int(self.live.sum()), int(np.asarray(self.index.lengths, np.int64)[self.live].sum())


def search_segments(parts: Sequence[LexicalPart], query: str, k: int, lang: str | None = None,
                    ties: bool = False) -> list[tuple[float, int]]:
    """Corpus-wide BM25 (Lucene's idf, bm25s's term weight): the passage count, average length
    and document frequencies are those of all live rows of all ``parts``. Returns (score, id)
    best first, scores above zero; the ``k`` best (with ``ties``, also every row tied with the
    k-th, so the caller can break ties by something independent of the segmentation)."""
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
    postings = [[part.index.postings(t) for t in tokens] for part in parts]
    df = {}
    for t_i, token in enumerate(tokens):
        count = 0
        for part, lists in zip(parts, postings):
            if lists[t_i] is not None:
                rows = lists[t_i][0]
                count += len(rows) if part.live is None else int(part.live[rows].sum())
        df[token] = count
    out: list[tuple[float, int]] = []
    for part, lists in zip(parts, postings):
        if part.allowed is not None and len(part.allowed) == 0:
            continue
        scores = np.zeros(part.index.n_passages, np.float64)
        lengths = None  # read once the segment holds a query token
        for token, entry in zip(tokens, lists):
            if entry is None:
                continue
            rows, tfs = entry
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
    out.sort(key=lambda si: (-si[0], si[1]))
    if len(out) <= k:
        return out
    if ties:
        return [si for si in out if si[0] >= out[k - 1][0]]
    return out[:k]
