"""Language-agnostic retrieval, measured as LAReQA does (Roy et al. 2020, "LAReQA:
Language-agnostic answer retrieval from a multilingual pool").

Two tasks over parallel XQuAD sets, every question asked with *no language filter*:

* **mixed pool** (paragraphs): every paragraph of every language in one index (the one the
  filtered evaluation built); a question's relevant documents are its paragraph's translations in
  every language; one passage per document.
* **XQuAD-R** (sentences), LAReQA's own task: the candidates are every sentence of every
  paragraph, split as the product splits sentences (sentencex, ``index.chunking.split_sentences``);
  the relevant ones are the sentence holding the answer, in each language. LAReQA encodes each
  candidate sentence together with its paragraph as context; here a sentence is indexed alone,
  as the product would index it.

Per query language: mAP@20 (average precision of the top 20, over the number of relevant items),
R-precision (share of the top R relevant, R = number of languages) and ``own@10``, the share of
the top 10 results in the query's own language (1 / number of languages means no bias).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from search.metrics import average_precision_at, r_precision, share_in

#: Results scored per query (LAReQA's mAP@20 as XTREME-R reports it).
DEPTH = 20
#: Top results whose language is counted for ``own@10``.
OWN_DEPTH = 10


def score_query(ranked: Sequence[str], ranked_langs: Sequence[str], relevant: set[str],
                lang: str) -> tuple[float, float, float, tuple[str, ...]]:
    """(AP@20, R-precision, own-language share of the top 10, languages of the top 10) of one query."""
    return (average_precision_at(ranked, relevant, DEPTH), r_precision(ranked, relevant),
            share_in(ranked_langs, lang, OWN_DEPTH), tuple(ranked_langs[:OWN_DEPTH]))


def summarize_pool(rows: list[tuple], langs: list[str]) -> dict:
    """Per query language and overall means of (lang, AP@20, R-precision, own@10, top langs)
    rows; ``top10_languages[a][b]``: share of query language a's top 10 in language b."""
    def mean(sel):
        values = np.array([r[1:4] for r in sel], dtype=float).reshape(-1, 3)
        m = values.mean(axis=0) if len(values) else np.zeros(3)
        return {"map20": float(m[0]), "r_precision": float(m[1]), "own10": float(m[2]), "n": len(sel)}

    by = {lang: mean([r for r in rows if r[0] == lang]) for lang in langs}
    out = {"by_language": by, "mean": mean(rows)}
    out["mean"]["unbiased_own10"] = 1 / len(langs) if langs else 0.0
    shares = {}
    for a in langs:
        tops = [r[4] for r in rows if r[0] == a]
        total = sum(len(t) for t in tops) or 1
        shares[a] = {b: sum(t.count(b) for t in tops) / total for b in langs}
    out["top10_languages"] = shares
    return out


def mixed_pool(searcher, sets, queries: dict, qvecs: dict, search_options: dict) -> dict:
    """The paragraph mixed pool through the product: ``searcher`` holds every paragraph of every
    language (documents ``LANG/NNNN.txt``); ``queries[lang]`` are (gold paragraph, question)."""
    langs = [s.lang for s in sets]
    rows = []
    for a in langs:
        for (gold, text), qvec in zip(queries[a], qvecs[a]):
            hits = searcher.search_vector(qvec, DEPTH, None, per_document=True, query=text, **search_options)
            ranked = [h.doc_id for h in hits]
            rows.append((a, *score_query(ranked, [d.split("/")[0] for d in ranked],
                                         {f"{b}/{gold:04d}.txt" for b in langs}, a)))
    return summarize_pool(rows, langs)


def mixed_pool_bare(sets, queries: dict, qvecs: dict, pvecs: dict) -> dict:
    """The same pool for the bare model: whole paragraphs, exact inner product, no transform."""
    langs = [s.lang for s in sets]
    pool = np.concatenate([pvecs[lang] for lang in langs])
    keys = [f"{lang}/{i:04d}.txt" for lang in langs for i in range(len(pvecs[lang]))]
    return _exact_pool(langs, queries, qvecs, pool, keys, lambda a, gold, n: {f"{b}/{gold:04d}.txt" for b in langs})


def _exact_pool(langs, queries, qvecs, pool: np.ndarray, keys: list[str], relevant) -> dict:
    rows = []
    for a in langs:
        scores = qvecs[a] @ pool.T
        top = np.argpartition(-scores, min(DEPTH, pool.shape[0] - 1), axis=1)[:, :DEPTH]
        for n, ((gold, _), row, cand) in enumerate(zip(queries[a], scores, top)):
            cand = cand[np.argsort(-row[cand], kind="stable")]
            ranked = [keys[i] for i in cand]
            rows.append((a, *score_query(ranked, [k.split("/")[0] for k in ranked], relevant(a, gold, n), a)))
    return summarize_pool(rows, langs)


# --- XQuAD-R: sentences ----------------------------------------------------------------------

def sentence_candidates(sets) -> tuple[dict[str, list[tuple[str, str]]], dict[tuple[str, int], str]]:
    """Each language's candidate sentences as (key, text), keys ``LANG/PPPP-SS``; and for every
    (language, question number) the key of the sentence holding its answer. A sentence whose text
    already appeared earlier in its language is one candidate (the product indexes a text once)."""
    from index.chunking import split_sentences

    candidates: dict[str, list[tuple[str, str]]] = {}
    answer_key: dict[tuple[str, int], str] = {}
    for s in sets:
        first: dict[str, str] = {}
        spans_of = []
        for p, paragraph in enumerate(s.paragraphs):
            spans = split_sentences(paragraph, s.lang)
            spans_of.append(spans)
            for j, (a, b) in enumerate(spans):
                text = paragraph[a:b]
                key = f"{s.lang}/{p:04d}-{j:02d}"
                if text not in first:
                    first[text] = key
                    candidates.setdefault(s.lang, []).append((key, text))
        for n, ((gold, _), start) in enumerate(zip(s.questions, s.answer_starts or [-1] * len(s.questions))):
            if start < 0:
                continue
            spans = spans_of[gold]
            # the sentence holding the answer's first character (or the next one, if it starts between sentences)
            j = next((j for j, (a, b) in enumerate(spans) if start < b), len(spans) - 1)
            if spans:
                a, b = spans[j]
                answer_key[(s.lang, n)] = first[s.paragraphs[gold][a:b]]
    return candidates, answer_key


def _relevant_sentences(langs, answer_key):
    def relevant(a, gold, n):
        return {answer_key[(b, n)] for b in langs if (b, n) in answer_key}
    return relevant


def xquad_r(sets, embedder, systems, work: Path, queries: dict, qvecs: dict, search_options: dict,
            progress: bool = True) -> dict:
    """LAReQA's XQuAD-R for each system: ``{system: summary}`` (see :func:`summarize_pool`)."""
    from search.eval_index import build_eval_index, embed_texts
    from search.searcher import Searcher

    langs = [s.lang for s in sets]
    counts = {len(s.questions) for s in sets}
    if len(counts) != 1:
        raise ValueError(f"XQuAD-R needs parallel questions; the files have {sorted(counts)}")
    candidates, answer_key = sentence_candidates(sets)
    relevant = _relevant_sentences(langs, answer_key)
    # questions whose answer is known in at least one language
    asked = {a: [(g, t) for n, (g, t) in enumerate(queries[a]) if relevant(a, g, n)] for a in langs}
    results: dict = {"candidates": {lang: len(c) for lang, c in candidates.items()}, "systems": {}}
    pipeline = [m for m in systems if m in search_options]
    if pipeline:
        corpus = work / "sentences"
        corpus.mkdir(parents=True, exist_ok=True)
        for lang, items in candidates.items():  # the language is declared, as an export can
            lines = [json.dumps({"id": key.split("/")[1], "text": text, "lang": lang}, ensure_ascii=False)
                     for key, text in items]
            (corpus / f"{lang}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        build_eval_index(corpus, work / "sentence-index", embedder, progress)
        with Searcher.open(work / "sentence-index", embedder=embedder) as searcher:
            for mode in pipeline:
                rows = []
                for a in langs:
                    for n, ((gold, text), qvec) in enumerate(zip(queries[a], qvecs[a])):
                        rel = relevant(a, gold, n)
                        if not rel:
                            continue
                        hits = searcher.search_vector(qvec, DEPTH, None, query=text, **search_options[mode])
                        ranked = [_sentence_key(h.doc_id) for h in hits]
                        rows.append((a, *score_query(ranked, [k.split("/")[0] for k in ranked], rel, a)))
                results["systems"][mode] = summarize_pool(rows, langs)
    if "bare" in systems:
        keys = [key for lang in langs for key, _ in candidates.get(lang, [])]
        pool = np.concatenate([embed_texts([t for _, t in candidates.get(lang, [])], embedder, "passage",
                                           f"sentences {lang}", progress) for lang in langs])
        wanted = {a: [i for i, (g, _) in enumerate(queries[a]) if relevant(a, g, i)] for a in langs}
        results["systems"]["bare"] = _exact_pool(
            langs, {a: [queries[a][i] for i in wanted[a]] for a in langs},
            {a: qvecs[a][wanted[a]] for a in langs}, pool, keys,
            lambda a, gold, n: relevant(a, gold, wanted[a][n]))
    results["questions"] = {a: len(q) for a, q in asked.items()}
    return results


def _sentence_key(doc_id: str) -> str:
    """``de.jsonl#0003-01`` → ``de/0003-01``."""
    name, _, rid = doc_id.partition("#")
    return f"{name.split('.')[0]}/{rid}"


#: LAReQA's published XQuAD-R mAP (11 languages; mBERT dual encoders fine-tuned on SQuAD and its
#: translations; github.com/google-research-datasets/lareqa, README table; paper section 5).
LAREQA_PUBLISHED = {"En-En": 0.29, "X-X": 0.23, "X-X-mono": 0.52, "X-Y": 0.66}


def pool_markdown(title: str, table: dict) -> list[str]:
    """Markdown lines: one row per system, mean and per query language mAP@20 / own@10."""
    systems = table.get("systems", table)
    if not systems:
        return []
    langs = list(next(iter(systems.values()))["by_language"])
    lines = ["", f"**{title}**: mAP@20 / R-precision / own-language share of the top 10, per query language "
             f"(no bias: own@10 = {1 / len(langs):.3f})", "",
             "| system | mean mAP@20 | mean R-prec | mean own@10 | " + " | ".join(langs) + " |",
             "| --- | --- | --- | --- |" + " --- |" * len(langs)]
    for name, s in systems.items():
        m = s["mean"]
        cells = [f"{s['by_language'][lang]['map20']:.3f} / {s['by_language'][lang]['own10']:.2f}" for lang in langs]
        lines.append(f"| {name} | {m['map20']:.4f} | {m['r_precision']:.4f} | {m['own10']:.3f} | " + " | ".join(cells) + " |")
    return lines

