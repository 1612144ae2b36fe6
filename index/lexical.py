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

The BM25 matrices are saved with numpy (``allow_pickle=False``) in the index version's
``bm25/`` folder, and its passage order is the passage ids' order.
"""

from __future__ import annotations

import threading
import unicodedata
from pathlib import Path
from typing import Sequence

import numpy as np

#: Recorded in the manifest: a change of tokenization makes old lexical indexes unusable.
TOKENIZER = "polyseek-script-v2-snowball"
#: ISO 639-1 → Snowball algorithm (PyStemmer).
STEMMERS = {"ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech", "da": "danish",
            "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian", "fi": "finnish", "fr": "french",
            "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
            "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
            "fa": "persian", "pl": "polish", "pt": "portuguese", "ro": "romanian", "ru": "russian",
            "sr": "serbian", "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish"}
_local = threading.local()  # PyStemmer's stemmers must not be shared between threads
FOLDER = "bm25"
NO_WORDS = "\x00"
FILES = ("data.csc.index.npy", "indices.csc.index.npy", "indptr.csc.index.npy", "vocab.index.json",
         "params.index.json")

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


class LexicalIndex:
    """BM25 over the passages, in passage-id order."""

    def __init__(self, bm25, n_passages: int, stem: bool = True):
        self._bm25 = bm25
        self.n_passages = n_passages
        self.stem = stem  # queries are tokenized as the passages were

    @classmethod
    def build(cls, texts: Sequence[str], langs: Sequence[str] | None = None, stem: bool = True) -> "LexicalIndex":
        """BM25 over ``texts``; ``langs`` (one per text) choose the stemmers."""
        import bm25s

        langs = langs if langs is not None else [None] * len(texts)
        seen: dict[tuple[str, str | None], list[str]] = {}  # repeated passages (boilerplate) tokenized once
        tokens = []
        for text, lang in zip(texts, langs):
            key = (text, lang)
            if key not in seen:
                seen[key] = tokenize(text, lang, stem)
            tokens.append(seen[key])
        del seen
        if tokens and not any(tokens):
            # Passages of symbols alone give BM25 no vocabulary, which bm25s refuses. A token no
            # query can produce (tokenize never yields control characters) keeps it well-formed.
            tokens[0] = [NO_WORDS]
        bm25 = bm25s.BM25()
        bm25.index(tokens, show_progress=False)
        return cls(bm25, len(texts), stem)

    def save(self, folder: Path) -> list[str]:
        """Write into ``folder/bm25``; the file names, relative to ``folder``."""
        self._bm25.save(str(folder / FOLDER), allow_pickle=False, show_progress=False)
        return [f"{FOLDER}/{name}" for name in FILES if (folder / FOLDER / name).is_file()]

    @classmethod
    def load(cls, folder: Path, n_passages: int) -> "LexicalIndex":
        import bm25s

        # Memory-mapped: a query reads the columns of its own tokens; the rest stays on disk.
        bm25 = bm25s.BM25.load(str(folder / FOLDER), allow_pickle=False, show_progress=False, mmap=True)
        return cls(bm25, n_passages)

    def search(self, query: str, k: int, allowed_ids: np.ndarray | None = None,
               lang: str | None = None) -> list[tuple[int, float]]:
        """Up to ``k`` (passage_id, bm25 score) with a score above zero, best first; only
        ``allowed_ids`` when given; ``lang`` is the query's language (its stemmer)."""
        tokens = [t for t in tokenize(query, lang, self.stem) if t in self._bm25.vocab_dict]
        if not tokens or self.n_passages == 0:
            return []
        mask = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return []
            mask = np.zeros(self.n_passages, np.float32)
            mask[np.asarray(allowed_ids, np.int64)] = 1.0
        k = min(k, self.n_passages)
        ids, scores = self._bm25.retrieve([tokens], k=k, show_progress=False, weight_mask=mask, n_threads=0)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0]

