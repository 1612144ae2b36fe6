"""``python -m search`` / ``polyseek-search``: ask the index in any language."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
import time

from polyseek import settings
from polyseek.errors import PolyseekError
from polyseek.terminal import safe_json, visible


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["stories"]:  # (to search for the word itself: python -m search -- stories)
        from search.stories_cli import main as stories_main

        return stories_main(argv[1:])
    lead = 2 if argv[:1] in (["-i"], ["--index"]) else 1 if argv[:1] and argv[0].startswith("--index=") else 0
    if argv[lead : lead + 1] == ["watch"]:  # saved searches (to search for the word: python -m search -- watch)
        from search.watch_cli import main as watch_main

        return watch_main(argv[:lead] + argv[lead + 1 :])
    parser = argparse.ArgumentParser(prog="python -m search", description="Search Polyseek's index in any language. "
                                     "Subcommands: `python -m search stories` lists the stories across languages; "
                                     "`python -m search watch` manages saved searches that alert.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("query", nargs="?", help="what to look for, in any language")
    parser.add_argument("--counterparts", metavar="TEXT", default=None,
                        help="instead of searching: the passages in other languages that say what TEXT says "
                             "(its translation first, when the index holds one); --lang picks the languages")
    parser.add_argument("-k", "--top", dest="k", type=int, default=10, help="number of passages (1-1000)")
    parser.add_argument("-l", "--lang", action="append", default=[], metavar="CODE",
                        help="only passages in this language (ISO 639-1, e.g. ro); repeat or comma-separate for several")
    parser.add_argument("--mode", choices=("auto", "dense", "hybrid"), default="auto",
                        help="dense: the embedding model alone; hybrid: fused with BM25 matches in the query's "
                             "language; auto: hybrid when --lang is the query's own language, else dense")
    parser.add_argument("--source", action="append", default=[], metavar="NAME",
                        help="only documents from this source or site (repeatable)")
    parser.add_argument("--since", default=None, metavar="YYYY-MM-DD", help="only documents published on or after")
    parser.add_argument("--until", default=None, metavar="YYYY-MM-DD", help="only documents published on or before")
    parser.add_argument("--sort", choices=("relevance", "date"), default="relevance",
                        help="order of the results: relevance, or the most relevant by date, newest first")
    parser.add_argument("--also", action="store_true",
                        help="under each result, where the same story was reported in other languages")
    parser.add_argument("-d", "--per-document", action="store_true", help="only the best passage of each document")
    parser.add_argument("-i", "--index", default=None, help=f"index folder (default: ${settings.ENV_INDEX} or .polyseek/index)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    parser.add_argument("--timeline", action="store_true",
                        help="instead of results: matching documents per day (or --interval week) per language")
    parser.add_argument("--interval", choices=("day", "week"), default="day", help="the timeline's period")
    parser.add_argument("--threshold", type=float, default=None, metavar="SD",
                        help="timeline: standard deviations above its language's typical score a document's best "
                             "passage must reach (default: the watches' calibrated threshold)")
    args = parser.parse_args(argv)
    langs = [code for value in args.lang for code in value.split(",") if code.strip()]
    if (args.query is None) == (args.counterparts is None):
        parser.error("give a query to search for, or --counterparts TEXT (not both)")

    from index.margins import LINK_THRESHOLD
    from search.searcher import Searcher

    if args.timeline:
        if args.query is None:
            parser.error("--timeline needs a query")
        return _timeline(args, langs)
    try:
        with Searcher.open(args.index) as searcher:
            started = time.perf_counter()
            if args.counterparts is not None:
                hits = searcher.counterparts(args.counterparts, langs=langs or None, k=args.k)
            else:
                hits = searcher.search(args.query, k=args.k, langs=langs or None, per_document=args.per_document,
                                       mode=args.mode, sources=args.source or None, since=args.since, until=args.until,
                                       sort=args.sort)
            also = {h.passage_id: searcher.same_story(h) for h in hits} if args.also else {}
            elapsed = time.perf_counter() - started
            missing = [c for c in langs if c.lower() not in searcher.languages]
            present = ", ".join(searcher.languages)
    except PolyseekError as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return 2
    if missing:
        print(visible(f"note: the index has no passages in {', '.join(missing)} (it has: {present})"), file=sys.stderr)
    if args.json:
        for rank, hit in enumerate(hits, 1):
            row = {"rank": rank, **hit.to_dict()}
            if args.also:
                row["also_reported_in"] = [h.to_dict() for h in also[hit.passage_id]]
            print(safe_json(json.dumps(row, ensure_ascii=False)))
        return 0
    if not hits:
        print("No passages matched.")
        return 0
    width = min(shutil.get_terminal_size((100, 20)).columns, 100)
    for rank, hit in enumerate(hits, 1):
        # Corpus text reaches the terminal with its control characters made visible (polyseek.terminal).
        score = "margin" if args.counterparts is not None else "score"
        print(visible(f"{rank:>2}. [{hit.lang}] {score} {hit.score:.3f} (cosine {hit.cosine:.3f})  {hit.title}  "
                      f"({hit.doc_id}, chars {hit.start}-{hit.end})"))
        where = " · ".join(x for x in (hit.source, hit.date, f"page {hit.page}" if hit.page else "", hit.url) if x)
        if where:
            print(visible(f"    {where}"))
        print(textwrap.fill(visible(" ".join(hit.text.split())), width=width, initial_indent="    ",
                            subsequent_indent="    "))
        for other in also.get(hit.passage_id, []):
            print(textwrap.shorten(visible(f"    also reported in [{other.lang}] {other.title} (story {hit.story_id}): "
                                           f"{' '.join(other.text.split())}"),
                                   width=width, placeholder=" …"))
        print()
    print(f"{len(hits)} {'documents' if args.per_document else 'passages'} in {elapsed * 1000:.0f} ms")
    if args.counterparts is not None and hits[0].score < LINK_THRESHOLD:
        print(f"(none reaches the link margin {LINK_THRESHOLD}: these are the nearest passages, perhaps not translations)")
    return 0


def _timeline(args, langs: list[str]) -> int:
    from search.searcher import Searcher
    from search.timeline import timeline

    try:
        with Searcher.open(args.index) as searcher:
            found = timeline(searcher, args.query, langs or None, interval=args.interval,
                             sources=args.source or None, since=args.since, until=args.until,
                             **({} if args.threshold is None else {"threshold": args.threshold}))
    except PolyseekError as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return 2
    if args.json:
        print(safe_json(json.dumps(found.to_dict(), ensure_ascii=False)))
        return 0
    langs = list(found.counts)
    print(visible(f"Documents matching “{args.query}” per {args.interval} ({found.threshold:g} standard deviations above "
          "their language's typical score):"))
    print("period      " + "".join(f"{lang:>6}" for lang in langs))
    for row in found.rows():
        if any(row[lang] for lang in langs):  # the JSON keeps empty periods; the table skips them
            print(f"{row['period']:<12}" + "".join(f"{row[lang]:>6}" for lang in langs))
    print("undated     " + "".join(f"{found.undated[lang]:>6}" for lang in langs))
    if found.truncated:
        print(f"note: {', '.join(found.truncated)} reached the limit of documents per language: counts are lower bounds",
              file=sys.stderr)
    return 0
