"""A disk cache of model vectors for evaluation runs: the same texts are never embedded twice.

:class:`CachedEmbedder` wraps an :class:`~polyseek.embedder.Embedder` and keeps every vector it
computes in ``DIR/<fingerprint>-<kind>.npy`` beside a JSON list of the texts' blake2b keys (no
pickle). Keys hash the model fingerprint, the kind and the text, so a changed model never
reuses a vector. Used by ``python -m search.eval --cache DIR`` (the XQuAD mixed pool embeds
~24,000 texts: many minutes on a small CPU, seconds from the cache).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np


class CachedEmbedder:
    """The wrapped embedder's interface; ``embed`` answers from the cache where it can and
    stores what it computes (:meth:`save` writes it, also called every ``save_every`` new rows)."""

    def __init__(self, embedder, folder, save_every: int = 2048):
        self.inner = embedder
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.name, self.fingerprint, self.dim = embedder.name, embedder.fingerprint, embedder.dim
        self.max_tokens, self.prompts = embedder.max_tokens, embedder.prompts
        self.preferred_batch_size = embedder.preferred_batch_size
        self._rows: dict[str, dict[str, int]] = {}
        self._vectors: dict[str, list[np.ndarray]] = {}
        self._unsaved = 0
        self._save_every = save_every
        for kind in ("query", "passage"):
            self._load(kind)

    def _paths(self, kind: str) -> tuple[Path, Path]:
        stem = f"{self.fingerprint[:16]}-{kind}"
        return self.folder / f"{stem}.npy", self.folder / f"{stem}.json"

    def _load(self, kind: str) -> None:
        vec_path, key_path = self._paths(kind)
        self._rows[kind], self._vectors[kind] = {}, []
        if vec_path.is_file() and key_path.is_file():
            keys = json.loads(key_path.read_text(encoding="utf-8"))
            vectors = np.load(vec_path, allow_pickle=False)
            if len(keys) == len(vectors) and vectors.ndim == 2 and vectors.shape[1] == self.dim:
                self._rows[kind] = {k: i for i, k in enumerate(keys)}
                self._vectors[kind] = list(vectors)

    def _key(self, kind: str, text: str) -> str:
        data = f"{self.fingerprint}\0{kind}\0{text.strip()}".encode("utf-8", "surrogatepass")
        return hashlib.blake2b(data, digest_size=16).hexdigest()

    def embed(self, texts: Sequence[str], kind, batch_size: int | None = None) -> np.ndarray:
        keys = [self._key(kind, t) for t in texts]
        rows = self._rows[kind]
        todo = list(dict.fromkeys(k for k in keys if k not in rows))
        if todo:
            first = {k: t for k, t in zip(keys, texts) if k not in rows}
            fresh = self.inner.embed([first[k] for k in todo], kind, batch_size=batch_size)
            for k, v in zip(todo, fresh):
                rows[k] = len(self._vectors[kind])
                self._vectors[kind].append(np.asarray(v, np.float32))
            self._unsaved += len(todo)
            if self._unsaved >= self._save_every:
                self.save()
        out = np.empty((len(texts), self.dim), np.float32)
        for i, k in enumerate(keys):
            out[i] = self._vectors[kind][rows[k]]
        return out

    def save(self) -> None:
        """Write both kinds atomically (a temporary file, then ``os.replace``)."""
        for kind, vectors in self._vectors.items():
            vec_path, key_path = self._paths(kind)
            keys = sorted(self._rows[kind], key=self._rows[kind].get)
            array = np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32)
            tmp = vec_path.with_name(f".{vec_path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, array, allow_pickle=False)
            os.replace(tmp, vec_path)
            tmp = key_path.with_name(f".{key_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(keys), encoding="utf-8")
            os.replace(tmp, key_path)
        self._unsaved = 0

    def set_threads(self, threads: int) -> None:
        self.inner.set_threads(threads)

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self.inner.token_spans(texts)
