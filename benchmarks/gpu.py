"""Indexing throughput of the bundled model on a GPU: ``build_index`` with the torch backend in
float16 (the product's choice where a GPU is present) against the bare encoder on the same
passage texts at the same batch size, and float16 against float32 (speed and cosine), in one run.

    .venv/bin/python benchmarks/gpu.py                    # on a machine with an NVIDIA GPU
    .venv/bin/python benchmarks/gpu.py --device cpu --langs de --per-lang 20 --copies 1   # checks the script

The corpus is the XQuAD paragraphs of ``--langs``, each written ``--copies`` times as .txt files
(each copy begins with its number, so that no copy is skipped as a duplicate); the issue's goal
is >= 5,000 passages/s on an H100.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    from timing import timed
    from xquad_data import LANGS, XQUAD, paragraphs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", help="torch device (default cuda)")
    ap.add_argument("--langs", nargs="+", default=list(LANGS))
    ap.add_argument("--per-lang", type=int, default=None, help="paragraphs per language (default all 240)")
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=None, help="default: the embedder's preferred size")
    ap.add_argument("--xquad", type=Path, default=XQUAD)
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device is visible: run this on a machine with an NVIDIA GPU, or pass --device cpu "
                 "to check the script")

    from index import build_index
    from index.store import PassageStore
    from index.versions import current_version
    from polyseek.bundled_model import bundled_model_dir
    from polyseek.embedder import SentenceTransformerEmbedder
    from polyseek.settings import DEFAULT_MODEL

    source = str(bundled_model_dir())
    half = SentenceTransformerEmbedder(DEFAULT_MODEL, source, device=args.device, half=True)
    full = SentenceTransformerEmbedder(DEFAULT_MODEL, source, device=args.device, half=False)
    batch = args.batch_size or half.preferred_batch_size
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"# GPU throughput: {name}, torch {torch.__version__}, model {DEFAULT_MODEL}, batch {batch}")

    paras = []
    for lang in args.langs:
        paras += paragraphs([lang], args.xquad)[: args.per_lang]
    work = Path(tempfile.mkdtemp(prefix="polyseek-gpu-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for copy in range(args.copies):
        for i, (lang, text, _) in enumerate(paras):
            (corpus / f"{lang}-{i:04d}-{copy}.txt").write_text(f"{copy + 1}. {text}", encoding="utf-8")

    half.embed(["warm up the kernels"] * batch, "passage", batch_size=batch)
    full.embed(["warm up the kernels"] * batch, "passage", batch_size=batch)
    summary, seconds = timed(lambda: build_index(corpus, work / "index", embedder=half, batch_size=batch))
    store = PassageStore(current_version(work / "index") / "store.sqlite")
    texts = [t for _, _, t in store.passage_texts()]
    store.close()
    tokens = sum(len(s) for s in half.token_spans(texts))

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    vec16, bare16 = timed(lambda: (half.embed(texts, "passage", batch_size=batch), sync())[0])
    vec32, bare32 = timed(lambda: (full.embed(texts, "passage", batch_size=batch), sync())[0])
    cos = (vec16 * vec32).sum(axis=1)

    print(f"\n{len(paras) * args.copies} documents, {len(texts)} passages, {tokens} tokens\n")
    print("| path | seconds | passages/s | tokens/s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| Polyseek build_index, float16 | {seconds:.2f} | {len(texts) / seconds:.0f} | {tokens / seconds:.0f} | "
          f"{bare16 / seconds:.3f} of the bare encoder |")
    print(f"| bare encoder, float16 | {bare16:.2f} | {len(texts) / bare16:.0f} | {tokens / bare16:.0f} | |")
    print(f"| bare encoder, float32 | {bare32:.2f} | {len(texts) / bare32:.0f} | {tokens / bare32:.0f} | "
          f"float16 is {bare32 / bare16:.2f}x as fast |")
    print(f"\nfloat16 vs float32 vectors: cosine mean {cos.mean():.6f}, min {cos.min():.6f}")
    print(f"build stages: {summary}")


if __name__ == "__main__":
    main()
