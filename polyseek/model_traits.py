"""What every sentence-transformers backend (polyseek.embedder, polyseek.onnx_backend,
polyseek.bundled_model) shares about a model: its query/passage prompts, its fingerprint, and
quiet loading. Below all three, so none of them imports another for these."""

from __future__ import annotations

import hashlib

E5_PROMPTS = {"query": "query: ", "passage": "passage: "}


def quiet_progress_bars() -> None:
    """transformers' "Loading weights" / "Writing model shards" bars are noise in a CLI or a page."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def prompts_for(name: str, model_prompts: dict[str, str] | None) -> dict[str, str]:
    """The model's own query/passage prompts; E5's when it has none and its name says E5."""
    p = {k: v for k, v in (model_prompts or {}).items() if v}
    if "query" in p and ("passage" in p or "document" in p):
        return {"query": p["query"], "passage": p.get("passage") or p["document"]}
    if "e5" in name.lower():
        return dict(E5_PROMPTS)
    return {"query": "", "passage": ""}


def fingerprint(model) -> str:
    """A short hash of the weights (shape and a sample of values of every tensor) and the
    tokenizer's vocabulary size: cheap to compute, and different for any other model."""
    h = hashlib.sha256()
    for key, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        h.update(f"{key}:{tuple(tensor.shape)}".encode())
        h.update(flat[:256].float().cpu().numpy().tobytes())
        h.update(flat[-256:].float().cpu().numpy().tobytes())
    h.update(str(len(model.tokenizer)).encode())
    return h.hexdigest()[:16]
