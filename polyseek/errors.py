"""Domain exceptions. Libraries raise these; only the CLIs and ``app.py`` turn them into
messages for people. Each message names the value, the rule and the fix."""


class PolyseekError(Exception):
    """Base class of every error Polyseek raises on purpose."""


class IndexNotFoundError(PolyseekError):
    """No index at the given folder."""


class IndexFormatError(PolyseekError):
    """An index exists but cannot be used: unknown format version, corrupt or inconsistent files."""


class ModelMismatchError(PolyseekError):
    """The model offered for queries is not the one that built the index."""


class ModelLoadError(PolyseekError):
    """A model name or path could not be loaded."""


class QueryError(PolyseekError, ValueError):
    """The query or its options are not acceptable (empty text, k out of range, ...)."""


class CorpusError(PolyseekError):
    """The corpus folder is missing or holds nothing that can be indexed."""


class IndexLockedError(PolyseekError):
    """Another process is writing this index."""
