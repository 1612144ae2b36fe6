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


def detect_among(text: str, candidates) -> str:
    """The most likely of ``candidates`` (say, the languages an index holds) for ``text``, with no
    minimum length: choosing among a few languages is reliable even for a three-word query,
    where open identification is not. 'und' when ``text`` has no letters or no candidate fits."""
    candidates = set(candidates)
    if not candidates or not _LETTER.search(text[:2000]):
        return UNDETERMINED
    from py3langid import langid

    for lang, _score in langid.rank(text[:5000]):
        if lang in candidates:
            return lang
    return UNDETERMINED
