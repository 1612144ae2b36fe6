"""The command lines, run as a user runs them (subprocesses, the hashing model for speed)."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def run(*args, env=None):
    env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_build_then_search_in_json_and_text(corpus, tmp_path):
    index_dir = tmp_path / "idx"
    built = run("index", "build", str(corpus), "--index", str(index_dir), "--model", "fake:64", "--json")
    assert built.returncode == 0, built.stderr
    summary = json.loads(built.stdout)
    assert summary["documents_indexed"] == 5 and summary["passages"] >= 5
    assert "embedding" in built.stderr  # the progress bar

    found = run("search", "Deveselu scutul antirachetă", "-k", "2", "--lang", "ro,ar", "--json",
                env={"POLYSEEK_INDEX": str(index_dir)})
    assert found.returncode == 0, found.stderr
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["doc_id"] == "ro/deveselu.txt"
    assert set(rows[0]) >= {"passage_id", "doc_id", "title", "lang", "text", "score", "start", "end"}

    human = run("search", "missile shield", "--index", str(index_dir), "-k", "1")
    assert human.returncode == 0 and "1. [" in human.stdout and "passages in" in human.stdout

    grouped = run("search", "missile shield", "--index", str(index_dir), "-k", "50", "--per-document", "--json")
    docs = [json.loads(line)["doc_id"] for line in grouped.stdout.splitlines()]
    assert grouped.returncode == 0 and len(docs) == len(set(docs)) == 5


def test_errors_are_one_clear_line_and_exit_2(tmp_path, corpus):
    missing = run("search", "anything", "--index", str(tmp_path / "none"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: no index at") and "python -m index build" in missing.stderr
    assert "Traceback" not in missing.stderr

    run("index", "build", str(corpus), "--index", str(tmp_path / "i"), "--model", "fake:64", "-q")
    empty = run("search", "   ", "--index", str(tmp_path / "i"))
    assert empty.returncode == 2 and "query is empty" in empty.stderr
    bad_k = run("search", "x", "-k", "0", "--index", str(tmp_path / "i"))
    assert bad_k.returncode == 2 and "out of range" in bad_k.stderr
    note = run("search", "missile", "--lang", "fi", "--index", str(tmp_path / "i"))
    assert note.returncode == 0 and "no passages in fi" in note.stderr

    no_corpus = run("index", "build", str(tmp_path / "nope"), "--index", str(tmp_path / "j"), "--model", "fake:8")
    assert no_corpus.returncode == 2 and "does not exist" in no_corpus.stderr
