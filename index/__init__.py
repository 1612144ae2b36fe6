"""Polyseek's build side: corpus → documents → passages → vectors → index.

Modules, in the order data flows through them: ``corpus`` (reading files), ``catalog`` (what
changed since the last version), ``language``, ``chunking``, ``builder`` (embedding and
orchestration), then the on-disk format: ``segment`` (one immutable segment: ``store`` SQLite,
``vectors`` FAISS, ``lexical`` BM25), ``commit`` (a version: its segments and deletions),
``merge`` (merge policy, optimize), ``margins`` and ``stories`` (which passages in different
languages say the same, and the stories they make, computed for each version by
``version_stories``), ``manifest`` and ``versions`` (atomic switch).
"""

from index.builder import BuildSummary, build_index, update_index, write_index
from index.merge import optimize_index

__all__ = ["build_index", "update_index", "write_index", "optimize_index", "BuildSummary"]
