"""The format readers, one module per format, and the dispatch by file extension.

- :mod:`index.readers.base`: what they share (Parsed, SkipDocument, decode);
- :mod:`index.readers.text`: ``.txt``, ``.md``;
- :mod:`index.readers.html` (trafilatura) and :mod:`index.readers.pdf` (pypdf): run in a child
  process under a time and memory budget (:mod:`index.readers.process`);
- :mod:`index.readers.records`: JSONL and CSV exports, one article per record.

A reader is ``reader(data, limits)`` → Parsed (or (title, text)), or SkipDocument with the
reason; adding a format is adding a module and one line in ``READERS``. index.corpus turns what
they find into Documents.
"""

from __future__ import annotations

from typing import Callable

from index.limits import DEFAULT, Limits
from index.readers.base import Parsed, SkipDocument, decode
from index.readers.text import read_md, read_txt


def read_html(data: bytes, limits: Limits = DEFAULT) -> Parsed:
    from index.readers.process import shared

    return shared().read("html", data, limits)


def read_pdf(data: bytes, limits: Limits = DEFAULT) -> Parsed:
    from index.readers.process import shared

    return shared().read("pdf", data, limits)


#: Format readers by extension: ``reader(data, limits)`` → Parsed (or (title, text)), SkipDocument with the reason.
READERS: dict[str, Callable[[bytes, Limits], "tuple[str, str] | Parsed"]] = {
    ".txt": read_txt, ".md": read_md, ".html": read_html, ".htm": read_html, ".pdf": read_pdf,
}
#: Exports holding one article per record (index/readers/records.py).
RECORD_READERS = (".jsonl", ".csv")
#: Every extension the corpus reads.
EXTENSIONS = tuple(sorted({*READERS, *RECORD_READERS}))

__all__ = ["EXTENSIONS", "READERS", "RECORD_READERS", "Parsed", "SkipDocument", "decode", "read_html", "read_md",
           "read_pdf", "read_txt"]
