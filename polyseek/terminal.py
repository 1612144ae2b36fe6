"""Text from a corpus, shown on a terminal. A file name, title, source or URL may hold ESC,
CR, BEL or bidi overrides that would retitle, clear or rewrite a terminal; they are shown as
escapes (``\\x1b``, ``\\u202e``) instead, the way ``repr`` writes them."""

from __future__ import annotations

import re

#: What json.dumps(ensure_ascii=False) leaves raw: DEL and C1 controls, line/paragraph
#: separators, bidi embeddings/overrides/isolates and marks.
_RAW_IN_JSON = "\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
#: Those, C0 controls, and lone surrogates (which a terminal cannot encode).
_UNSAFE = re.compile(f"[\x00-\x1f{_RAW_IN_JSON}\ud800-\udfff]")
_JSON_UNSAFE = re.compile(f"[{_RAW_IN_JSON}]")


_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(text) -> str:
    """``text`` with every control character made visible as an escape."""
    return _UNSAFE.sub(_escape, str(text))


def safe_json(line: str) -> str:
    """A line of ``json.dumps(…, ensure_ascii=False)`` with the control characters JSON leaves
    raw (DEL, C1, bidi controls, line separators) written as ``\\uXXXX`` (still valid JSON)."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
