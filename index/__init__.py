"""Polyseek's build side: corpus → documents → passages → vectors → index.

Modules, in the order data flows through them: ``corpus`` (reading files), ``language``,
``chunking``, ``builder`` (embedding and orchestration), ``margins`` and ``stories`` (which
passages in different languages say the same, and the stories they make), then the on-disk
format: ``store`` (SQLite), ``vectors`` (FAISS), ``manifest`` and ``versions`` (atomic switch).
"""

from index.builder import BuildSummary, build_index, update_index, write_index

__all__ = ["build_index", "update_index", "write_index", "BuildSummary"]
