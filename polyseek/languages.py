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


#: Codes that BCP 47 deprecated, as older systems still write them.
_DEPRECATED = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}


def normalize_tag(tag: str) -> str:
    """A declared language as the ISO 639-1 code the index stores: BCP 47 tags keep their
    language subtag (``pt-BR`` → ``pt``, `` EN `` → ``en``, ``zh_Hant_TW`` → ``zh``), ISO 639-2/3
    codes with a two-letter equivalent become it (``deu`` → ``de``), others stay three letters
    (``fil``). "" and "und" mean "identify it": "". ValueError for anything that is not a
    language code."""
    text = str(tag or "").strip()
    primary = text.replace("_", "-").split("-", 1)[0].lower()
    if not text or primary == "und":
        return ""
    if not primary:
        raise ValueError(f"language tag {text[:40]!r} has no language subtag: write it like 'en' or 'pt-BR'")
    code = _iso639(primary) if len(primary) <= 3 and primary.isascii() and primary.isalpha() else None
    if code is None:
        raise ValueError(f"language tag {text[:40]!r} is not an ISO 639 language: write a code such as 'en', "
                         "'pt-BR' or 'deu', or leave it out to have the language identified")
    return code


@lru_cache(maxsize=1024)
def _iso639(primary: str) -> str | None:
    import pycountry

    primary = _DEPRECATED.get(primary, primary)
    found = None
    if len(primary) == 2:
        found = pycountry.languages.get(alpha_2=primary)
    elif len(primary) == 3:
        found = pycountry.languages.get(alpha_3=primary)
        if found is None:
            try:
                found = pycountry.languages.lookup(primary)  # ISO 639-2/B codes: "ger", "fre"
            except LookupError:
                found = None
    return (getattr(found, "alpha_2", None) or found.alpha_3) if found is not None else None


def language_codes(langs) -> list[str]:
    """The language codes a user gave (a code, or a list whose items may be comma-separated),
    checked, lower-cased, sorted, each once; QueryError for anything not an ISO 639 code."""
    import re

    from polyseek.errors import QueryError

    if isinstance(langs, str):
        langs = [langs]
    codes = []
    for value in langs or []:
        for code in str(value).split(","):
            code = code.strip().lower()
            if not code:
                continue
            if not re.fullmatch(r"[a-z]{2,3}", code):
                raise QueryError(f"language {code!r} is not an ISO 639-1 code such as 'en', 'ro' or 'ar'")
            codes.append(code)
    return sorted(set(codes))
