"""One bad file or record never stops a build, hangs it, leaks data or breaks search: a corpus
holding every hostile case of tests/hostile_corpus.py is built in a child process (a hang
fails the test at its timeout instead of stalling the suite), once with small limits and once
with the defaults. Every document is indexed or skipped with the expected reason, memory stays
under the stated bounds, and search with "also reported in" works afterwards."""

import json
import re
import sqlite3
import subprocess
import sys

import pytest

from index.limits import Limits
from index.versions import current_version
from search import Searcher
from tests.conftest import ROOT
from tests.hostile_corpus import CASES, SECRET, make_corpus

#: Small budgets: every case trips its limit quickly.
SMALL = Limits(max_bytes=2 * 1024 * 1024, max_chars=100_000, max_passages=50, read_seconds=3.0)
#: Stated bounds (a 2-core machine shared with other test runs): a hang fails at the timeout.
SMALL_TIMEOUT_S, DEFAULTS_TIMEOUT_S = 180, 300
#: Peak memory of the build process (it holds the largest document's text, at most max_chars,
#: besides Python, numpy, FAISS and SQLite), and of the reader process (capped by RLIMIT_AS).
BUILD_RSS_MB, READER_RSS_MB = 1024, Limits().read_memory_mb

BUILD = """
import json, resource, sys, time
from index import build_index
from index.limits import Limits
from index.readers.process import shared
limits = Limits(**json.loads(sys.argv[3])) if sys.argv[3] != "defaults" else None
started = time.perf_counter()
s = build_index(sys.argv[1], sys.argv[2], "fake:64", limits=limits, chunk_tokens=64)
seconds = time.perf_counter() - started
shared().close()  # the reader process is waited for, so its peak memory counts as a child's
# This process's own peak (VmHWM). Not ru_maxrss: Linux carries the peak of the process that
# forked it (pytest, which may hold a real model by now) over the exec into this one.
peak_kib = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"read": s.documents_read, "indexed": s.documents_indexed, "seconds": seconds,
                  "skipped": [[k.doc_id, k.reason] for k in s.skipped],
                  "rss_mb": peak_kib / 1024,
                  "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def build_in_child(corpus, index, limits: Limits | None, timeout: float) -> dict:
    arg = json.dumps(limits.__dict__) if limits else "defaults"
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("POLYSEEK_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", BUILD, str(corpus), str(index), arg], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    from tests.conftest import segment_dir

    store = sqlite3.connect(segment_dir(index) / "store.sqlite")
    out["indexed_ids"] = [r[0] for r in store.execute("SELECT doc_id FROM documents")]
    store.close()
    return out


def check_outcomes(expected, result) -> None:
    """Every expected outcome happened, and nothing else: in = indexed + skipped."""
    assert result["read"] == result["indexed"] + len(result["skipped"])
    indexed, skipped = list(result["indexed_ids"]), [tuple(s) for s in result["skipped"]]
    assert len(indexed) == result["indexed"]
    for doc_id, pattern in expected:
        if pattern is None:
            assert doc_id in indexed, (doc_id, "not indexed", [s for s in skipped if s[0] == doc_id])
            indexed.remove(doc_id)
        else:
            match = next((s for s in skipped if s[0] == doc_id and re.search(pattern, s[1])), None)
            assert match, (doc_id, pattern, [s for s in skipped if s[0] == doc_id], doc_id in indexed)
            skipped.remove(match)
    assert not indexed and not skipped, ("unexpected outcomes", indexed, skipped)


def check_search(index, fake) -> None:
    with Searcher.open(index, embedder=fake) as searcher:
        assert "pt" in searcher.languages and all(re.fullmatch(r"[a-z]{2,3}", c) for c in searcher.languages)
        for query in ("border security measures", "missile shield treaty", "Emoji cut in half", SECRET):
            for mode in ("dense", "hybrid"):
                hits = searcher.search(query, k=10, mode=mode)
                assert hits
                for hit in hits:
                    assert SECRET not in hit.text
                    searcher.same_story(hit)  # "also reported in" on every card, as the page asks
        assert {h.doc_id for h in searcher.search("segurança na fronteira", k=5, langs=["pt"])} == {"langs.jsonl#br"}


def test_cases_are_a_generator_with_one_function_each():
    assert len({c.name for c in CASES}) == len(CASES) >= 15


def test_hostile_corpus_with_small_limits(tmp_path, fake):
    expected = make_corpus(tmp_path / "corpus", tmp_path / "outside", SMALL)
    result = build_in_child(tmp_path / "corpus", tmp_path / "index", SMALL, SMALL_TIMEOUT_S)
    check_outcomes(expected, result)
    reasons = dict((d, r) for d, r in result["skipped"])
    # Each budget's reason names the limit and how to raise it.
    assert "--read-seconds or POLYSEEK_READ_SECONDS" in reasons["bomb-time.pdf"]
    assert "the limit is 100,000 characters per document (raise it with --max-chars or POLYSEEK_MAX_CHARS)" in reasons["bomb-text.pdf"]
    assert "--max-bytes or POLYSEEK_MAX_BYTES" in reasons["big.txt"]
    assert "the limit is 50 passages per document (raise it with --max-passages or POLYSEEK_MAX_PASSAGES)" in reasons["long.txt"]
    assert result["rss_mb"] < BUILD_RSS_MB and result["children_rss_mb"] < READER_RSS_MB, result
    check_search(tmp_path / "index", fake)


def test_hostile_corpus_with_the_default_limits(tmp_path, fake):
    expected = make_corpus(tmp_path / "corpus", tmp_path / "outside", Limits(), defaults_only=True)
    result = build_in_child(tmp_path / "corpus", tmp_path / "index", None, DEFAULTS_TIMEOUT_S)
    check_outcomes(expected, result)
    print(f"default limits: {result['seconds']:.1f} s, build {result['rss_mb']:.0f} MiB, "
          f"reader {result['children_rss_mb']:.0f} MiB")
    assert result["rss_mb"] < BUILD_RSS_MB and result["children_rss_mb"] < READER_RSS_MB, result
    check_search(tmp_path / "index", fake)
