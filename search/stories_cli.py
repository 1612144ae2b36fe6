"""``python -m search stories``: the stories of the index, across languages."""

from __future__ import annotations

import argparse
import json
import sys

from polyseek import settings
from polyseek.errors import PolyseekError
from polyseek.languages import language_name
from polyseek.terminal import safe_json, visible


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search stories",
                                     description="Stories: documents in one or more languages that report the same event.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-l", "--lang", action="append", default=[], metavar="CODE",
                        help="only stories with a document in this language (repeat or comma-separate)")
    parser.add_argument("--source", action="append", default=[], metavar="NAME", help="only stories with a document from this source")
    parser.add_argument("--since", default=None, metavar="YYYY-MM-DD", help="only stories reported on or after")
    parser.add_argument("--until", default=None, metavar="YYYY-MM-DD", help="only stories reported on or before")
    parser.add_argument("--sort", choices=("size", "date"), default="size", help="most documents first, or latest first")
    parser.add_argument("-n", "--limit", type=int, default=50, help="at most this many stories")
    parser.add_argument("--all", action="store_true", help="also documents that no other document reports (stories of one)")
    parser.add_argument("--open", metavar="STORY_ID", default=None, help="show one story: its documents and best passages")
    parser.add_argument("-i", "--index", default=None, help=f"index folder (default: ${settings.ENV_INDEX} or .polyseek/index)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    args = parser.parse_args(argv)
    langs = [code for value in args.lang for code in value.split(",") if code.strip()]

    from search.searcher import Searcher

    try:
        with Searcher.open(args.index) as searcher:
            if args.open:
                detail = searcher.story(args.open)
                if detail is None:
                    print(visible(f"error: no story {args.open!r} in the index: list them with python -m search stories"),
                          file=sys.stderr)
                    return 2
                stories = []
            else:
                stories = searcher.stories(langs=langs or None, sources=args.source or None, since=args.since,
                                           until=args.until, sort=args.sort, limit=args.limit,
                                           min_size=1 if args.all else 2)
    except PolyseekError as exc:
        print(f"error: {visible(exc)}", file=sys.stderr)
        return 2
    if args.open:
        if args.json:
            print(safe_json(json.dumps(detail.to_dict(), ensure_ascii=False)))
            return 0
        # Corpus text reaches the terminal with its control characters made visible.
        print("\n".join(visible(line) for line in _line(detail.story)))
        for lang, docs in detail.by_language().items():
            print("\n  " + visible(f"{language_name(lang)} ({lang})"))
            for doc in docs:
                print(visible(f"    {doc.date[:10] or 'undated'}  {doc.title}  ({doc.doc_id})"))
                print(visible(f"      {' '.join(doc.passage.split())[:200]}"))
        return 0
    if args.json:
        for story in stories:
            print(safe_json(json.dumps(story.to_dict(), ensure_ascii=False)))
        return 0
    if not stories:
        print("No story" + (" in " + ", ".join(langs) if langs else "") + " is reported by more than one document."
              + ("" if args.all else " (--all lists single documents too)"))
        return 0
    for story in stories:
        print("\n".join(visible(line) for line in _line(story)))
    return 0


def _line(story) -> tuple[str, str]:
    """Two lines: id, size, languages, dates; then the title."""
    langs = ", ".join(f"{lang} {n}" for lang, n in story.languages.items())
    dates = f"{story.first_date} – {story.last_date}" if story.first_date else "undated"
    first = f"; first in {', '.join(story.first_langs)}" if story.first_langs else ""
    missing = f"; never in {', '.join(story.missing_langs)}" if story.missing_langs else ""
    size = f"{story.size} document{'s' if story.size != 1 else ''}"
    return f"{story.story_id}  {size} ({langs}); {dates}{first}{missing}", f"    {story.title}"
