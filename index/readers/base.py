"""What every reader shares: the :class:`Parsed` result, :class:`SkipDocument` (a file that cannot
be indexed, with the reason) and :func:`decode` (bytes to text). The lowest module of the
readers: index.corpus and each format module import it, it imports none of them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Parsed:
    """What a reader found in a file (or a record): text and whatever metadata it has. ``pages``,
    when given, replaces ``text``: the pages are cleaned and joined, and their offsets kept."""

    title: str = ""
    text: str = ""
    url: str = ""
    source: str = ""
    date: str = ""
    author: str = ""
    lang: str = ""
    pages: list[str] | None = None


class SkipDocument(Exception):
    """Raised by a reader for a file that cannot be indexed; the message is the reason."""


def decode(data: bytes) -> str:
    """Bytes → text: UTF-8 (BOM or not), UTF-16 with a BOM, else the encoding charset-normalizer
    finds. Binary data and bytes no encoding explains raise SkipDocument."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise SkipDocument("undecodable: starts with a UTF-16 mark but is not UTF-16") from None
    if b"\x00" in data[:8192]:
        raise SkipDocument("binary: contains NUL bytes")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise SkipDocument("undecodable: not UTF-8, and no other text encoding fits")
    return str(best)
