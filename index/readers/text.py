"""Plain text and Markdown: the text as it is; the title is the first line (Markdown: the first
heading)."""

from __future__ import annotations

import re

from index.limits import DEFAULT, Limits
from index.readers.base import decode


def first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def read_txt(data: bytes, limits: Limits = DEFAULT) -> tuple[str, str]:
    text = decode(data)
    return first_line(text), text


_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def read_md(data: bytes, limits: Limits = DEFAULT) -> tuple[str, str]:
    text = decode(data)
    heading = _HEADING.search(text)
    return (heading.group(1) if heading else first_line(text)), text
