"""PDF files: the text layer of every page, read by pypdf. A PDF without one (a scan) is
skipped with that reason: Polyseek does no OCR."""

from __future__ import annotations

import io

from index.corpus import Parsed, SkipDocument


def read_pdf(data: bytes) -> Parsed:
    """A PDF's metadata title and author, and its pages' text in order (their offsets are kept,
    so a hit can say which page it is on)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipDocument("encrypted PDF: it needs a password")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or ""
        author = (reader.metadata.author if reader.metadata else None) or ""
    except SkipDocument:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged files
        raise SkipDocument(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    if not any(pages):
        raise SkipDocument(f"no text layer in {len(pages)} page(s): a scanned PDF? Polyseek does no OCR")
    return Parsed(title=str(title), author=str(author), pages=pages)
