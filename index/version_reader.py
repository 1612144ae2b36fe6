"""A version's live passages read across its segments, for build-side code that needs them by
passage id (index.watches): their rows, documents, languages and model vectors. (The query side
has its own, search.segments, with FAISS and BM25.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.commit import load_means, read_deleted
from index.manifest import EMBEDDINGS, SEGMENTS, STORE, read_manifest
from index.store import PassageStore
from index.vectors import load_embeddings


class VersionRows:
    def __init__(self, folder: Path):
        manifest = read_manifest(folder)
        deleted = read_deleted(folder, manifest)
        self.means = load_means(folder, manifest)
        self._parts = []  # (base, size, store, embeddings, deleted rows, deleted documents)
        by_lang: dict[str, list[np.ndarray]] = {}
        try:
            for info in sorted(manifest.segments, key=lambda i: i["base"]):
                seg = folder / SEGMENTS / info["name"]
                dead = deleted.get(info["name"], {"rows": [], "documents": []})
                store = PassageStore(seg / STORE)
                self._parts.append((info["base"], info["passages"], store, load_embeddings(seg / EMBEDDINGS),
                                    set(dead["documents"])))
                dead_ids = info["base"] + np.asarray(dead["rows"], np.int64)
                for lang, ids in store.ids_by_language().items():
                    by_lang.setdefault(lang, []).append(np.setdiff1d(ids, dead_ids, assume_unique=True))
        except BaseException:
            self.close()
            raise
        self.ids_by_lang = {lang: np.concatenate(parts) for lang, parts in by_lang.items()
                            if sum(len(p) for p in parts)}

    def _part(self, pid: int):
        for part in self._parts:
            if part[0] <= pid < part[0] + part[1]:
                return part
        raise KeyError(pid)

    def vectors(self, ids) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        out = np.empty((len(ids), self._parts[0][3].shape[1] if self._parts else 0), np.float32)
        for i, pid in enumerate(ids.tolist()):
            base, _, _, emb, _ = self._part(pid)
            out[i] = emb[pid - base]
        return out

    def passages(self, ids) -> dict:
        """Passages by id (one query per segment, not per passage)."""
        by_base: dict[int, list[int]] = {}
        for pid in (int(i) for i in ids):
            by_base.setdefault(self._part(pid)[0], []).append(pid)
        out = {}
        for base, _, store, _, _ in self._parts:
            if base in by_base:
                out.update(store.passages(by_base[base]))
        return out

    def document_meta(self, doc_ids) -> dict:
        ids = list(dict.fromkeys(doc_ids))
        out = {}
        for _, _, store, _, dead in self._parts:
            out.update(store.document_meta([d for d in ids if d not in dead]))
        return out

    def close(self) -> None:
        for part in self._parts:
            part[2].close()
