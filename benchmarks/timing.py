"""Timers shared by the benchmarks."""

from __future__ import annotations

import time


def timed(fn):
    """(fn's result, seconds it took)."""
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def latencies_ms(fn, items, warm: int = 1) -> list[float]:
    """Milliseconds of ``fn(item)`` for each item, after ``warm`` untimed calls on the first ones."""
    for item in items[:warm]:
        fn(item)
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - started) * 1000)
    return out
