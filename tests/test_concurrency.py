"""Readers during a write: searches keep answering, from the old index or the new, never from a
half-written one, while an update runs and swaps in, and while a merge does."""

import threading
import time

from index import build_index, update_index
from polyseek.embedder import HashingEmbedder
from search import Searcher

QUERIES = ["missile shield Russia", "Bucharest rain Monday", "scutul antirachetă", "معاهدة ستارت", "导弹防御"]
THREADS = 8


class SlowEmbedder(HashingEmbedder):
    """The hashing model, slowed down while building, so the swap happens mid-traffic."""

    def embed(self, texts, kind, batch_size=32):
        if kind == "passage":
            time.sleep(0.02)
        return super().embed(texts, kind, batch_size)


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def answers(index_dir, embedder):
    with Searcher.open(index_dir, embedder=embedder) as s:
        return {q: [(h.doc_id, h.text) for h in s.search(q, 5)] for q in QUERIES}


def test_eight_concurrent_searchers_during_an_update(corpus, tmp_path):
    embedder = SlowEmbedder(64)
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=embedder, chunk_tokens=8, batch_size=1)
    old = answers(index_dir, embedder)
    for i in range(12):  # enough new text that the update takes a while
        (corpus / f"extra-{i}.txt").write_text(f"Bulletin {i}: the missile shield talks in Geneva resumed. " * 6,
                                               encoding="utf-8")

    build_index(corpus, tmp_path / "expected", embedder=HashingEmbedder(64), chunk_tokens=8)
    new = answers(tmp_path / "expected", embedder)  # a full build of the edited corpus
    assert new != old
    stop, errors, served = threading.Event(), [], [0] * THREADS
    seen_new = [False] * THREADS

    def reader(n):
        while not stop.is_set():
            try:
                # Each round opens the index in service, as a page does on a new request.
                with Searcher.open(index_dir, embedder=embedder) as s:
                    for q in QUERIES:
                        got = [(h.doc_id, h.text) for h in s.search(q, 5)]
                        if got != old[q] and got != new[q]:
                            errors.append(f"thread {n}: {q!r} -> {got}")
                        if got != old[q]:
                            seen_new[n] = True
                        served[n] += 1
            except Exception as exc:  # any error at all is a failure
                errors.append(f"thread {n}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    # Conditions, not fixed sleeps: on a loaded machine a thread may take a while to get going.
    wait_until(lambda: all(served) or errors)
    before_swap = sum(served)
    update_index(corpus, index_dir, embedder=embedder, batch_size=1, merge=False)
    during = sum(served) - before_swap
    # A merge of the segments while the readers go on: a new version answering exactly the same.
    from index.merge import optimize_index

    at_merge = sum(served)
    assert optimize_index(index_dir) == (2, 1)
    wait_until(lambda: sum(served) > at_merge + THREADS or errors)
    wait_until(lambda: all(seen_new) or errors)
    stop.set()
    for t in threads:
        t.join(timeout=30)

    assert not errors, errors[:5]
    assert before_swap > 0 and during > 0 and all(served)
    assert all(seen_new)  # every reader moved to the new index once it was in service
    assert answers(index_dir, embedder) == new
    print(f"\n{sum(served)} searches by {THREADS} threads, {during} of them while the update ran; 0 errors")
