"""A build's progress as one bar: the share of the work done, and a line saying where it is.

``build_index`` reports ``(stage, done, total)`` per stage; a page shows one bar for the whole
build. Embedding is nearly all of the time, so it gets most of the bar."""

from __future__ import annotations

#: (stage, share of the bar where it starts, share where it ends)
STAGES = {"reading": (0.0, 0.05), "chunking": (0.05, 0.15), "embedding": (0.15, 0.95), "writing": (0.95, 1.0)}
_LABELS = {"reading": "Reading files", "chunking": "Chunking documents", "embedding": "Embedding passages",
           "writing": "Writing the new index"}


def describe(stage: str, done: int, total: int) -> tuple[float, str]:
    """``(fraction 0–1, message)``: e.g. ``(0.55, "Embedding passages 10/21")``."""
    lo, hi = STAGES.get(stage, (0.0, 1.0))
    label = _LABELS.get(stage, stage.capitalize())
    if stage == "writing":
        return (hi if done else lo), label + (": done" if done else "…")
    if total:
        done = max(0, min(done, total))
        return lo + (hi - lo) * done / total, f"{label} {done}/{total}"
    return lo, f"{label}: {done}" if done else f"{label}…"
