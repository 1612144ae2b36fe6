"""PDF files: the text layer of every page, read by pypdf. A PDF without one (a scan) is
skipped with that reason: Polyseek does no OCR. Runs in the reader process
(index/readers/process.py), which bounds its time and memory; the character budget is checked
page by page, so a small file that expands into millions of characters stops early."""

from __future__ import annotations

import io
import time

from index.readers.base import Parsed, SkipDocument
from index.limits import DEFAULT, Limits, over


def read_pdf(data: bytes, max_chars: int | None = None, deadline: float | None = None) -> Parsed:
    """A PDF's metadata title and author, and its pages' text in order (their offsets are kept,
    so a hit can say which page it is on). SkipDocument past ``max_chars`` characters of text,
    or past ``deadline`` (a ``time.monotonic()`` value)."""
    from pypdf import PdfReader

    limits = Limits(max_chars=max_chars or DEFAULT.max_chars)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipDocument("encrypted PDF: it needs a password")
        pages, total, count = [], 0, len(reader.pages)
        for number, page in enumerate(reader.pages, 1):
            text = (page.extract_text() or "").strip()
            total += len(text)
            if total > limits.max_chars:
                raise SkipDocument(over("max_chars", limits, f"more than {limits.max_chars:,} characters in the "
                                                             f"first {number:,} of {count:,} pages"))
            if deadline is not None and time.monotonic() > deadline:
                raise SkipDocument(f"reading took too long: {number:,} of {count:,} pages read in the time allowed "
                                   f"per file ({limits.hint('read_seconds')})")
            pages.append(text)
        title = (reader.metadata.title if reader.metadata else None) or ""
        author = (reader.metadata.author if reader.metadata else None) or ""
    except (SkipDocument, MemoryError):
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise SkipDocument(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    if not any(pages):
        raise SkipDocument(f"no text layer in {len(pages)} page(s): a scanned PDF? Polyseek does no OCR")
    return Parsed(title=str(title), author=str(author), pages=pages)
