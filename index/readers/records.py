"""JSONL and CSV exports: one article per record.

Fields ``id``, ``title``, ``text`` and optional ``url``, ``date``, ``source``, ``lang``. Another
export's column names map onto these (``POLYSEEK_FIELDS="text=body,title=headline"``, or
``--fields`` on the command line). A line or row that cannot be read is reported, not guessed.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Iterator

from index.readers.base import SkipDocument, decode
from index.limits import DEFAULT, Limits

FIELDS = ("id", "title", "text", "url", "date", "source", "lang")
RECORD_FIELDS = {name: name for name in FIELDS}


def parse_field_map(spec: str | None) -> dict[str, str]:
    """"text=body,title=headline" → {"text": "body", "title": "headline"}."""
    out = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or ours not in FIELDS or not theirs:
            raise ValueError(f"field mapping {part.strip()!r}: write ours=theirs with ours one of {', '.join(FIELDS)}")
        out[ours] = theirs
    return out


def read_export(data: bytes, fmt: str, names: dict[str, str],
                limits: Limits = DEFAULT) -> Iterator[tuple[int, dict | SkipDocument]]:
    """(record number from 1, {our field: value}) per record; a SkipDocument for one unreadable.
    Every line or row is one or the other: a malformed row never hides the rows after it."""
    text = decode(data)
    rows: Iterator[tuple[int, dict | SkipDocument]]
    if fmt == "jsonl":
        rows = _jsonl(text)
    else:
        rows = _csv(text)
    for number, row in rows:
        if isinstance(row, SkipDocument):
            yield number, row
        else:
            yield number, {ours: row.get(theirs) for ours, theirs in names.items()}


def _jsonl(text: str):
    number = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        number += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, SkipDocument(f"line {number} is not JSON ({exc.msg})")
            continue
        except RecursionError:
            yield number, SkipDocument(f"line {number} is JSON nested too deeply to read")
            continue
        yield number, row if isinstance(row, dict) else SkipDocument(f"line {number} is not a JSON object")


def _csv(text: str):
    # A field can be no longer than the file, which the byte limit already bounds; the csv
    # module's default field limit (131,072 characters) would end the file at the first longer
    # one. The limit is process-wide, so it is only ever raised. Characters per record are the
    # document budget's business (a longer record is skipped with that reason).
    if csv.field_size_limit() < len(text) + 1:
        csv.field_size_limit(min(len(text) + 1, 2**31 - 1))
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    number = 0
    while True:
        before = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            yield number, SkipDocument(f"CSV row {number} (line {reader.line_num}) is malformed ({exc})")
            if reader.line_num == before:  # no progress: nothing more can be read
                return
            continue
        number += 1
        yield number, row
