"""What both evaluations (search.eval, search.eval_mixed) do with the model: embed a list of
texts in batches with a progress bar, and build an index of an evaluation corpus."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def embed_texts(texts: list[str], embedder, kind: str, desc: str, progress: bool, batch: int = 64) -> np.ndarray:
    from tqdm import tqdm

    out = np.empty((len(texts), embedder.dim), np.float32)
    with tqdm(total=len(texts), desc=desc, unit="text", file=sys.stderr, disable=not progress, leave=False) as bar:
        for start in range(0, len(texts), batch):
            out[start : start + batch] = embedder.embed(texts[start : start + batch], kind)  # its own batch size
            bar.update(min(batch, len(texts) - start))
    return out


def build_eval_index(corpus: Path, index_dir: Path, embedder, progress: bool, **options):
    """``build_index`` with the CLI's progress bars (closed when it ends)."""
    from index import build_index
    from index.cli import TqdmProgress

    bars = TqdmProgress() if progress else None
    try:
        return build_index(corpus, index_dir, embedder=embedder, progress=bars, **options)
    finally:
        if bars:
            bars.close()
