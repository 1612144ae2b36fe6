"""What one document may cost a build: bytes read, reading time and memory, characters of text,
passages. A document over a budget is skipped with a reason that names the limit and how to
raise it; the rest of the build goes on.

Each limit resolves as: explicit value (a ``python -m index`` flag) > environment variable >
default. The defaults fit news articles and long reports with room to spare (a 300-page report
is about 1 M characters); they exist so that one hostile or broken file cannot stall a build or
exhaust the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Limits:
    #: Bytes of one file (an export counts as one file); read at most this many plus one.
    max_bytes: int = 50 * 1024 * 1024
    #: Characters of text one document (or one export record) may produce.
    max_chars: int = 2_000_000
    #: Passages one document may become.
    max_passages: int = 10_000
    #: Seconds a reader that can spin (PDF, HTML) may take on one file; it runs in a child process.
    read_seconds: float = 60.0
    #: Address space (MiB) of that child process.
    read_memory_mb: int = 2048

    @classmethod
    def resolve(cls, **explicit) -> "Limits":
        """Limits from explicit values (None = not given) > ``POLYSEEK_…`` variables > defaults;
        ValueError naming the variable or value that is not a positive number."""
        values = {}
        for f in fields(cls):
            value = explicit.get(f.name)
            origin = f"{f.name.replace('_', '-')} {value!r}"
            if value is None and os.environ.get(ENV[f.name], "").strip():
                value = os.environ[ENV[f.name]].strip()
                origin = f"{ENV[f.name]}={value!r}"
            if value is None:
                continue
            try:
                number = float(value) if f.type in ("float", float) else int(str(value).replace("_", ""))
            except ValueError:
                raise ValueError(f"{origin} is not a number: give a positive {f.name.replace('_', ' ')}") from None
            if number <= 0:
                raise ValueError(f"{origin} must be positive")
            values[f.name] = number
        return cls(**values)

    def with_(self, **changes) -> "Limits":
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def hint(self, name: str) -> str:
        """"raise it with --max-chars or POLYSEEK_MAX_CHARS"."""
        return f"raise it with --{name.replace('_', '-')} or {ENV[name]}"


#: The environment variable of each limit.
ENV = {
    "max_bytes": "POLYSEEK_MAX_BYTES",
    "max_chars": "POLYSEEK_MAX_CHARS",
    "max_passages": "POLYSEEK_MAX_PASSAGES",
    "read_seconds": "POLYSEEK_READ_SECONDS",
    "read_memory_mb": "POLYSEEK_READ_MEMORY_MB",
}

DEFAULT = Limits()


def over(name: str, limits: Limits, found: str = "") -> str:
    """The skip reason of a document over the limit ``name``: what it was, the limit, the fix."""
    limit = getattr(limits, name)
    what = {
        "max_bytes": ("too large", "bytes", "per file"),
        "max_chars": ("too much text", "characters", "per document"),
        "max_passages": ("too many passages", "passages", "per document"),
        "read_seconds": ("reading took too long", "s", "per file"),
        "read_memory_mb": ("reading needed too much memory", "MiB", "per file"),
    }[name]
    found = f": {found}" if found else ""
    return f"{what[0]}{found}; the limit is {limit:,} {what[1]} {what[2]} ({limits.hint(name)})"
