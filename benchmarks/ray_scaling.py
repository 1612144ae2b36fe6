"""When does ``--ray`` pay? Embedding throughput of the bundled model on a local Ray instance with 1
and 2 actors (scaling efficiency T1 / (N · TN)), Ray's fixed start-up cost, and a whole build
in-process against the same build with ``--ray local``, in one run.

    .venv/bin/pip install -c constraints.txt -e '.[ray]'
    .venv/bin/python benchmarks/ray_scaling.py                       # XQuAD de paragraphs
    .venv/bin/python benchmarks/ray_scaling.py --per-lang 40 --build-docs 20   # a quick check

Passages: XQuAD paragraphs (shared/eval), embedded as passages, sorted by length as a build
sorts them. Each actor reserves 1 CPU and runs the model on 1 thread; "in-process" is the
product's own path (ONNX Runtime on all cores). A run's steady rate is measured between the first
and the last batch that comes back (after the actors have loaded the model); its fixed cost is
its wall time less the time the steady rate needs for its passages.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def ray_embed(executor, texts, embedder):
    """(wall seconds, steady passages/s) of one embedding run on the actor pool."""
    stamps = []
    started = time.perf_counter()
    executor.embed(texts, embedder, None, lambda stage, done, total: stamps.append((time.perf_counter(), done)))
    wall = time.perf_counter() - started
    arrived = [(t, d) for t, d in stamps if d > 0]
    (t0, d0), (t1, d1) = arrived[0], arrived[-1]
    steady = (d1 - d0) / (t1 - t0) if t1 > t0 else float("nan")
    return wall, steady


def main() -> None:
    from timing import timed
    from xquad_data import XQUAD, paragraphs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--langs", nargs="+", default=["de"])
    ap.add_argument("--per-lang", type=int, default=240, help="paragraphs embedded per language")
    ap.add_argument("--build-docs", type=int, default=60, help="documents of the whole-build comparison")
    ap.add_argument("--xquad", type=Path, default=XQUAD)
    args = ap.parse_args()

    import ray

    from index import build_index
    from index.ray_build import RayExecutor
    from polyseek.embedder import load_embedder

    texts = [p for lang in args.langs for _, p, _ in paragraphs([lang], args.xquad)[: args.per_lang]]
    embedder = load_embedder()  # the bundled model, the product's backend (ONNX on a CPU)
    texts.sort(key=lambda t: len(embedder.token_spans([t])[0]))
    print(f"# Ray scaling: {len(texts)} XQuAD paragraphs ({', '.join(args.langs)}), model {embedder.name} "
          f"({type(embedder).__name__}), ray {ray.__version__}")

    embedder.embed(texts[:4], "passage")  # warm
    _, local_all = timed(lambda: embedder.embed(texts, "passage"))
    embedder.set_threads(1)
    _, local_one = timed(lambda: embedder.embed(texts, "passage"))
    embedder.set_threads(2)
    n = len(texts)

    _, start_cost = timed(lambda: ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                                           logging_level="ERROR"))
    runs = {}
    for actors in (1, 2):
        executor = RayExecutor("local", actors=actors, cpus_per_actor=1)
        executor.start()
        tiny_wall, _ = ray_embed(executor, texts[:8], embedder)  # the fixed cost of one embedding run
        wall, steady = ray_embed(executor, texts, embedder)
        runs[actors] = (tiny_wall, wall, steady)

    (tiny1, wall1, steady1), (tiny2, wall2, steady2) = runs[1], runs[2]
    print("\n| run | wall (s) | passages/s (whole run) | steady passages/s | fixed cost of the run (s) |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| in-process, ONNX, 2 threads | {local_all:.1f} | {n / local_all:.1f} | {n / local_all:.1f} | — |")
    print(f"| in-process, ONNX, 1 thread | {local_one:.1f} | {n / local_one:.1f} | {n / local_one:.1f} | — |")
    for actors, (tiny, wall, steady) in runs.items():
        print(f"| Ray, {actors} actor{'s' if actors > 1 else ''} x 1 CPU | {wall:.1f} | {n / wall:.1f} | {steady:.1f} | "
              f"{wall - n / steady:.1f} (8 passages alone: {tiny:.1f}) |")
    print(f"\nScaling efficiency T1 / (2 · T2): whole runs {wall1 / (2 * wall2):.2f}, steady rates "
          f"{steady2 / (2 * steady1):.2f}")
    print(f"Ray start-up (ray.init of a local instance): {start_cost:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for i, text in enumerate(texts[: args.build_docs]):
            (corpus / f"p{i:04d}.txt").write_text(text, encoding="utf-8")
        local, local_s = timed(lambda: build_index(corpus, Path(tmp) / "local", embedder=embedder))
        executor = RayExecutor("local", actors=2, cpus_per_actor=1)
        executor.start()
        on_ray, ray_s = timed(lambda: build_index(corpus, Path(tmp) / "ray", embedder=embedder, executor=executor))
    print(f"\nWhole build of {args.build_docs} documents ({local.passages} passages): in-process {local_s:.1f} s "
          f"(embedding {local.embed_seconds:.1f} s); --ray local with 2 actors {ray_s:.1f} s (embedding "
          f"{on_ray.embed_seconds:.1f} s), plus {start_cost:.1f} s to start Ray")
    extra = ray_s + start_cost - local_s
    rate = n / local_all
    print(f"Ray's fixed cost on this build: {extra:.1f} s, what the in-process path embeds "
          f"{extra * rate:.0f} passages in ({rate:.1f} passages/s). --ray pays once the workers it adds "
          "embed more than that in the build's time.")
    ray.shutdown()


if __name__ == "__main__":
    main()
