"""Why Polyseek stores vectors minus their language's mean: cross-language discovery on XQuAD.

    .venv/bin/python benchmarks/language_balance.py [--xquad ../shared/eval/xquad] [--langs de es ru zh]

All paragraphs of the given languages (parallel translations) go into one pool; each paragraph's
first question, in every language, is a query. Reported, for plain cosine and for the
language-offset scores at several priors:
  * other-lang gold@10: share of (query, other language) pairs whose gold paragraph in that
    language is in the top 10 of the mixed pool — the cross-language promise;
  * same-lang gold@10: the same for the query's own language;
  * top-1 gold: the top hit is the gold paragraph in some language;
  * filtered R@1: mean Recall@1 over language pairs with the pool restricted to the target
    language (the offset is constant there, so it must equal plain)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--xquad", default=str(Path(__file__).resolve().parents[2] / "shared/eval/xquad"))
    parser.add_argument("--langs", nargs="+", default=["de", "es", "ru", "zh"])
    args = parser.parse_args()

    from index.balance import language_means
    from polyseek.embedder import load_embedder

    embedder = load_embedder()
    langs = args.langs
    P, Q = {}, {}
    for lang in langs:
        data = json.loads((Path(args.xquad) / f"xquad.{lang}.json").read_text())["data"]
        paras = [p for article in data for p in article["paragraphs"]]
        P[lang] = embedder.embed([p["context"] for p in paras], "passage")
        Q[lang] = embedder.embed([p["qas"][0]["question"] for p in paras], "query")
    n = len(P[langs[0]])
    pool = np.concatenate([P[l] for l in langs])
    plang = np.repeat(langs, n)
    pidx = np.tile(np.arange(n), len(langs))
    queries = np.concatenate([Q[l] for l in langs])
    qlang = np.repeat(langs, n)
    qidx = np.tile(np.arange(n), len(langs))

    def report(name, stored):
        top = np.argsort(-(queries @ stored.T), axis=1)[:, :10]
        gold = pidx[top] == qidx[:, None]
        other = np.mean([[(gold[i] & (plang[top[i]] == b)).any() for b in langs if b != qlang[i]] for i in range(len(top))])
        same = np.mean([(gold[i] & (plang[top[i]] == qlang[i])).any() for i in range(len(top))])
        filtered = np.mean([((Q[a] @ stored[plang == b].T).argmax(1) == np.arange(n)).mean() for a in langs for b in langs])
        print(f"| {name} | {other:.3f} | {same:.3f} | {gold[:, 0].mean():.3f} | {filtered:.4f} |")

    print(f"XQuAD {', '.join(langs)}: {n} paragraphs per language, {len(queries)} queries, model {embedder.name}\n")
    print("| scores | other-lang gold@10 | same-lang gold@10 | top-1 gold | filtered R@1 |")
    print("| --- | --- | --- | --- | --- |")
    report("plain cosine", pool)
    for prior in (0.0, 1.0, 3.0, 10.0):
        means = language_means(pool, list(plang), prior)
        report(f"offset, prior {prior:g}" + (" (default)" if prior == 1.0 else ""), pool - np.stack([means[l] for l in plang]))


if __name__ == "__main__":
    main()
