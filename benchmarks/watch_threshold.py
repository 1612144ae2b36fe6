"""How the watches' default threshold was chosen: XQuAD, every question against every paragraph.

    .venv/bin/python benchmarks/watch_threshold.py [--langs de el es hi ru th tr vi zh]

A watch fires on a new passage whose score reaches a threshold. Here each paragraph's first
question (in every language) is a watch and every paragraph of every language is a new
passage; the question's own paragraph (in each language) should fire, the other paragraphs
(many from the same article: same topic, other content) should not. Four scores, each at the
threshold with its best F1 over all pairs: the plain cosine; the language-balanced score (cosine
minus the query's similarity to the language's mean, as the index stores passages); the ranking
margin (index.balance: over the query's 20 best in the language); and the standardized score
watches use (the balanced score over the spread of the query's scores in
the passage's language, index.watches.language_spread). Per *passage* language: recall (share
of gold paragraphs that fire) and false alarms per watch (other paragraphs of that language that
fire). "Fires as readily in every language" = a small spread of both across languages.
Embeddings: whole paragraphs by the bundled model (cached by benchmarks/xquad_data.py)."""

from __future__ import annotations

import argparse

import numpy as np

from xquad_data import LANGS, embeddings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--langs", nargs="+", default=list(LANGS))
    args = parser.parse_args()

    from index.balance import calibrate
    from index.balance import language_means
    from index.watches import DEFAULT_THRESHOLD, language_spread, spread_sample
    from polyseek.embedder import load_embedder

    embedder = load_embedder()
    data = embeddings(embedder, tuple(args.langs))
    P, Q, langs = data["passages"], data["queries"], data["langs"]
    n = int((langs == langs[0]).sum())
    para = np.tile(np.arange(n), len(args.langs))
    means = language_means(P, list(langs))
    offsets = np.stack([means[lang] for lang in langs])
    balanced = Q @ (P - offsets).T
    ids = {lang: np.flatnonzero(langs == lang) for lang in args.langs}
    spread = language_spread(Q, {lang: P[i] - means[lang] for lang, i in spread_sample(ids).items()},
                             {lang: len(i) for lang, i in ids.items()})
    z = balanced / np.stack([spread[lang] for lang in langs], axis=1)
    # The ranking's margin (index.balance): over the query's 20 best scores in each language.
    margin = np.empty_like(balanced)
    for i in range(len(Q)):
        scales = calibrate({lang: -np.sort(-balanced[i, idx]) for lang, idx in ids.items()})
        for lang, idx in ids.items():
            margin[i, idx] = scales[lang].margin(balanced[i, idx])
    scores = {"cosine": Q @ P.T, "balanced": balanced, "ranking margin": margin, "standardized": z}
    gold = para[:, None] == para[None, :]  # query i (paragraph para[i]) × passage j

    print(f"XQuAD {', '.join(args.langs)}: {len(Q)} watches × {len(P)} passages, model {embedder.name}\n")
    print("| score | threshold | precision | recall | F1 | recall per passage language (min–max) | false alarms per watch, per language (min–max) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    best = {}
    for name, S in scores.items():
        step = 0.05 if name in ("standardized", "ranking margin") else 0.005
        grid = np.round(np.arange(np.quantile(S, 0.5), S.max(), step), 3)
        f1s = []
        for t in grid:
            fired = S >= t
            tp = (fired & gold).sum()
            prec, rec = tp / max(fired.sum(), 1), tp / gold.sum()
            f1s.append(2 * prec * rec / max(prec + rec, 1e-9))
        best[name] = float(grid[int(np.argmax(f1s))])
        rows = [(best[name], "best F1")] + ([(DEFAULT_THRESHOLD, "default")] if name == "standardized" else [])
        for t, why in rows:
            fired = S >= t
            tp = (fired & gold).sum()
            prec, rec = tp / max(fired.sum(), 1), tp / gold.sum()
            per = {b: (fired & gold)[:, langs == b].sum() / gold[:, langs == b].sum() for b in args.langs}
            false = {b: (fired & ~gold)[:, langs == b].sum() / len(Q) for b in args.langs}
            span = f"{min(per.values()):.2f}–{max(per.values()):.2f} ({' '.join(f'{b} {r:.2f}' for b, r in per.items())})"
            alarms = f"{min(false.values()):.2f}–{max(false.values()):.2f}"
            print(f"| {name} ({why}) | {t:.3f} | {prec:.3f} | {rec:.3f} | {2 * prec * rec / max(prec + rec, 1e-9):.3f} "
                  f"| {span} | {alarms} |")
    # Same-language against cross-language firing, the bias a plain cosine threshold has.
    qlang = langs[:, None] == langs[None, :]
    for name, S in scores.items():
        fired = S >= best[name]
        same = (fired & gold & qlang).sum() / (gold & qlang).sum()
        cross = (fired & gold & ~qlang).sum() / (gold & ~qlang).sum()
        print(f"\n{name} at {best[name]:.3f}: recall when watch and passage share a language {same:.3f}, "
              f"across languages {cross:.3f}")


if __name__ == "__main__":
    main()
