"""Language codes as people read them: names (ISO 639 via pycountry) and writing direction."""

from __future__ import annotations

from functools import lru_cache

#: Languages written right to left (ISO 639-1), as language identifiers report them.
RTL = frozenset({"ar", "arc", "dv", "fa", "he", "iw", "ku", "ps", "sd", "ug", "ur", "yi"})


@lru_cache(maxsize=512)
def language_name(code: str) -> str:
    """English name of an ISO 639-1/639-3 code ("ro" → "Romanian"); "und" → "Undetermined";
    an unknown code is returned as it is."""
    import pycountry

    code = (code or "").strip().lower()
    if code in ("", "und"):
        return "Undetermined"
    field = "alpha_2" if len(code) == 2 else "alpha_3"
    try:
        found = pycountry.languages.get(**{field: code})
    except (KeyError, LookupError):
        found = None
    return found.name if found else code


def direction(code: str) -> str:
    """"rtl" or "ltr", for the HTML dir attribute."""
    return "rtl" if (code or "").lower() in RTL else "ltr"


def label(code: str, passages: int | None = None) -> str:
    """"Romanian (ro)", or "Romanian (ro) · 7 passages" with a count."""
    text = f"{language_name(code)} ({code})"
    return text if passages is None else f"{text} · {passages} passage{'s' if passages != 1 else ''}"
