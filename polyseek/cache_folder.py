"""Folders made once per machine in the cache (the converted model, its ONNX export): made in a
temporary folder beside the target and renamed into place under a file lock, with a marker file
written last, so a crash or a second process never leaves a half-made folder in use."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)


def make_once(target: Path, marker: str, make: Callable[[Path], None], what: str) -> Path:
    """``target``, made by ``make(tmp_folder)`` unless it already holds ``marker`` (which
    ``make`` writes last). A folder without its marker is not trusted: it is made again."""
    from filelock import FileLock

    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / marker).is_file():  # another process made it while we waited
            return target
        if target.exists():
            shutil.rmtree(target)
        started = time.perf_counter()
        log.info("%s into %s (once)", what, target)
        tmp = Path(tempfile.mkdtemp(prefix=".make-", dir=target.parent))
        try:
            make(tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("%s: done in %.1f s", what, time.perf_counter() - started)
    return target
