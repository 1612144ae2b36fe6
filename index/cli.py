"""``python -m index`` / ``polyseek-index``: build the index of a corpus folder."""

from __future__ import annotations

import argparse
import json
import sys

from polyseek import settings
from polyseek.errors import PolyseekError
from polyseek.terminal import safe_json, visible


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m index", description="Build Polyseek's index of a corpus folder.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="(re)build the index of CORPUS_DIR and put it in service atomically",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    build.add_argument("corpus", metavar="CORPUS_DIR", help="folder of articles (.txt, .md), read recursively")
    build.add_argument("-i", "--index", default=None,
                       help=f"index folder (default: ${settings.ENV_INDEX} or .polyseek/index)")
    build.add_argument("-m", "--model", default=None,
                       help=f"sentence-transformers model name or folder (default: ${settings.ENV_MODEL} or {settings.DEFAULT_MODEL})")
    build.add_argument("--chunk-tokens", type=int, default=200, help="passage size budget, in model tokens")
    build.add_argument("--batch-size", type=int, default=None,
                       help="passages per encoder batch (default: the backend's best: 1 for ONNX, 4 for torch on a CPU)")
    build.add_argument("--fields", default=None, metavar="OURS=THEIRS,...",
                       help="JSONL/CSV column names of your export, e.g. text=body,title=headline "
                            f"(default: ${settings.ENV_FIELDS} or id,title,text,url,date,source,lang)")
    build.add_argument("--json", action="store_true", help="print the summary as JSON")
    build.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_limit_flags(build)
    add_ray_flags(build)
    update = sub.add_parser("update", help="bring the index up to date with its corpus: embed only new and changed "
                            "passages, drop deleted documents, put the result in service atomically",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    update.add_argument("corpus", metavar="CORPUS_DIR", nargs="?", default=None,
                        help="folder of articles (default: the one the index was built from)")
    update.add_argument("-i", "--index", default=None,
                        help=f"index folder (default: ${settings.ENV_INDEX} or .polyseek/index)")
    update.add_argument("--batch-size", type=int, default=None,
                       help="passages per encoder batch (default: the backend's best: 1 for ONNX, 4 for torch on a CPU)")
    update.add_argument("--json", action="store_true", help="print the summary as JSON")
    update.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_limit_flags(update)
    add_ray_flags(update)
    optimize = sub.add_parser("optimize", help="merge every segment of the index into one (dropping deleted passages) "
                              "and put it in service atomically", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    optimize.add_argument("-i", "--index", default=None,
                          help=f"index folder (default: ${settings.ENV_INDEX} or .polyseek/index)")
    optimize.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.command == "optimize":
        return _optimize(args)

    from index.builder import build_index, update_index

    from index.limits import Limits

    progress = None if args.quiet else TqdmProgress()
    executor = None
    try:
        if args.ray:
            from index.ray_build import RayExecutor

            executor = RayExecutor(args.ray, actors=args.actors, cpus_per_actor=args.cpus_per_actor)
            executor.start()
        limits = Limits.resolve(max_bytes=args.max_bytes, max_chars=args.max_chars, max_passages=args.max_passages,
                                read_seconds=args.read_seconds)
        if args.command == "update":
            summary = update_index(args.corpus, args.index, batch_size=args.batch_size, progress=progress,
                                   limits=limits, executor=executor)
        else:
            from index.readers.records import parse_field_map

            fields = parse_field_map(args.fields) if args.fields is not None else None
            summary = build_index(args.corpus, args.index, args.model, chunk_tokens=args.chunk_tokens,
                                  batch_size=args.batch_size, progress=progress, fields=fields, limits=limits,
                                  executor=executor)
    except (PolyseekError, ValueError) as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return 2
    finally:
        if progress:
            progress.close()
        if executor is not None:
            executor.close()
    if args.json:
        out = dict(vars(summary), skipped=[vars(s) for s in summary.skipped],
                   passages_per_second=round(summary.passages_per_second, 2))
        print(safe_json(json.dumps(out, ensure_ascii=False, indent=2)))
    else:
        print(summary.to_text())
        print(f'\nSearch it: python -m search "missile defense guarantees" --index {summary.index_dir}')
    return 0


def _optimize(args) -> int:
    import time

    from index.merge import optimize_index

    started = time.perf_counter()
    try:
        before, after = optimize_index(args.index)
    except PolyseekError as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"segments_before": before, "segments_after": after, "seconds": round(seconds, 3)}))
    else:
        print(f"Segments: {before} before, {after} after ({seconds:.1f} s).")
    return 0


def add_limit_flags(parser: argparse.ArgumentParser) -> None:
    from index.limits import DEFAULT, ENV

    group = parser.add_argument_group("budgets of one document (over one: skipped with the reason)")
    group.add_argument("--max-bytes", type=int, default=None,
                       help=f"bytes of one file (default: ${ENV['max_bytes']} or {DEFAULT.max_bytes:,})")
    group.add_argument("--max-chars", type=int, default=None,
                       help=f"characters of text of one document or record (default: ${ENV['max_chars']} or {DEFAULT.max_chars:,})")
    group.add_argument("--max-passages", type=int, default=None,
                       help=f"passages of one document (default: ${ENV['max_passages']} or {DEFAULT.max_passages:,})")
    group.add_argument("--read-seconds", type=float, default=None,
                       help=f"seconds to read one PDF or HTML file (default: ${ENV['read_seconds']} or {DEFAULT.read_seconds:g})")


def add_ray_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("on a Ray cluster (pip install 'polyseek[ray]'; README: Beyond one machine)")
    group.add_argument("--ray", default=None, metavar="local|auto|ADDRESS",
                       help="read, chunk and embed on Ray: 'local' starts Ray on this machine, 'auto' joins the running "
                            "cluster (ray start --head, or $RAY_ADDRESS), or a cluster address (default: no Ray, in-process)")
    group.add_argument("--actors", type=int, default=None,
                       help="embedding actors, one model each (default: one per GPU of the cluster, else one per "
                            "--cpus-per-actor CPUs)")
    group.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs each embedding actor reserves")


class TqdmProgress:
    """One tqdm bar per stage, on stderr."""

    def __init__(self):
        self.stage, self.bar = None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total or None, desc=f"{stage:>9}", unit="passage" if stage == "embedding" else "doc",
                            file=sys.stderr, dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
