"""``python -m search.eval``: cross-lingual retrieval quality, measured through the product.

XQuAD / SQuAD-v1.1 files (one per language, parallel by position): every paragraph of every
language becomes a document of one corpus, built by ``index.build_index`` (chunking, store,
FAISS, BM25 — what users run); every question of every language is a query, searched with the
language filter set to each target language, one passage per document; the gold is the
parallel paragraph. Recall@1, Recall@10 and MRR@10 per (query language → passage language).

Tatoeba line-aligned pairs (``tatoeba.xxx-eng.xxx`` + ``.eng``): each side becomes an index of
its sentences; each sentence searches the other side; accuracy = top hit is its translation,
in both directions.

``--bare`` adds the bare model: sentence-transformers encode of whole paragraphs (sentences)
and exact inner-product search, with no chunking, store or index — to show any loss in the
pipeline. Results: Markdown on stdout, ``results.json`` and ``heatmap.png`` in ``--out``.

    python -m search.eval ../shared/eval/xquad/xquad.{de,es,ru}.json --bare --out eval-out
    python -m search.eval --tatoeba ../shared/eval/tatoeba/tatoeba.deu-eng.deu --bare
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polyseek import settings
from polyseek.errors import PolyseekError
from search.eval_index import build_eval_index, embed_texts
from search.metrics import rank_of, summarize

SYSTEMS = ("dense", "hybrid", "hybrid-all", "bare")
#: How each pipeline system searches: "hybrid" fuses BM25 only in the query's own language (the
#: product's hybrid mode); "hybrid-all" lets BM25 propose passages in any language.
_SEARCH = {"dense": {"mode": "dense"}, "hybrid": {"mode": "hybrid", "lexical_same_language": True},
           "hybrid-all": {"mode": "hybrid", "lexical_same_language": False}}


@dataclass
class Parallel:
    """One language of a parallel XQuAD set: paragraphs, and questions with their paragraph."""

    lang: str
    paragraphs: list[str]
    questions: list[tuple[int, str]]
    answer_starts: list[int] = field(default_factory=list)  # character offset of each question's answer; -1: none


def read_squad(path: Path, lang: str | None = None) -> Parallel:
    """A SQuAD-v1.1 JSON file; the language from ``lang`` or the file name (``xquad.de.json``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        paragraphs, questions, starts = [], [], []
        for article in data["data"]:
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    questions.append((len(paragraphs), qa["question"]))
                    answers = qa.get("answers") or [{}]
                    starts.append(int(answers[0].get("answer_start", -1)))
                paragraphs.append(para["context"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PolyseekError(f"{path} is not a readable SQuAD-v1.1 JSON file ({type(exc).__name__}: {exc})") from exc
    if lang is None:
        m = re.search(r"\.([a-z]{2,3})\.json$", Path(path).name)
        if not m:
            raise PolyseekError(f"cannot tell the language of {path}: name it like xquad.de.json")
        lang = m.group(1)
    return Parallel(lang, paragraphs, questions, starts)


TASKS = ("filtered", "mixed", "sentences")


def evaluate_xquad(sets: list[Parallel], embedder, systems=SYSTEMS, work: Path | None = None,
                   chunk_tokens: int | None = None, max_questions: int | None = None,
                   progress: bool = True, tasks=("filtered", "mixed")) -> dict:
    """Per-pair metrics for each system: ``{system: {"A->B": summary}}``, plus details.
    ``tasks``: "filtered" (R@1 per language pair, the filter set to the target language),
    "mixed" (the paragraph mixed pool, no filter) and "sentences" (XQuAD-R); see
    :mod:`search.eval_mixed` for the last two."""
    from index.chunking import DEFAULT_CHUNK_TOKENS
    from search.eval_mixed import mixed_pool, mixed_pool_bare, xquad_r
    from search.searcher import Searcher

    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise PolyseekError(f"unknown evaluation task(s) {sorted(unknown)}: use {', '.join(TASKS)}")
    n = {len(s.paragraphs) for s in sets}
    if len(n) != 1:
        raise PolyseekError(f"the files are not parallel: paragraph counts {sorted(n)}")
    work = Path(work or tempfile.mkdtemp(prefix="polyseek-eval-"))
    corpus = work / "corpus"
    for s in sets:
        (corpus / s.lang).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(s.paragraphs):
            (corpus / s.lang / f"{i:04d}.txt").write_text(text, encoding="utf-8")
    queries = {s.lang: s.questions[:max_questions] if max_questions else s.questions for s in sets}
    langs = [s.lang for s in sets]
    results: dict = {"systems": {}, "languages": langs, "paragraphs": n.pop(),
                     "questions": {lang: len(q) for lang, q in queries.items()}}
    if "mixed" in tasks:
        results["mixed"] = {}

    pipeline = [m for m in systems if m in _SEARCH]
    qvecs = {lang: embed_texts([q for _, q in queries[lang]], embedder, "query", f"queries {lang}", progress) for lang in langs}
    if pipeline and {"filtered", "mixed"} & set(tasks):
        started = time.perf_counter()
        summary = build_eval_index(corpus, work / "index", embedder, progress, chunk_tokens=chunk_tokens or DEFAULT_CHUNK_TOKENS)
        results["build"] = {"passages": summary.passages, "languages": summary.languages,
                            "seconds": round(time.perf_counter() - started, 1)}
        with Searcher.open(work / "index", embedder=embedder) as searcher:
            results["misdetected_passages"] = _misdetected(searcher, langs)
            for mode in pipeline:
                if "filtered" in tasks:
                    table = {}
                    for a in langs:
                        for b in langs:
                            ranks = []
                            for (gold, text), qvec in zip(queries[a], qvecs[a]):
                                hits = searcher.search_vector(qvec, 10, [b], per_document=True, query=text, **_SEARCH[mode])
                                ranks.append(rank_of([h.doc_id for h in hits], f"{b}/{gold:04d}.txt"))
                            table[f"{a}->{b}"] = summarize(ranks)
                    results["systems"][mode] = table
                if "mixed" in tasks:
                    results["mixed"][mode] = mixed_pool(searcher, sets, queries, qvecs, _SEARCH[mode])
    if "bare" in systems and {"filtered", "mixed"} & set(tasks):
        pvecs = {s.lang: embed_texts(s.paragraphs, embedder, "passage", f"paragraphs {s.lang}", progress) for s in sets}
        if "filtered" in tasks:
            table = {}
            for a in langs:
                for b in langs:
                    order = np.argsort(-(qvecs[a] @ pvecs[b].T), axis=1)[:, :10]
                    ranks = [rank_of(list(row), gold) for (gold, _), row in zip(queries[a], order)]
                    table[f"{a}->{b}"] = summarize(ranks)
            results["systems"]["bare"] = table
        if "mixed" in tasks:
            results["mixed"]["bare"] = mixed_pool_bare(sets, queries, qvecs, pvecs)
    for table in results["systems"].values():
        _add_means(table, langs)
    if "sentences" in tasks:
        results["xquad_r"] = xquad_r(sets, embedder, systems, work, queries, qvecs, _SEARCH, progress)
    return results


def evaluate_tatoeba(pairs: list[tuple[Path, Path]], embedder, systems=SYSTEMS, work: Path | None = None,
                     progress: bool = True) -> dict:
    """Bitext retrieval accuracy, both directions: ``{system: {"deu->eng": acc, ...}}``."""
    from search.searcher import Searcher

    work = Path(work or tempfile.mkdtemp(prefix="polyseek-tatoeba-"))
    out: dict = {}
    for xxx_path, eng_path in pairs:
        sides = {}
        for path in (xxx_path, eng_path):
            lines = path.read_text(encoding="utf-8").splitlines()
            sides[path.suffix.lstrip(".")] = lines
        (a, la), (b, lb) = list(sides.items())
        if len(la) != len(lb):
            raise PolyseekError(f"{xxx_path} and {eng_path} are not line-aligned ({len(la)} and {len(lb)} lines)")
        vecs = {code: embed_texts(lines, embedder, "query", f"tatoeba {code}", progress) for code, lines in sides.items()}
        for mode in systems:
            if mode == "bare":
                pvecs = {code: embed_texts(lines, embedder, "passage", f"tatoeba {code} (bare)", progress)
                         for code, lines in sides.items()}
                for src, dst in ((a, b), (b, a)):
                    best = np.argmax(vecs[src] @ pvecs[dst].T, axis=1)
                    out.setdefault(mode, {})[f"{src}->{dst}"] = float(np.mean(best == np.arange(len(best))))
                continue
            for src, dst in ((a, b), (b, a)):
                folder = work / f"{a}-{b}" / dst
                if not (folder / "index").exists():
                    corpus = folder / "corpus"
                    corpus.mkdir(parents=True, exist_ok=True)
                    for i, line in enumerate(sides[dst]):
                        (corpus / f"{i:05d}.txt").write_text(line or ".", encoding="utf-8")
                    build_eval_index(corpus, folder / "index", embedder, progress)
                with Searcher.open(folder / "index", embedder=embedder) as searcher:
                    correct = 0
                    for i, (text, qvec) in enumerate(zip(sides[src], vecs[src])):
                        hits = searcher.search_vector(qvec, 1, None, query=text or ".", **_SEARCH[mode])
                        correct += bool(hits) and hits[0].doc_id == f"{i:05d}.txt"
                out.setdefault(mode, {})[f"{src}->{dst}"] = correct / len(sides[src])
    return out


def _add_means(table: dict, langs: list[str]) -> None:
    pairs = [f"{a}->{b}" for a in langs for b in langs]
    for name, keep in (("mean", pairs), ("same-language", [p for p in pairs if p.split("->")[0] == p.split("->")[1]]),
                       ("cross-language", [p for p in pairs if p.split("->")[0] != p.split("->")[1]])):
        if keep:
            table[name] = {m: float(np.mean([table[p][m] for p in keep])) for m in ("r1", "r10", "mrr10")}


def _misdetected(searcher, langs: list[str]) -> int:
    """Passages whose detected language is not the language of their file: the language
    filter hides them, so they cost recall."""
    return sum(1 for doc_id, lang in searcher.passage_languages() if lang != doc_id.split("/")[0])


# --- reporting ------------------------------------------------------------------------------

def markdown(results: dict) -> str:
    lines = []
    langs = results.get("languages", [])
    systems = results.get("systems", {})
    if systems:
        lines += ["| system | mean R@1 | mean R@10 | mean MRR@10 | same-language R@1 | cross-language R@1 |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for name, table in systems.items():
            m, s, c = table["mean"], table.get("same-language", {}), table.get("cross-language", {})
            lines.append(f"| {name} | {m['r1']:.4f} | {m['r10']:.4f} | {m['mrr10']:.4f} | "
                         f"{s.get('r1', float('nan')):.4f} | {c.get('r1', float('nan')):.4f} |")
        for name, table in systems.items():
            lines += ["", f"**{name}**: R@1 / R@10 / MRR@10, query language (rows) → passage language (columns)", "",
                      "| query \\ passage | " + " | ".join(langs) + " |", "| --- |" + " --- |" * len(langs)]
            for a in langs:
                cells = [table[f"{a}->{b}"] for b in langs]
                lines.append(f"| {a} | " + " | ".join(f"{x['r1']:.3f} / {x['r10']:.3f} / {x['mrr10']:.3f}" for x in cells) + " |")
    from search.eval_mixed import LAREQA_PUBLISHED, pool_markdown

    if results.get("mixed"):
        lines += pool_markdown("Mixed pool, paragraphs", results["mixed"])
    if results.get("xquad_r"):
        lines += pool_markdown("XQuAD-R, sentences", results["xquad_r"])
        published = ", ".join(f"{k} {v:.2f}" for k, v in LAREQA_PUBLISHED.items())
        lines += ["", f"LAReQA's published XQuAD-R mAP (11 languages, mBERT baselines): {published}; "
                  f"candidates here per language: {results['xquad_r']['candidates']}"]
    tatoeba = results.get("tatoeba")
    if tatoeba:
        directions = sorted({d for table in tatoeba.values() for d in table})
        lines += ["", "**Tatoeba** bitext retrieval accuracy", "", "| system | " + " | ".join(directions) + " | mean |",
                  "| --- |" + " --- |" * (len(directions) + 1)]
        for name, table in tatoeba.items():
            values = [table[d] for d in directions]
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + f" | {np.mean(values):.3f} |")
    return "\n".join(lines)


def heatmap(results: dict, path: Path) -> None:
    """R@1 matrices of each system, side by side (filtered); below them, for the mixed pool, the
    share of each query language's top 10 in each language (a bright diagonal is language bias)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = results["languages"]
    panels = [(f"{name}: R@1 (mean {table['mean']['r1']:.3f})", "passage language",
               np.array([[table[f"{a}->{b}"]["r1"] for b in langs] for a in langs]), 1.0)
              for name, table in results.get("systems", {}).items()]
    for name, pool in results.get("mixed", {}).items():
        share = pool["top10_languages"]
        panels.append((f"{name}, mixed pool: top-10 share\n(mAP@20 {pool['mean']['map20']:.3f})", "result language",
                       np.array([[share[a][b] for b in langs] for a in langs]), 1.0))
    if not panels:
        return
    columns = max(len(results.get("systems", {})), len(results.get("mixed", {})), 1)
    rows = (1 if results.get("systems") else 0) + (1 if results.get("mixed") else 0)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns + 1, 3.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    filtered = len(results.get("systems", {}))
    for n, (title, xlabel, grid, vmax) in enumerate(panels):
        ax = axes[0, n] if n < filtered else axes[rows - 1, n - filtered]
        ax.axis("on")
        image = ax.imshow(grid, vmin=0, vmax=vmax, cmap="viridis")
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(langs)), langs)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("query language")
        ax.set_title(title, fontsize=9)
        for i in range(len(langs)):
            for j in range(len(langs)):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if grid[i, j] > 0.6 * vmax else "white")
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search.eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("xquad", nargs="*", type=Path, help="XQuAD/SQuAD-v1.1 JSON files, one per language (xquad.de.json)")
    parser.add_argument("--tatoeba", nargs="*", type=Path, default=[],
                        help="Tatoeba files tatoeba.xxx-eng.xxx (the .eng beside each is found)")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=["dense", "hybrid"],
                        help="what to measure; 'bare' is the model without the pipeline")
    parser.add_argument("--bare", action="store_true", help="add the bare model to --systems")
    parser.add_argument("-m", "--model", default=None, help=f"model (default: ${settings.ENV_MODEL} or {settings.DEFAULT_MODEL})")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="passage budget (default: the product's)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=["filtered", "mixed"],
                        help="XQuAD: filtered (R@1 per language pair), mixed (paragraph pool of all languages, "
                             "no filter: mAP@20, R-precision, own-language share), sentences (LAReQA's XQuAD-R)")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder keeping the model's vectors between runs (keyed by model, prompt kind and text)")
    parser.add_argument("--max-questions", type=int, default=None, help="first N questions per language (quick runs)")
    parser.add_argument("--out", type=Path, default=Path("eval-out"), help="folder for results.json and heatmap.png")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    systems = tuple(dict.fromkeys([*args.systems, *(["bare"] if args.bare else [])]))
    if not args.xquad and not args.tatoeba:
        parser.error("give XQuAD files, --tatoeba files, or both")

    from polyseek.embedder import load_embedder

    try:
        embedder = load_embedder(args.model)
        if args.cache:
            from search.vector_cache import CachedEmbedder

            embedder = CachedEmbedder(embedder, args.cache)
        results: dict = {"model": embedder.name, "systems": {}}
        if args.xquad:
            sets = [read_squad(p) for p in args.xquad]
            results.update(evaluate_xquad(sets, embedder, systems, chunk_tokens=args.chunk_tokens,
                                          max_questions=args.max_questions, progress=not args.quiet,
                                          tasks=tuple(args.tasks)))
            results["model"] = embedder.name
        if args.tatoeba:
            pairs = []
            for path in args.tatoeba:
                eng = path.with_suffix(".eng")
                if not path.is_file() or not eng.is_file():
                    raise PolyseekError(f"need {path} and {eng}, line-aligned")
                pairs.append((path, eng))
            results["tatoeba"] = evaluate_tatoeba(pairs, embedder, systems, progress=not args.quiet)
    except PolyseekError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.cache and "embedder" in locals() and hasattr(embedder, "save"):
            embedder.save()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    head = f"Model {results['model']}"
    if args.xquad:
        head += (f"; {results.get('paragraphs')} paragraphs per language, questions {results.get('questions')}; "
                 f"built {results.get('build')}; passages whose detected language differs from their file's: "
                 f"{results.get('misdetected_passages')}")
    print(head + "\n")
    print(markdown(results))
    drawn = bool(results.get("systems") or results.get("mixed"))
    if drawn:
        heatmap(results, args.out / "heatmap.png")
    print(f"\nWrote {args.out / 'results.json'}" + (f" and {args.out / 'heatmap.png'}" if drawn else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
