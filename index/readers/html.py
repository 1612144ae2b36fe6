"""HTML pages: the article's text and title, extracted by trafilatura; menus, footers,
"Related posts" and counters are left out. Runs in the reader process
(index/readers/process.py), which bounds its time and memory."""

from __future__ import annotations

from index.readers.base import Parsed, SkipDocument
from index.limits import DEFAULT, Limits, over


def read_html(data: bytes, max_chars: int | None = None) -> Parsed:
    """The main article of an HTML page with its title, author, date, site and URL, or
    SkipDocument when it has none (or more than ``max_chars`` characters of it)."""
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(data, with_metadata=True, include_comments=False, favor_precision=True)
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # lxml and trafilatura raise many kinds on broken input
        raise SkipDocument(f"unreadable HTML ({type(exc).__name__}: {exc})") from None
    text = (getattr(doc, "text", None) or "").strip() if doc is not None else ""
    if not text:
        raise SkipDocument("no article text found in the HTML page")
    limits = Limits(max_chars=max_chars or DEFAULT.max_chars)
    if len(text) > limits.max_chars:
        raise SkipDocument(over("max_chars", limits, f"{len(text):,} characters"))
    meta = lambda name: str(getattr(doc, name, None) or "")  # noqa: E731
    return Parsed(title=meta("title"), text=text, url=meta("url"), source=meta("sitename"), date=meta("date"),
                  author=meta("author"))
