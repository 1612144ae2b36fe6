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

from index.corpus import SkipDocument, decode

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


def read_export(data: bytes, fmt: str, names: dict[str, str]) -> Iterator[tuple[int, dict | SkipDocument]]:
    """(record number from 1, {our field: value}) per record; a SkipDocument for one unreadable."""
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
        yield number, row if isinstance(row, dict) else SkipDocument(f"line {number} is not a JSON object")


def _csv(text: str):
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    try:
        for number, row in enumerate(reader, 1):
            yield number, row
    except csv.Error as exc:
        yield reader.line_num, SkipDocument(f"CSV row {reader.line_num} is malformed ({exc})")
