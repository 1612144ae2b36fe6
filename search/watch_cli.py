"""``python -m search watch …``: saved searches that alert (add, list, remove, matches)."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from polyseek import settings
from polyseek.errors import PolyseekError
from polyseek.terminal import safe_json, visible


def main(argv: list[str]) -> int:
    # --index is accepted before or after the subcommand, as by every other command.
    index_option = argparse.ArgumentParser(add_help=False)
    index_option.add_argument("-i", "--index", default=argparse.SUPPRESS,
                              help=f"index folder (default: ${settings.ENV_INDEX} or .polyseek/index)")
    parser = argparse.ArgumentParser(prog="python -m search watch", parents=[index_option],
                                     description="Saved searches: every index update records the passages it "
                                                 "added or changed that match each watch.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("add", parents=[index_option], help="save a query as a watch")
    add.add_argument("query", help="what to watch for, in any language")
    add.add_argument("-l", "--lang", action="append", default=[], metavar="CODE",
                     help="only passages in this language (repeat or comma-separate)")
    add.add_argument("--source", action="append", default=[], metavar="NAME", help="only this source (repeatable)")
    add.add_argument("--mode", choices=("auto", "dense", "hybrid"), default="auto",
                     help="hybrid (and auto with --lang the query's language): passages holding every word of "
                          "the query match too")
    add.add_argument("--threshold", type=float, default=None,
                     help="standardized score a passage must reach: standard deviations above what its language "
                          "typically scores for the query (default: the calibrated one)")
    add.add_argument("--json", action="store_true", help="print the watch as JSON")

    listing = commands.add_parser("list", parents=[index_option], help="the watches, with their new and total matches")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    remove = commands.add_parser("remove", parents=[index_option], help="delete a watch and its matches")
    remove.add_argument("watch_id", type=int, metavar="ID")

    matches = commands.add_parser("matches", parents=[index_option], help="what a watch found, in the order found")
    matches.add_argument("watch_id", type=int, metavar="ID")
    matches.add_argument("--since", default=None, metavar="WHEN", help="found on or after (YYYY-MM-DD or ISO time)")
    matches.add_argument("--new", action="store_true", help="only matches not seen yet; then mark them seen")
    matches.add_argument("--jsonl", default=None, metavar="FILE", help="append the matches to FILE as JSON lines")
    matches.add_argument("--json", action="store_true", help="print one JSON object per line")
    args = parser.parse_args(argv)

    from index.watches import WatchStore, append_jsonl

    store = WatchStore(settings.index_dir(getattr(args, "index", None)))
    try:
        if args.command == "add":
            watch = store.add(args.query, args.lang, args.source, args.mode, args.threshold)
            if args.json:
                print(safe_json(json.dumps(watch.to_dict(), ensure_ascii=False)))
            else:
                print(visible(f"watch {watch.watch_id} saved: {_describe(watch)}. Each update of {store.index_dir} now "
                      f"records its new matches: python -m search watch matches {watch.watch_id}"))
        elif args.command == "list":
            watches = store.list()
            for w in watches:
                print(safe_json(json.dumps(w.to_dict(), ensure_ascii=False)) if args.json
                      else visible(f"{w.watch_id:>4}  {w.new} new / {w.matches} matches  {_describe(w)}"))
            if not watches and not args.json:
                print(f"No watches on {store.index_dir}. Add one: python -m search watch add \"query\"")
        elif args.command == "remove":
            if not store.remove(args.watch_id):
                print(f"error: no watch {args.watch_id} on {store.index_dir} (python -m search watch list)", file=sys.stderr)
                return 2
            print(f"watch {args.watch_id} removed")
        else:
            if store.get(args.watch_id) is None:
                print(f"error: no watch {args.watch_id} on {store.index_dir} (python -m search watch list)", file=sys.stderr)
                return 2
            found = store.matches(args.watch_id, args.since, new_only=args.new)
            if args.new:
                store.mark_seen(args.watch_id)
            if args.jsonl:
                append_jsonl(Path(args.jsonl), found)
            for m in found:
                if args.json:
                    print(safe_json(json.dumps(m.to_dict(), ensure_ascii=False)))
                else:  # corpus text: control characters made visible
                    print(visible(f"{m.found_at[:19].replace('T', ' ')}  [{m.lang}] {m.z:.1f} sd (score {m.score:.3f})  "
                                  f"{m.title}  ({m.doc_id})"))
                    print(textwrap.shorten(visible(" ".join(m.text.split())), width=100, initial_indent="    ",
                                           placeholder=" …"))
            if not args.json:
                print(f"{len(found)} matches" + (f", appended to {args.jsonl}" if args.jsonl else ""))
    except PolyseekError as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return 2
    return 0


def _describe(watch) -> str:
    parts = [f"“{watch.query}”"]
    if watch.langs:
        parts.append("languages " + ", ".join(watch.langs))
    if watch.sources:
        parts.append("sources " + ", ".join(watch.sources))
    parts.append(f"{watch.mode}, threshold {watch.threshold:g}")
    return " · ".join(parts)
