"""Calibrating "also reported in" and stories: when are two passages in different languages the
same? XQuAD paragraphs of several languages in one index, and the seed corpus.

XQuAD paragraphs are professional translations of each other: paragraph i in language A and
paragraph i in language B say the same; every other pair does not, including the other
paragraphs of the same Wikipedia article (same topic, different content: the hard negatives,
counted apart as "same-article"). All paragraphs go into one index, built through the product
from a JSONL export with declared languages. Then:

1. the product's own output: the links stored in the index (index.margins, at the threshold in
   use) and the stories (index.stories), scored against the gold;
2. the calibration table: every candidate pair (one among the other's k nearest in its
   language) with its margin, precision and recall of "same paragraph" per threshold;
3. the alternatives: ratio vs distance margin, k, neighbourhoods per language vs pooled over all
   other languages, and a plain cosine threshold (the previous rule);
4. the seed corpus (four articles, four different stories): its highest cross-language margin,
   and the links and stories the product stores for it (must be none).

Precision counts as false every link between different paragraphs; recall is the share of
(paragraph, language pair) units with at least one link between their passages (a paragraph may
be two passages).

    .venv/bin/python benchmarks/same_story.py ../shared/eval/xquad/xquad.{de,el,es,hi,ru,th,tr,vi,zh}.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index.margins import (LINK_THRESHOLD, MARGIN_K, cross_language_neighbours, knn_mean,  # noqa: E402
                           passage_links)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("xquad", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/polyseek-same-story"))
    ap.add_argument("--query-prompt", action="store_true",
                    help="also the symmetric variant: every passage encoded with the query prompt (embeds the pool "
                         "once more; cached in WORK/query-vectors.npy)")
    args = ap.parse_args()
    from polyseek.embedder import load_embedder

    embedder = load_embedder()
    pool = product_index(args.xquad, args.work / "xquad", embedder)
    seed = product_index(None, args.work / "seed", embedder)
    langs = sorted(set(pool["langs"]))
    print(f"model {embedder.name}; {time.strftime('%Y-%m-%d')}; XQuAD {', '.join(langs)}: "
          f"{len(set(pool['docs']))} paragraphs, {len(pool['docs'])} passages in one index\n")

    gold = Gold(pool["docs"], pool["langs"])
    print(f"## The product (ratio margin, k = {MARGIN_K}, threshold {LINK_THRESHOLD})\n")
    a, b = pool["links"]
    p, r, false, same = gold.score(a, b)
    print(f"stored links: {len(a)}; precision {p:.4f}, recall {r:.4f}; false links {false} "
          f"(same-article {same}); build: {pool['manifest'].stories}")
    print(stories_report(pool["stories"]))
    print(f"seed corpus: {len(seed['links'][0])} stored links, {seed['multi']} stories of more than one document; "
          f"build: {seed['manifest'].stories}\n")

    print("## Calibration: threshold → precision, recall (ratio margin, per-language neighbourhoods, k = 4)\n")
    neighbours = cross_language_neighbours(pool["vectors"], pool["langs"], k=8)
    seed_n = cross_language_neighbours(seed["vectors"], seed["langs"], k=8)
    a, b, m, _ = candidate_margins(neighbours, pool["langs"], MARGIN_K, "ratio", pooled=False)
    seed_max = _seed_max(seed_n, seed, MARGIN_K, "ratio", False)
    print("| threshold | precision | recall | false links | of which same-article | seed corpus links |")
    print("| --- | --- | --- | --- | --- | --- |")
    sa, sb, sm, _ = candidate_margins(seed_n, seed["langs"], MARGIN_K, "ratio", False)
    cross_seed = seed["docs"][sa] != seed["docs"][sb]
    for t in np.round(np.arange(1.000, 1.0501, 0.005), 3):
        keep = m >= t
        p, r, false, same = gold.score(a[keep], b[keep])
        mark = " **(product)**" if abs(t - LINK_THRESHOLD) < 1e-9 else ""
        print(f"| {t:.3f}{mark} | {p:.4f} | {r:.4f} | {false} | {same} | {int((cross_seed & (sm >= t)).sum())} |")
    print(f"\nseed corpus: highest cross-language margin {seed_max:.4f}\n")

    print("## Alternatives: best recall at precision ≥ 0.98; precision at recall ≥ 0.90; seed's highest margin\n")
    print("| rule | k | threshold (P ≥ 0.98) | recall | threshold (R ≥ 0.90) | precision | same-article false | seed max | seed clear |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rules = [("cosine", False, (4,)), ("ratio, pooled over other languages", True, (1, 2, 4, 8)),
             ("ratio, per language", False, (1, 2, 4, 8)), ("distance, per language", False, (2, 4, 8))]
    for name, pooled, ks in rules:
        kind = name.split(",")[0]
        for k in ks:
            a, b, m, _ = candidate_margins(neighbours, pool["langs"], k, kind, pooled)
            smax = _seed_max(seed_n, seed, k, kind, pooled)
            t98, r98, t90, p90, same90 = gold.operating_points(a, b, m)
            clear = "yes" if t90 is not None and smax < t90 else "no"
            print(f"| {name} | {k} | {_f(t98)} | {_f(r98)} | {_f(t90)} | {_f(p90)} | {same90} | {smax:.4f} | {clear} |")
    if args.query_prompt:
        print("\n## Symmetric encoding: every passage with the query prompt (ratio, per language)\n")
        print("| k | threshold | precision | recall | same-article false | seed max |")
        print("| --- | --- | --- | --- | --- | --- |")
        qpool = query_vectors(pool, args.work / "xquad" / "query-vectors.npy", embedder)
        qseed = query_vectors(seed, args.work / "seed" / "query-vectors.npy", embedder)
        for k in (2, 4):
            qn, qs = (cross_language_neighbours(v, x["langs"], k=8) for v, x in ((qpool, pool), (qseed, seed)))
            a, b, m, _ = candidate_margins(qn, pool["langs"], k, "ratio", False)
            smax = _seed_max(qs, seed, k, "ratio", False)
            for t in (1.02, 1.025, 1.03):
                keep = m >= t
                p, r, _, same = gold.score(a[keep], b[keep])
                print(f"| {k} | {t:.3f} | {p:.4f} | {r:.4f} | {same} | {smax:.4f} |")


def product_index(xquad: list[Path] | None, work: Path, embedder) -> dict:
    """Build (or bring up to date: nothing is embedded twice) the index of the XQuAD pool, or of
    the seed corpus when ``xquad`` is None; read back its vectors, links and stories."""
    from index import update_index
    from index.manifest import EMBEDDINGS, STORE, read_manifest
    from index.store import PassageStore
    from index.vectors import load_embeddings
    from index.versions import current_version

    if xquad is None:
        corpus = ROOT / "data"
    else:
        corpus = work / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        with open(corpus / "xquad.jsonl", "w", encoding="utf-8") as f:
            for path in xquad:
                lang = path.name.split(".")[1]
                data = json.loads(path.read_text(encoding="utf-8"))
                n = 0
                for a, article in enumerate(data["data"]):
                    for para in article["paragraphs"]:
                        f.write(json.dumps({"id": f"{lang}/a{a:02d}/p{n:03d}", "title": f"{lang} {a}.{n}",
                                            "text": para["context"], "lang": lang}, ensure_ascii=False) + "\n")
                        n += 1
    update_index(corpus, work / "index", embedder=embedder)
    folder = current_version(work / "index")
    store = PassageStore(folder / STORE)
    try:
        rows = store._all("SELECT p.passage_id, p.doc_id, p.lang, p.text FROM passages p ORDER BY p.passage_id")
        links = store._all("SELECT a, b FROM passage_links WHERE a < b")
        stories = store._all("SELECT story_id, doc_id FROM story_documents")
        multi = store._all("SELECT count(*) FROM stories WHERE size > 1")[0][0]
    finally:
        store.close()
    docs = np.array([d.split("#")[-1] for _, d, _, _ in rows])
    return {"vectors": np.asarray(load_embeddings(folder / EMBEDDINGS)), "docs": docs,
            "langs": np.array([lang for _, _, lang, _ in rows]), "texts": [t for _, _, _, t in rows],
            "manifest": read_manifest(folder),
            "links": (np.array([x for x, _ in links], np.int64), np.array([y for _, y in links], np.int64)),
            "stories": stories, "multi": multi}


def query_vectors(built: dict, cache: Path, embedder) -> np.ndarray:
    """The pool's passages encoded with the query prompt (cached; the cache is checked on a sample)."""
    texts = built["texts"]
    if cache.is_file():
        out = np.load(cache, allow_pickle=False)
        sample = list(range(0, len(texts), max(1, len(texts) // 12)))
        if len(out) == len(texts) and np.abs(embedder.embed([texts[i] for i in sample], "query") - out[sample]).max() < 1e-4:
            return out
    out = embedder.embed(texts, "query")
    np.save(cache, out, allow_pickle=False)
    return out


def candidate_margins(neighbours, langs, k: int, kind: str, pooled: bool):
    """Every candidate pair (a < b, once) with its score under a rule."""
    n, n_langs, depth = neighbours.ids.shape
    if pooled:  # the k nearest over all other languages: within the union of each language's k nearest
        flat = neighbours.cosines.reshape(n, -1)
        means = np.repeat(knn_mean(-np.sort(-flat, axis=1), k)[:, None], n_langs, axis=1)
    else:
        means = knn_mean(neighbours.cosines, k)
    if kind == "ratio":
        a, b, m, c = passage_links(neighbours, langs, -np.inf, means=means)
        return a, b, m, c
    a, b, _, c = passage_links(neighbours, langs, -np.inf, means=means)
    col = {lang: i for i, lang in enumerate(neighbours.langs)}
    lc = np.array([col[x] for x in langs])
    if kind == "distance":
        return a, b, c - (means[a, lc[b]] + means[b, lc[a]]) / 2, c
    return a, b, c, c  # cosine


def _seed_max(neighbours, seed, k, kind, pooled) -> float:
    a, b, m, _ = candidate_margins(neighbours, seed["langs"], k, kind, pooled)
    cross = seed["docs"][a] != seed["docs"][b]
    return float(m[cross].max()) if cross.any() else float("nan")


class Gold:
    def __init__(self, docs: np.ndarray, langs: np.ndarray):
        self.para = np.array([d.split("/")[2] for d in docs])
        self.article = np.array([d.split("/")[1] for d in docs])
        self.langs = langs
        n_langs = len(set(langs.tolist()))
        self.units = len(set(self.para.tolist())) * n_langs * (n_langs - 1) // 2

    def score(self, a, b):
        true = self.para[a] == self.para[b]
        same = (self.article[a] == self.article[b]) & ~true
        first = self.langs[a] < self.langs[b]
        lo, hi = np.where(first, self.langs[a], self.langs[b]), np.where(first, self.langs[b], self.langs[a])
        found = {(p, x, y) for p, x, y, t in zip(self.para[a], lo, hi, true) if t}
        return (true.sum() / max(1, len(a)), len(found) / self.units, int((~true).sum()), int(same.sum()))

    def operating_points(self, a, b, m):
        """(threshold, recall) of the best recall with precision >= 0.98; (threshold, precision,
        same-article false links) of the best precision with recall >= 0.90."""
        t98 = r98 = t90 = p90 = None
        same90 = "–"
        for t in np.quantile(m, np.linspace(0.5, 0.999, 400)):
            keep = m >= t
            p, r, _, same = self.score(a[keep], b[keep])
            if p >= 0.98 and (r98 is None or r > r98):
                t98, r98 = t, r
            if r >= 0.90 and (p90 is None or p > p90):
                t90, p90, same90 = t, p, same
        return t98, r98, t90, p90, same90


def stories_report(members: list[tuple[str, str]]) -> str:
    """Stories of the XQuAD pool against the gold (a story per paragraph, all its languages)."""
    stories: dict[str, set] = {}
    for story, doc in members:
        stories.setdefault(story, set()).add(doc.split("#")[-1])
    paras = lambda docs: {d.split("/")[2] for d in docs}  # noqa: E731
    multi = [docs for docs in stories.values() if len(docs) > 1]
    pure = sum(1 for docs in multi if len(paras(docs)) == 1)
    langs = [len({d.split("/")[0] for d in docs}) for docs in multi if len(paras(docs)) == 1]
    return (f"stories of more than one document: {len(multi)}, of which {pure} hold one paragraph only "
            f"(purity {pure / max(1, len(multi)):.4f}); languages per pure story: mean {np.mean(langs or [0]):.2f}; "
            f"documents in no multi-document story: {sum(1 for docs in stories.values() if len(docs) == 1)}")


def _f(x) -> str:
    return "–" if x is None else f"{x:.4f}"


if __name__ == "__main__":
    main()
