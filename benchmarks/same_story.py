"""Calibrating "also reported in": the cosine above which two passages in different languages
say the same thing.

XQuAD paragraphs are professional translations of each other: paragraph i in language A and
paragraph i in language B are the same content, i and j != i are not. Every cross-language pair
of paragraphs is scored with the product's model (passage prompt, as indexed), and each
threshold is reported with the precision and recall of "same content" it gives.

    .venv/bin/python benchmarks/same_story.py ../shared/eval/xquad/xquad.{de,es,ru,zh}.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from polyseek.embedder import load_embedder  # noqa: E402
from search.eval import embed_texts, read_squad  # noqa: E402
from search.searcher import SAME_STORY_THRESHOLD  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("xquad", nargs="+", type=Path)
    args = ap.parse_args()
    embedder = load_embedder()
    sets = [read_squad(p) for p in args.xquad]
    vecs = {s.lang: embed_texts(s.paragraphs, embedder, "passage", f"paragraphs {s.lang}", True, batch=16) for s in sets}
    same, other = [], []
    langs = [s.lang for s in sets]
    for i, a in enumerate(langs):
        for b in langs[i + 1 :]:
            sims = vecs[a] @ vecs[b].T
            same.append(np.diag(sims))
            other.append(sims[~np.eye(len(sims), dtype=bool)])
    same, other = np.concatenate(same), np.concatenate(other)
    print(f"model {embedder.name}; languages {', '.join(langs)}; {len(same):,} parallel pairs, "
          f"{len(other):,} non-parallel pairs\n")
    def rates(t):
        tp, fp = int((same >= t).sum()), int((other >= t).sum())
        return tp / max(tp + fp, 1), tp / len(same)

    print("| threshold | precision | recall |")
    print("| --- | --- | --- |")
    grid = np.round(np.arange(0.820, 0.8701, 0.0025), 4)
    for t in grid:
        precision, recall = rates(t)
        mark = " (product)" if abs(t - SAME_STORY_THRESHOLD) < 1e-9 else ""
        print(f"| {t:.4f}{mark} | {precision:.3f} | {recall:.3f} |")
    best = max((t for t in grid if rates(t)[0] >= 0.9), key=lambda t: rates(t)[1])
    print(f"\nhighest recall with precision >= 0.9: threshold {best:.4f}, precision {rates(best)[0]:.3f}, "
          f"recall {rates(best)[1]:.3f}")
    for a in langs:  # per language pair at the product's threshold
        for b in langs[langs.index(a) + 1 :]:
            sims = vecs[a] @ vecs[b].T
            tp = int((np.diag(sims) >= SAME_STORY_THRESHOLD).sum())
            fp = int((sims[~np.eye(len(sims), dtype=bool)] >= SAME_STORY_THRESHOLD).sum())
            print(f"{a}-{b}: precision {tp / max(tp + fp, 1):.3f}, recall {tp / len(sims):.3f}")


if __name__ == "__main__":
    main()
