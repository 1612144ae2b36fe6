"""What one search costs beyond the model, on the seed index (warm, 200 repeats, medians):
dense and hybrid ranking from a ready query vector, "also reported in" per hit, and the
checksum pass that opening an index makes (bytes per second).

    .venv/bin/python benchmarks/query_costs.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from index import build_index  # noqa: E402
from index.manifest import file_digest  # noqa: E402
from search import Searcher  # noqa: E402

QUERY = "missile defense guarantees"
REPEATS = 200


def median_ms(fn) -> float:
    fn()  # warm: model files, language identifier, BM25 arrays
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="polyseek-costs-"))
    build_index(ROOT / "data", work / "index")
    with Searcher.open(work / "index") as s:
        qvec = s.encode_query(QUERY)
        hits = s.search(QUERY, 10)
        print(f"seed index, {s.manifest.passages} passages; query {QUERY!r}, k=10\n")
        print("| step | median ms |")
        print("| --- | --- |")
        print(f"| dense ranking (search_vector) | {median_ms(lambda: s.search_vector(qvec, 10)):.2f} |")
        print(f"| hybrid ranking (search_vector, BM25 + RRF) | "
              f"{median_ms(lambda: s.search_vector(qvec, 10, ['en'], mode='hybrid', query=QUERY)):.2f} |")
        print(f"| also reported in, per hit | {median_ms(lambda: [s.same_story(h) for h in hits]) / len(hits):.2f} |")
    blob = work / "blob"
    blob.write_bytes(os.urandom(256 << 20))
    started = time.perf_counter()
    file_digest(blob)
    seconds = time.perf_counter() - started
    print(f"\nchecksum (blake2b-256) of 256 MiB: {seconds:.2f} s = {0.25 / seconds:.2f} GiB/s")


if __name__ == "__main__":
    main()
