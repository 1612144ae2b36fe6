"""Language identification with py3langid, as ISO 639-1 codes."""

from __future__ import annotations

import re

UNDETERMINED = "und"
#: Below this many letters a text is too short to identify on its own.
MIN_LETTERS = 40
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


def detect(text: str, fallback: str | None = None) -> str:
    """The language of ``text``. A text with fewer than MIN_LETTERS letters gets ``fallback``
    (say, its document's language) when one is given, else the best guess; none at all: 'und'."""
    letters = len(_LETTER.findall(text[:2000]))
    if letters == 0:
        return fallback or UNDETERMINED
    if letters < MIN_LETTERS and fallback:
        return fallback
    import py3langid

    lang, _score = py3langid.classify(text[:5000])
    return lang
