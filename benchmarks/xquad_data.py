"""XQuAD paragraphs and questions for the performance benchmarks, and their embeddings by the
bundled model (computed once, cached under the Polyseek cache by model fingerprint)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

XQUAD = ROOT.parent / "shared" / "eval" / "xquad"
LANGS = ("de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh")


def paragraphs(langs=LANGS, xquad: Path = XQUAD) -> list[tuple[str, str, list[str]]]:
    """(lang, paragraph, its questions) for every paragraph of each language, in file order."""
    out = []
    for lang in langs:
        data = json.loads((xquad / f"xquad.{lang}.json").read_text(encoding="utf-8"))
        for article in data["data"]:
            for para in article["paragraphs"]:
                out.append((lang, para["context"], [qa["question"] for qa in para["qas"]]))
    return out


def embeddings(embedder, langs=LANGS, xquad: Path = XQUAD) -> dict[str, np.ndarray]:
    """{"passages", "queries" (each paragraph's first question), "langs", "texts"}, cached."""
    from polyseek import settings

    cache = settings.cache_dir() / "bench" / f"xquad-{embedder.fingerprint}-{'-'.join(langs)}.npz"
    paras = paragraphs(langs, xquad)
    if cache.is_file():
        got = np.load(cache, allow_pickle=False)
        out = {k: got[k] for k in got.files}
    else:
        from search.eval import embed_texts

        out = {
            "passages": embed_texts([p for _, p, _ in paras], embedder, "passage", "XQuAD paragraphs", True, batch=8),
            "queries": embed_texts([q[0] for _, _, q in paras], embedder, "query", "XQuAD questions", True, batch=8),
        }
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **out)
        tmp.replace(cache)
    out["langs"] = np.array([lang for lang, _, _ in paras])
    out["texts"] = [p for _, p, _ in paras]
    return out
