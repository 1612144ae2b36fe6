"""ONNX Runtime: the same sentence-transformers model, faster on a CPU.

A local sentence-transformers folder (the bundled model's included) is exported once into the
cache: its transformer is traced with eager attention by ``torch.onnx.export`` (the TorchScript
exporter: no optimum, no onnxscript), fused by ONNX Runtime's own transformer optimizer
(attention, LayerNorm, GELU), and checked against the torch model on texts in several scripts
before it is trusted. Pooling (mean or CLS) and normalization run in numpy. The vectors are the
torch model's (cosine ≥ 0.999 is required at export; 1.0000 on XQuAD), so the embedder keeps
the torch model's fingerprint: an index built by either backend is searched by the other.

Loading the exported model needs neither torch nor sentence-transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from polyseek import settings
from polyseek.cache_folder import make_once
from polyseek.errors import ModelLoadError

log = logging.getLogger(__name__)

#: Bump when the export's output changes: a new version exports into a new folder.
EXPORT_VERSION = 1
MODEL_FILE = "model.onnx"
META_FILE = "polyseek_onnx.json"  # written last: a folder with it is a complete export
#: Texts the export is checked on (several scripts, short and long).
CHECK_TEXTS = [
    "NATO says the missile shield does not threaten Russia.",
    "Rusia cere garanţii de securitate din partea NATO privind scutul antirachetă de la Deveselu.",
    "قال المتحدث باسم الكرملين إن روسيا والولايات المتحدة اتفقتا على ضرورة تمديد معاهدة ستارت.",
    "北约秘书长表示，欧洲导弹防御系统不会威胁俄罗斯。" * 3,
    "Die Verhandlungen in Genf wurden fortgesetzt. " * 40,
]
#: A broken export gives ~0.97 or less; a correct one 1.0000 on natural text and 0.99988 on the
#: 400-token repetitive German line above (rounding in the fused attention over long inputs).
MIN_COSINE = 0.999


def onnx_model_dir(source: Path, cache: str | os.PathLike | None = None) -> Path:
    """The exported folder for the sentence-transformers folder ``source``, exporting it first
    when the cache has none (once per model and machine; under a lock, written atomically)."""
    source = Path(source).resolve()
    target = settings.cache_dir(cache) / "onnx" / f"{source.name[:60]}-{_folder_key(source)}"
    return make_once(target, META_FILE, lambda tmp: export(source, tmp), f"exporting {source} to ONNX")


def export(source: Path, out_dir: Path) -> None:
    """Write ``model.onnx``, the tokenizer and ``polyseek_onnx.json`` for ``source`` into ``out_dir``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    from polyseek.model_traits import fingerprint, quiet_progress_bars

    quiet_progress_bars()
    model = SentenceTransformer(str(source), device="cpu")
    modules = list(model)
    if not (len(modules) >= 2 and isinstance(modules[0], Transformer) and isinstance(modules[1], Pooling)
            and all(isinstance(m, Normalize) for m in modules[2:])):
        raise ModelLoadError(f"{source}: the ONNX backend handles Transformer + Pooling (+ Normalize) models, "
                             f"not {[type(m).__name__ for m in modules]}")
    pooling = modules[1].pooling_mode
    if pooling not in ("mean", "cls"):
        raise ModelLoadError(f"{source}: the ONNX backend handles mean or CLS pooling, not {pooling!r}")
    hf = modules[0].auto_model.eval()
    hf.set_attn_implementation("eager")  # the optimizer fuses eager attention into one operator

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    tokenizer = model.tokenizer
    sample = tokenizer(CHECK_TEXTS[:2], padding=True, return_tensors="pt")
    raw = out_dir / "raw.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python booleans in attention masks
        torch.onnx.export(LastHiddenState(hf), (sample["input_ids"], sample["attention_mask"]), str(raw),
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={name: {0: "batch", 1: "tokens"} for name in
                                        ("input_ids", "attention_mask", "last_hidden_state")},
                          opset_version=17, dynamo=False)
    _optimize(raw, out_dir / MODEL_FILE, hf.config)
    raw.unlink()
    tokenizer.save_pretrained(str(out_dir))
    meta = {
        "source": str(source), "export_version": EXPORT_VERSION, "pooling": pooling,
        "fingerprint": fingerprint(model), "dim": int(model.get_embedding_dimension()),
        "max_tokens": int(model.max_seq_length or 512), "prompts": dict(model.prompts or {}),
    }
    # Trust it only if it gives the torch model's vectors.
    embedder = OnnxEmbedder("check", out_dir, meta=meta)
    mine = embedder.embed(CHECK_TEXTS, "passage")
    theirs = model.encode(CHECK_TEXTS, prompt=embedder.prompts.get("passage", ""), normalize_embeddings=True,
                          convert_to_numpy=True)
    cosine = float((mine * theirs).sum(axis=1).min())
    if cosine < MIN_COSINE:
        raise ModelLoadError(f"{source}: the ONNX export gives different vectors (cosine {cosine:.5f}); use the torch backend")
    meta["check_min_cosine"] = round(cosine, 6)
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _optimize(raw: Path, out: Path, config) -> None:
    """ONNX Runtime's transformer optimizer (fused attention, LayerNorm, GELU) where it knows the
    architecture; the plain export otherwise."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        optimized = optimize_model(str(raw), model_type="bert", num_heads=int(config.num_attention_heads),
                                   hidden_size=int(config.hidden_size))
        optimized.save_model_to_file(str(out))
    except Exception as exc:  # noqa: BLE001 - any failure leaves the plain export, which is correct
        log.warning("ONNX optimizer failed (%s); using the plain export", exc)
        shutil.copyfile(raw, out)


def _folder_key(source: Path) -> str:
    """Changes when any file of the model folder changes (name, size, modification time)."""
    h = hashlib.sha256(f"{source}|{EXPORT_VERSION}".encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(source)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cpu_threads() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class OnnxEmbedder:
    """A sentence-transformers model run by ONNX Runtime on the CPU (see the module's doc)."""

    #: Texts per run: on a CPU, single texts are fastest (no padding, attention stays in cache;
    #: benchmarks/speed.py measures the batch sizes: 20.0 passages/s at 1, 9.6 at 32).
    preferred_batch_size = 1

    def __init__(self, name: str, folder: Path, threads: int | None = None, meta: dict | None = None):
        from transformers import AutoTokenizer

        from polyseek.model_traits import quiet_progress_bars

        quiet_progress_bars()
        meta = meta or json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        self.name = name
        self.folder = folder
        self.fingerprint = meta["fingerprint"]
        self.dim = int(meta["dim"])
        self.max_tokens = int(meta["max_tokens"])
        self._pooling = meta["pooling"]
        from polyseek.model_traits import prompts_for

        self.prompts = prompts_for(name, meta.get("prompts"))
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self._sessions: dict[int, object] = {}
        self.threads = threads or cpu_threads()
        self._session()

    def set_threads(self, threads: int) -> None:
        """Threads for the runs that follow (a session per thread count, made when first used)."""
        self.threads = max(1, int(threads))

    def _session(self):
        threads = self.threads
        if threads not in self._sessions:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Idle worker threads must not spin: FAISS's OpenMP threads run right after a query's
            # encoding, and the two spinning pools fought over the cores (search 2x slower).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._sessions[threads] = ort.InferenceSession(str(self.folder / MODEL_FILE), options,
                                                           providers=["CPUExecutionProvider"])
        return self._sessions[threads]

    def embed(self, texts: Sequence[str], kind, batch_size: int | None = None) -> np.ndarray:
        texts = [self.prompts.get(kind, "") + t.strip() for t in texts]
        out = np.zeros((len(texts), self.dim), np.float32)
        if not texts:
            return out
        batch_size = batch_size or self.preferred_batch_size
        session = self._session()
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths together: less padding
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                  max_length=self.max_tokens, return_tensors="np")
            mask = enc["attention_mask"].astype(np.int64)
            hidden = session.run(None, {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": mask})[0]
            if self._pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = mask[..., None].astype(np.float32)
                pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True,
                              truncation=False, verbose=False)
        return [[(int(a), int(b)) for a, b in spans] for spans in enc["offset_mapping"]]
