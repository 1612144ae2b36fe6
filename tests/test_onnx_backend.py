"""The ONNX Runtime backend: the default on a CPU, the torch model's vectors, and either
backend searches an index the other built."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import FIXTURES
from polyseek.embedder import gpu_present, load_embedder
from polyseek.errors import ModelLoadError


def xquad_texts(n_per_lang: int = 8) -> list[str]:
    data = json.loads((FIXTURES / "xquad_subset.json").read_text(encoding="utf-8"))
    out = []
    for paras in data.values():
        for para in paras[:n_per_lang]:
            out += [para["context"], *para["questions"][:1]]
    return out


def test_the_backend_setting_is_checked(monkeypatch):
    monkeypatch.setenv("POLYSEEK_BACKEND", "tensorrt")
    with pytest.raises(ModelLoadError, match="POLYSEEK_BACKEND to one of auto, torch, onnx"):
        load_embedder()


def test_onnx_exports_local_folders_only():
    with pytest.raises(ModelLoadError, match="local model folders"):
        load_embedder("some-org/some-hub-model", backend="onnx")


def test_folder_key_follows_the_model_files(tmp_path):
    from polyseek.onnx_backend import _folder_key

    (tmp_path / "config.json").write_text("{}")
    before = _folder_key(tmp_path)
    assert _folder_key(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    assert _folder_key(tmp_path) != before  # a changed model is exported again, never served stale


@pytest.mark.model
def test_on_a_cpu_the_default_is_onnx_with_the_torch_models_identity(real_embedder):
    from polyseek.onnx_backend import OnnxEmbedder

    if gpu_present():
        pytest.skip("a GPU is present: the default is torch")
    torch_model = load_embedder(backend="torch")
    assert isinstance(real_embedder, OnnxEmbedder)
    assert (real_embedder.name, real_embedder.fingerprint, real_embedder.dim, real_embedder.max_tokens,
            real_embedder.prompts) == (torch_model.name, torch_model.fingerprint, torch_model.dim,
                                       torch_model.max_tokens, torch_model.prompts)
    assert "torch" not in type(real_embedder).__module__


@pytest.mark.model
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_onnx_vectors_are_the_torch_vectors(kind):
    onnx, torch_model = load_embedder(backend="onnx"), load_embedder(backend="torch")
    texts = xquad_texts()
    cos = (onnx.embed(texts, kind) * torch_model.embed(texts, kind)).sum(axis=1)
    print(f"\n{len(texts)} XQuAD texts ({kind}): cosine ONNX vs torch min {cos.min():.6f}")
    assert cos.min() > 0.99999
    # Batching (padding) does not change a vector either.
    np.testing.assert_allclose(onnx.embed(texts[:6], kind, batch_size=6), onnx.embed(texts[:6], kind, batch_size=1),
                               atol=2e-5)
    assert onnx.token_spans(texts[:5]) == torch_model.token_spans(texts[:5])


@pytest.mark.model
def test_thread_settings_keep_the_vectors():
    onnx = load_embedder(backend="onnx")
    before = onnx.embed(["missile defense guarantees"], "query")
    onnx.set_threads(1)
    try:
        np.testing.assert_allclose(onnx.embed(["missile defense guarantees"], "query"), before, atol=1e-5)
    finally:
        onnx.set_threads(2)


@pytest.mark.model
def test_an_index_built_with_torch_is_searched_with_onnx(tmp_path):
    from conftest import DATA

    from index import build_index
    from search import Searcher

    torch_model, onnx = load_embedder(backend="torch"), load_embedder(backend="onnx")
    build_index(DATA, tmp_path / "index", embedder=torch_model)
    query = "missile defense guarantees"
    with Searcher.open(tmp_path / "index", embedder=onnx) as s_onnx, \
            Searcher.open(tmp_path / "index", embedder=torch_model) as s_torch:
        by_onnx, by_torch = s_onnx.search(query, 10), s_torch.search(query, 10)
    assert [h.passage_id for h in by_onnx] == [h.passage_id for h in by_torch]
    assert max(abs(a.score - b.score) for a, b in zip(by_onnx, by_torch)) < 1e-4
