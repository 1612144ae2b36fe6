"""Why a dense search at 1M passages scans slowly: FAISS's IVF-SQ8 scan by row width.

Segments store rows ``[v, one-hot language]``: 384 + 9 = 393 floats with 9 languages. FAISS's
SIMD scalar-quantizer kernels handle widths that are multiples of 16 (AVX-512) or 8 (AVX2);
other widths fall back to scalar code. This times one IVF256,SQ8 index of 100k random unit
rows per width, nprobe 32, one thread, 100 single-query searches (milliseconds per search).
Run: ``.venv/bin/python benchmarks/sq8_width.py``.
"""

import time

import faiss
import numpy as np


def main() -> None:
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 100_000
    print("faiss", faiss.__version__, faiss.get_compile_options())
    for d in (384, 392, 393, 400):
        x = rng.standard_normal((n, d)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        queries = x[:100] + 0.1
        index = faiss.index_factory(d, "IVF256,SQ8", faiss.METRIC_INNER_PRODUCT)
        index.train(x[:16384])
        index.add(x)
        index.nprobe = 32
        started = time.perf_counter()
        for q in queries:
            index.search(q[None], 10)
        print(f"width {d}: {(time.perf_counter() - started) * 10:.3f} ms per search")


if __name__ == "__main__":
    main()
