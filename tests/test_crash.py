"""Crash safety: a build or update killed with SIGKILL at a random moment leaves the previous
index answering exactly as before, and the next update completes normally."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from index import build_index, update_index
from index.versions import current_version
from polyseek.embedder import HashingEmbedder
from search import Searcher
from tests.conftest import ROOT

TRIALS = 20
QUERIES = ["missile shield Russia", "Bucharest rain", "scutul antirachetă", "معاهدة ستارت", "Bulletin Geneva talks"]

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def answers(index_dir):
    with Searcher.open(index_dir, embedder=HashingEmbedder(64)) as s:
        return {q: [(h.doc_id, h.text, round(h.score, 5)) for h in s.search(q, 5, mode="hybrid")] for q in QUERIES}


def leftovers(index_dir):
    return sorted(p.name for p in index_dir.iterdir() if p.name.startswith((".build-", "v-")))


def test_sigkill_at_random_moments_never_costs_the_index(corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=HashingEmbedder(64), chunk_tokens=16)
    rng = random.Random(20261124)
    env = dict(os.environ, PYTHONHASHSEED="0")
    for i in range(60):
        (corpus / f"bulk-{i:02d}.txt").write_text(f"Bulletin {i}: the missile shield talks in Geneva. " * 30, encoding="utf-8")
    cmd = [sys.executable, "-m", "index", "update", str(corpus), "--index", str(index_dir)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    # How long an update like the trials' (one document changed) takes, from process start
    # (imports included): the median of three.
    durations = []
    for i in range(3):
        (corpus / "bulk-59.txt").write_text(f"Timing {i}: Geneva talks went on. " * 30, encoding="utf-8")
        started = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
        durations.append(time.monotonic() - started)
    duration = sorted(durations)[1]
    stages: dict[str, int] = {}

    killed_before_publish = killed_after_publish = 0
    for trial in range(TRIALS):
        # Change the corpus, so each update has work to do and a different result.
        (corpus / f"bulk-{trial % 60:02d}.txt").write_text(f"Trial {trial}: Geneva talks went on. " * 30, encoding="utf-8")
        before_version, before = current_version(index_dir), answers(index_dir)
        log = tmp_path / f"trial-{trial}.log"
        with open(log, "w") as err:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
            # Kill moments spread over the whole update (stratified, so no run bunches them).
            time.sleep((0.1 + 0.95 * (trial + rng.random()) / TRIALS) * duration)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        # the progress bars say how far the process got
        shown = [stage for stage in ("reading", "chunking", "embedding", "writing") if stage in log.read_text()]
        stage = shown[-1] if shown else "starting"
        stages[stage] = stages.get(stage, 0) + 1
        after_version = current_version(index_dir)
        if after_version == before_version:
            killed_before_publish += 1
            assert answers(index_dir) == before, f"trial {trial}: answers changed after a crash"
        else:  # the kill came after the new version was in service: that version is complete
            killed_after_publish += 1
        # The next writer is not locked out, cleans up, and completes.
        summary = update_index(corpus, index_dir, embedder=HashingEmbedder(64))
        assert summary.documents_indexed == 65
        assert leftovers(index_dir) == [current_version(index_dir).name]
        with Searcher.open(index_dir, embedder=HashingEmbedder(64)) as s:
            assert s.document_text(f"bulk-{trial % 60:02d}.txt").startswith(f"Trial {trial}:")
    print(f"\n{TRIALS} SIGKILLs ({stages}): {killed_before_publish} before the new version was in service "
          f"(old index intact), {killed_after_publish} after; every next update completed")
    assert killed_before_publish >= TRIALS // 2
    assert len(stages) >= 2, stages  # the kills landed in several stages of the work


def test_sigkill_during_merges_never_costs_the_index(corpus, tmp_path):
    """``python -m index optimize`` (a merge of every segment) killed at random moments: the
    previous version answers exactly as before, and the next update completes."""
    from index.manifest import read_manifest

    index_dir = tmp_path / "index"
    fake = HashingEmbedder(64)
    build_index(corpus, index_dir, embedder=fake, chunk_tokens=16)
    for i in range(40):
        (corpus / f"bulk-{i:02d}.txt").write_text(f"Bulletin {i}: the missile shield talks in Geneva. " * 30, encoding="utf-8")
    update_index(corpus, index_dir, embedder=fake, merge=False)
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = [sys.executable, "-m", "index", "optimize", "--index", str(index_dir)]

    def more_segments(trial):  # two small updates: three segments or more to merge
        for j in range(2):
            (corpus / f"bulk-{(2 * trial + j) % 40:02d}.txt").write_text(
                f"Trial {trial}.{j}: Geneva talks went on. " * 30, encoding="utf-8")
            update_index(corpus, index_dir, embedder=fake, merge=False)

    durations = []
    for i in range(3):
        more_segments(100 + i)
        started = time.monotonic()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
        durations.append(time.monotonic() - started)
    duration = sorted(durations)[1]
    rng = random.Random(20261125)
    before_publish = 0
    for trial in range(TRIALS):
        more_segments(trial)
        before_version, before = current_version(index_dir), answers(index_dir)
        assert len(read_manifest(before_version).segments) >= 2
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep((0.1 + 0.95 * (trial + rng.random()) / TRIALS) * duration)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        if current_version(index_dir) == before_version:
            before_publish += 1
            assert answers(index_dir) == before, f"trial {trial}: answers changed after a crash"
        else:  # the merged version is complete and answers as the segments did
            assert len(read_manifest(current_version(index_dir)).segments) == 1
            assert answers(index_dir) == before
        (corpus / f"bulk-{trial % 40:02d}.txt").write_text(f"After {trial}: talks ended. " * 30, encoding="utf-8")
        summary = update_index(corpus, index_dir, embedder=fake)
        assert summary.documents_indexed == 45
        assert leftovers(index_dir) == [current_version(index_dir).name]
        with Searcher.open(index_dir, embedder=fake) as s:
            assert s.document_text(f"bulk-{trial % 40:02d}.txt").startswith(f"After {trial}:")
    print(f"\n{TRIALS} SIGKILLs during merges: {before_publish} before the merged version was in service")
    assert before_publish >= TRIALS // 3
