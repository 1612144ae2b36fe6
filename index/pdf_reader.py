"""PDF files: the text layer of every page, read by pypdf. A PDF without one (a scan) is
skipped with that reason: Polyseek does no OCR."""

from __future__ import annotations

import io

from index.corpus import SkipDocument

#: Pages are joined by a blank line, so sentences never run across a page break.
PAGE_BREAK = "\n\n"


def read_pdf(data: bytes) -> tuple[str, str]:
    """(title, text) of a PDF: its metadata title (or nothing) and its pages' text in order."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipDocument("encrypted PDF: it needs a password")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
    except SkipDocument:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise SkipDocument(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    if not any(pages):
        raise SkipDocument(f"no text layer in {len(pages)} page(s): a scanned PDF? Polyseek does no OCR")
    return str(title), PAGE_BREAK.join(p for p in pages if p)
