"""Ways to make a mixed-language ranking language-agnostic, compared on XQuAD's mixed pool.

    .venv/bin/python benchmarks/language_agnostic.py [--xquad ../shared/eval/xquad] [--cache /tmp/polyseek-vectors]

Every paragraph of 9 XQuAD languages is chunked and embedded by the product (``build_index``);
every question is scored against every passage in numpy, each method transforming the scores,
and the best passage of each document counts. Reported per method, on the languages used to
choose hyper-parameters (de es ru zh), on the held-out ones (tr el hi vi th) and on all 9 (each
pool holds only its own languages): mAP@20 and own@10 of the mixed pool (as ``search.eval``),
and the filtered R@1 (target language fixed) with its change on the worst language pair
against mean-centring. ``--cache`` keeps the model's vectors between runs.

Methods: plain cosine of the product's passages; mean-centring per language (the product before issue 18); a z-score
of each language's whole score distribution (closed form from its covariance); LIR (Yang et al.
2021: remove each language's top-k principal directions, query by its language's); LSAR (Xie et
al. 2022: remove the low-rank subspace spanned by the language means, for queries and
passages); per-language whitening; and the adopted margin over the query's k nearest passages
in each language (``index.balance.calibrate``). "rank interleave" is a reference: each
language's first passage, then each second… (equal shares, scores ignored).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TUNE = ["de", "es", "ru", "zh"]
#: Languages (as detected) with fewer passages get no directions, whitening or z-score of their
#: own and no say in LSAR's subspace (LIR's top direction of one passage is that passage; a
#: one-passage language has no spread).
MIN_PASSAGES = 50
HELD_OUT = ["tr", "el", "hi", "vi", "th"]


def load(xquad: Path, cache: Path):
    from index.manifest import EMBEDDINGS, STORE
    from index.store import PassageStore
    from index.versions import current_version
    from polyseek.embedder import load_embedder
    from search.eval import read_squad
    from search.eval_index import build_eval_index
    from search.vector_cache import CachedEmbedder

    embedder = CachedEmbedder(load_embedder(), cache)
    sets = [read_squad(xquad / f"xquad.{lang}.json") for lang in TUNE + HELD_OUT]
    work = Path(tempfile.mkdtemp(prefix="polyseek-agnostic-"))
    for s in sets:
        (work / "corpus" / s.lang).mkdir(parents=True)
        for i, text in enumerate(s.paragraphs):
            (work / "corpus" / s.lang / f"{i:04d}.txt").write_text(text, encoding="utf-8")
    build_eval_index(work / "corpus", work / "index", embedder, progress=True)
    folder = current_version(work / "index")
    store = PassageStore(folder / STORE)
    rows = store.passage_languages()  # (doc_id, detected language)
    store.close()
    data = {
        "P": np.load(folder / EMBEDDINGS), "plang": np.array([lang for _, lang in rows]),
        "dlang": np.array([d.split("/")[0] for d, _ in rows]), "dpar": np.array([int(d.split("/")[1][:4]) for d, _ in rows]),
        "Q": np.concatenate([embedder.embed([q for _, q in s.questions], "query") for s in sets]),
        "qlang": np.concatenate([[s.lang] * len(s.questions) for s in sets]),
        "qgold": np.concatenate([[g for g, _ in s.questions] for s in sets]),
        "paragraphs": len(sets[0].paragraphs),
    }
    embedder.save()
    return data


def subset(d: dict, langs: list[str]) -> dict:
    pm, qm = np.isin(d["dlang"], langs), np.isin(d["qlang"], langs)
    out = {k: d[k][pm] for k in ("P", "plang", "dlang", "dpar")}
    out.update({k: d[k][qm] for k in ("Q", "qlang", "qgold")})
    out["langs"], out["paragraphs"] = langs, d["paragraphs"]
    return out


def evaluate(S: np.ndarray, d: dict) -> dict:
    """mAP@20 and own@10 of the mixed pool, and the filtered R@1 matrix (the filter keeps the
    passages *detected* in the target language, as the product's filter does), from passage
    scores; a document scores as its best passage."""
    langs, npar = d["langs"], d["paragraphs"]
    L = len(langs)
    doc = np.array([langs.index(lang) for lang in d["dlang"]]) * npar + d["dpar"]

    def best_per_document(cols):
        D = np.full((len(S), L * npar), -np.inf, np.float32)
        for pid in cols:  # few passages per document
            D[:, doc[pid]] = np.maximum(D[:, doc[pid]], S[:, pid])
        return D

    D = best_per_document(range(S.shape[1]))
    top = np.argsort(-D, axis=1, kind="stable")[:, :20]
    rel = (top % npar) == d["qgold"][:, None]
    ap = (np.cumsum(rel, 1) / np.arange(1, 21) * rel).sum(1) / min(L, 20)
    qli = np.array([langs.index(lang) for lang in d["qlang"]])
    own = ((top[:, :10] // npar) == qli[:, None]).mean(1)
    r1 = np.zeros((L, L))
    for b, lang in enumerate(langs):
        Db = best_per_document(np.flatnonzero(d["plang"] == lang))[:, b * npar:(b + 1) * npar]
        hit = np.argmax(Db, 1) == d["qgold"]
        r1[:, b] = [hit[qli == a].mean() for a in range(L)]
    return {"map20": float(ap.mean()), "own10": float(own.mean()), "r1": r1}


# --- methods: (data) -> scores, queries x passages --------------------------------------------

def _means(P, plang):
    from index.balance import language_means

    m = language_means(P, list(plang))
    return np.stack([m[lang] for lang in plang])


def centred(d):
    return d["Q"] @ (d["P"] - _means(d["P"], d["plang"])).T


def z_whole(d):
    C = d["P"] - _means(d["P"], d["plang"])
    S = d["Q"] @ C.T
    for lang in np.unique(d["plang"]):
        sel = d["plang"] == lang
        if sel.sum() < MIN_PASSAGES:
            continue
        cov = C[sel].T @ C[sel] / sel.sum()
        S[:, sel] /= np.sqrt(np.einsum("ij,jk,ik->i", d["Q"], cov, d["Q"]))[:, None]
    return S


def _unit(X):
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def lir(k):
    def method(d):
        P, Q = d["P"].copy(), d["Q"].copy()
        for lang in np.unique(d["plang"]):
            if (d["plang"] == lang).sum() < MIN_PASSAGES:  # a few misdetected passages: no directions of their own
                continue
            v = np.linalg.svd(d["P"][d["plang"] == lang], full_matrices=False)[2][:k]
            for X, sel in ((P, d["plang"] == lang), (Q, d["qlang"] == lang)):
                X[sel] -= (X[sel] @ v.T) @ v
        return _unit(Q) @ _unit(P).T
    return method


def lsar(r, centre):
    def method(d):
        M = np.stack([d["P"][d["plang"] == lang].mean(0) for lang in np.unique(d["plang"])
                      if (d["plang"] == lang).sum() >= MIN_PASSAGES])
        U = np.linalg.svd(M - M.mean(0), full_matrices=False)[2][:r]
        P, Q = _unit(d["P"] - (d["P"] @ U.T) @ U), _unit(d["Q"] - (d["Q"] @ U.T) @ U)
        return Q @ (P - _means(P, d["plang"]) if centre else P).T
    return method


def whiten(eps):
    def method(d):
        C = d["P"] - _means(d["P"], d["plang"])
        out = np.empty_like(C)
        out[:] = C
        for lang in np.unique(d["plang"]):
            sel = d["plang"] == lang
            if sel.sum() < MIN_PASSAGES:
                continue
            cov = C[sel].T @ C[sel] / sel.sum()
            t = np.trace(cov) / len(cov)
            w, V = np.linalg.eigh(cov + eps * t * np.eye(len(cov)))
            out[sel] = C[sel] @ (V @ np.diag(w ** -0.5) @ V.T) * np.sqrt(t)
        return d["Q"] @ out.T
    return method


def margin(k):
    def method(d):
        from index.balance import calibrate

        S = centred(d)
        langs = np.unique(d["plang"])
        heads = {lang: -np.sort(-S[:, d["plang"] == lang], 1)[:, :k] for lang in langs}
        out = np.empty_like(S)
        for i in range(len(S)):
            scales = calibrate({lang: heads[lang][i] for lang in langs}, k)
            for lang in langs:
                sel = d["plang"] == lang
                out[i, sel] = scales[lang].margin(S[i, sel])
        return out
    return method


def interleave(d):
    S = centred(d)
    out = np.empty_like(S)
    for lang in np.unique(d["plang"]):
        sel = d["plang"] == lang
        out[:, sel] = -np.argsort(np.argsort(-S[:, sel], 1), 1) + 1e-3 * S[:, sel]
    return out


METHODS = {
    "plain cosine (no balance)": lambda d: d["Q"] @ d["P"].T,
    "mean-centring (before)": centred,
    "z-score, whole language": z_whole,
    "LIR k=1": lir(1), "LIR k=2": lir(2), "LIR k=4": lir(4),
    "LSAR r=2": lsar(2, False), "LSAR r=4": lsar(4, False),
    "LSAR r=4 + mean-centring": lsar(4, True), "LSAR r=8 + mean-centring": lsar(8, True),
    "whitening per language (eps 1)": whiten(1.0),
    **{f"margin, k={k}": margin(k) for k in (5, 10, 20, 50, 100)},
    "reference: rank interleave": interleave,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--xquad", type=Path, default=ROOT.parent / "shared/eval/xquad")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "polyseek-vectors")
    args = parser.parse_args()
    data = load(args.xquad, args.cache)
    splits = {"tune: de es ru zh": TUNE, "held out: tr el hi vi th": HELD_OUT, "all 9": TUNE + HELD_OUT}
    print("| method | " + " | ".join(f"{name}: mAP@20 / own@10 / filtered R@1 (worst pair Δ)" for name in splits) + " |")
    print("| --- |" + " --- |" * len(splits))
    parts = {name: subset(data, langs) for name, langs in splits.items()}
    before = {name: evaluate(centred(d), d) for name, d in parts.items()}
    for method, fn in METHODS.items():
        cells = []
        for name, d in parts.items():
            r = evaluate(fn(d), d)
            worst = float((r["r1"] - before[name]["r1"]).min())
            cells.append(f"{r['map20']:.4f} / {r['own10']:.3f} / {r['r1'].mean():.4f} ({worst:+.3f})")
        print(f"| {method} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
