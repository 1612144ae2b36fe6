"""Following the index in service: a long-running process (the HTTP service) answers each request
from the version ``CURRENT`` names at that moment, while requests already running finish on the
version they started with."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

from index.versions import current_version
from polyseek import settings
from polyseek.errors import IndexFormatError
from search.searcher import OPEN_ATTEMPTS, Searcher


class _Open:
    __slots__ = ("searcher", "users", "retired")

    def __init__(self, searcher: Searcher):
        self.searcher, self.users, self.retired = searcher, 0, False


class IndexFollower:
    """One open :class:`Searcher` per version in use. ``with follower.searcher() as s:`` lends the
    searcher of the version in service; a version replaced by a newer one is closed when the last
    request using it is done. ``embedder``: the model to encode queries with (tests; else the
    manifest's model, loaded once per process)."""

    def __init__(self, index_dir=None, embedder=None):
        self.index_dir = settings.index_dir(index_dir)
        self.embedder = embedder
        self._open: dict[Path, _Open] = {}
        self._lock = threading.Lock()
        self._opening = threading.Lock()  # one version opened at a time

    @contextmanager
    def searcher(self):
        entry = self._acquire()
        try:
            yield entry.searcher
        finally:
            with self._lock:
                entry.users -= 1
                if entry.retired and entry.users == 0:
                    entry.searcher.close()

    def _acquire(self) -> _Open:
        attempt = 0
        while True:
            folder = current_version(self.index_dir)  # IndexNotFoundError says how to build one
            with self._lock:
                entry = self._open.get(folder)
                if entry is not None:
                    entry.users += 1
                    return entry
            with self._opening:
                with self._lock:
                    entry = self._open.get(folder)
                    if entry is not None:  # opened by another request meanwhile
                        entry.users += 1
                        return entry
                try:
                    entry = _Open(Searcher.open_version(folder, self.embedder))
                except IndexFormatError:
                    # Replaced and removed between reading CURRENT and opening: read it again.
                    attempt += 1
                    if attempt >= OPEN_ATTEMPTS or current_version(self.index_dir) == folder:
                        raise
                    continue
                with self._lock:
                    entry.users += 1
                    if current_version(self.index_dir) != folder:
                        entry.retired = True  # already replaced: serve this request, then close
                        return entry
                    for old in self._open.values():  # out of service: closed after its last request
                        old.retired = True
                        if old.users == 0:
                            old.searcher.close()
                    self._open = {folder: entry}
                    return entry

    def close(self) -> None:
        with self._lock:
            for entry in self._open.values():
                entry.retired = True
                if entry.users == 0:
                    entry.searcher.close()
            self._open.clear()
