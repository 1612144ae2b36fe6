"""Which sentence of a passage answers the query: the one whose embedding is closest to it.

The passage's sentences are embedded with the index's own model, so the choice works across
languages (an English query picks the right Arabic sentence). Sentence vectors are kept in a
small per-process cache: the same passages come back for related queries.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from index.chunking import split_sentences
from polyseek.embedder import Embedder

#: Sentence vectors of this many passages are remembered per process.
CACHE_PASSAGES = 2048


@dataclass(frozen=True)
class Highlight:
    start: int  # character offsets of the best sentence in the passage text
    end: int
    similarity: float  # cosine of the query and that sentence


class SentenceHighlighter:
    """Finds the best sentence of each passage for a query vector from the same embedder."""

    def __init__(self, embedder: Embedder, cache_passages: int = CACHE_PASSAGES):
        self.embedder = embedder
        self._cache: OrderedDict[str, tuple[list[tuple[int, int]], np.ndarray]] = OrderedDict()
        self._capacity = cache_passages
        self._lock = threading.Lock()

    def best_sentences(self, qvec: np.ndarray, passages: Sequence[tuple[str, str]]) -> list[Highlight | None]:
        """For each ``(text, lang)``, the sentence closest to ``qvec``; None for a passage
        without sentences. All uncached sentences are embedded in one batch."""
        keys = [self._key(text, lang) for text, lang in passages]
        known: dict[str, tuple[list[tuple[int, int]], np.ndarray]] = {}
        todo: dict[str, tuple[list[tuple[int, int]], str]] = {}
        with self._lock:
            for key, (text, lang) in zip(keys, passages):
                if key in self._cache:
                    self._cache.move_to_end(key)
                    known[key] = self._cache[key]
                elif key not in todo:
                    todo[key] = (split_sentences(text, lang), text)
        if todo:
            flat = [text[a:b] for spans, text in todo.values() for a, b in spans]
            vectors = self.embedder.embed(flat, "passage") if flat else np.zeros((0, self.embedder.dim), np.float32)
            offset = 0
            for key, (spans, _) in todo.items():
                known[key] = (spans, vectors[offset : offset + len(spans)])
                offset += len(spans)
            with self._lock:
                for key in todo:
                    self._put(key, *known[key])
        qvec = np.asarray(qvec, np.float32).reshape(-1)
        out: list[Highlight | None] = []
        for key in keys:
            spans, vecs = known[key]
            if not spans:
                out.append(None)
                continue
            sims = vecs @ qvec
            best = int(np.argmax(sims))
            out.append(Highlight(spans[best][0], spans[best][1], float(sims[best])))
        return out

    def known(self, qvec: np.ndarray, passages: Sequence[tuple[str, str]]) -> dict[int, Highlight | None]:
        """:meth:`best_sentences` for the passages whose sentences are cached already (by
        position in ``passages``); embeds nothing."""
        with self._lock:
            cached = [i for i, (text, lang) in enumerate(passages) if self._key(text, lang) in self._cache]
        if not cached:
            return {}
        return dict(zip(cached, self.best_sentences(qvec, [passages[i] for i in cached])))

    def _put(self, key: str, spans: list[tuple[int, int]], vecs: np.ndarray) -> None:
        self._cache[key] = (spans, vecs)
        while len(self._cache) > max(self._capacity, 1):
            self._cache.popitem(last=False)

    def _key(self, text: str, lang: str) -> str:
        return hashlib.blake2b(f"{self.embedder.fingerprint}\0{lang}\0{text}".encode("utf-8", "surrogatepass"),
                               digest_size=16).hexdigest()
