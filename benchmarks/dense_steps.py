"""Where a dense search's time goes, on an index kept by ``benchmarks/scale.py --keep``:
wall-clock timers around each step of ``Searcher.search_vector`` (ranking the pooled cells,
scanning them, reading and scoring the exact rows, the per-language selection, merging, hits),
per query, over the kept index's 500 questions, three passes (the first reads from disk).

    .venv/bin/python benchmarks/dense_steps.py /tmp/x/polyseek-scale-1000000-…

Each step's time includes the steps it calls (``scan_languages`` holds ``probe``, ``scan`` and
``prefetch``; ``_dense`` holds ``scan_languages``; ``search_vector`` holds all).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from polyseek.embedder import load_embedder
    from search import Searcher, segments
    from xquad_data import embeddings

    work = Path(sys.argv[1])
    embedder = load_embedder()
    qvecs = embeddings(embedder)["queries"][np.load(work / "picks.npy")]
    searcher = Searcher.open(work / "index", embedder=embedder)
    spent: dict[str, float] = {}

    def timed(owner, name):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

        setattr(owner, name, wrapper)

    for owner, name in [(segments.CellPool, "probe"), (segments.SegmentReader, "scan"),
                        (segments._ExactScores, "prefetch"), (segments, "scan_languages"),
                        (type(searcher), "_dense"), (type(searcher), "search_vector")]:
        timed(owner, name)
    for rep in range(3):
        spent.clear()
        for q in qvecs:
            searcher.search_vector(q, 10)
        print(json.dumps({"pass": rep + 1, **{k: round(v / len(qvecs) * 1000, 2) for k, v in spent.items()}}), flush=True)


if __name__ == "__main__":
    main()
