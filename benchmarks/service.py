"""The HTTP service under load, on 127.0.0.1 only: latency of ``GET /search`` against
``Searcher.search`` in the same process, at the same concurrency, and an update published in
the middle of a run.

    .venv/bin/python benchmarks/service.py [--clients 8] [--searches 320] [--model fake:384]

The index is the seed corpus (data/) with the bundled model, or ``--model``. Three runs of
``--searches`` queries (in several languages, round robin) by ``--clients`` threads:
  1. in process: ``Searcher.search`` called by the threads;
  2. service: ``python -m search.serve`` (uvicorn) answering the threads over HTTP (httpx);
  3. service again, while one client adds an article to the corpus and publishes an update
     through ``POST /index/update`` halfway through: every answer must be a 200 from the old or
     the new version, and the answers after the update must come from the new one.
Prints p50/p99 latency (ms) per run and the ratio service/in-process."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = ["missile defense guarantees", "extinderea tratatului New START", "ضمانات الدفاع الصاروخي",
           "NATO shield in Romania", "garanţii de securitate", "strategic stability talks", "Deveselu base",
           "معاهدة ستارت"]
TOKEN = "bench-token"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_clients(clients: int, searches: int, one_search) -> tuple[list[float], list]:
    """``searches`` calls of ``one_search(i)`` by ``clients`` threads: (latencies ms, results)."""
    latencies, results = [0.0] * searches, [None] * searches

    def task(i):
        started = time.perf_counter()
        results[i] = one_search(i)
        latencies[i] = (time.perf_counter() - started) * 1000

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(task, range(searches)))
    return latencies, results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--searches", type=int, default=320)
    parser.add_argument("--model", default=None, help="default: the bundled model")
    args = parser.parse_args()

    import httpx

    from index import build_index
    from polyseek.embedder import load_embedder
    from search import Searcher

    work = Path(tempfile.mkdtemp(prefix="polyseek-service-"))
    corpus, index_dir = work / "corpus", work / "index"
    shutil.copytree(ROOT / "data", corpus, ignore=shutil.ignore_patterns("README.md"))
    embedder = load_embedder(args.model)
    build_index(corpus, index_dir, embedder=embedder)
    print(f"index: {index_dir} (model {embedder.name}); {args.clients} clients, {args.searches} searches per run, "
          f"{os.cpu_count()} cores\n")

    # 1. In process.
    with Searcher.open(index_dir, embedder=embedder) as searcher:
        for q in QUERIES:  # warm up
            searcher.search(q, k=10)
        local, _ = run_clients(args.clients, args.searches, lambda i: searcher.search(QUERIES[i % len(QUERIES)], k=10))

    # 2. and 3. The service, in its own process.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "POLYSEEK_API_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "search.serve", "--index", str(index_dir), "--port", str(port),
                               "--log-level", "warning"], env=env, cwd=work)
    try:
        base = f"http://127.0.0.1:{port}"
        local_http = threading.local()

        def client() -> httpx.Client:  # one connection per client thread, kept alive
            if not hasattr(local_http, "client"):
                local_http.client = httpx.Client(base_url=base, timeout=60)
            return local_http.client

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the service did not start")

        def http_search(i):  # (status, version that answered, when the request was sent)
            sent = time.monotonic()
            r = client().get("/search", params={"q": QUERIES[i % len(QUERIES)], "k": 10})
            return (r.status_code, r.json().get("version") if r.status_code == 200 else r.text, sent)

        for q in QUERIES:
            httpx.get(f"{base}/search", params={"q": q, "k": 10})
        steady, steady_results = run_clients(args.clients, args.searches, http_search)
        old = steady_results[0][1]

        # 3. An update published halfway through: the clients search until they have made
        # --searches searches and a quarter as many more were asked after the update was published.
        (corpus / "update.txt").write_text("NATO and Russia resume talks on missile defense guarantees in Geneva.",
                                           encoding="utf-8")
        published, during, during_results, lock = {}, [], [], threading.Lock()

        def updater():
            while len(during) < args.searches // 2:
                time.sleep(0.01)
            job = client().post("/index/update", headers={"Authorization": f"Bearer {TOKEN}"}).json()
            while job["status"] == "running":
                time.sleep(0.05)
                job = client().get(job["url"]).json()
            published["job"], published["at"] = job, time.monotonic()

        def searching(c):
            i = c
            while True:
                with lock:
                    after = sum(1 for r in during_results if "at" in published and r[2] > published["at"])
                    if len(during) >= args.searches and ("job" in published and after >= args.searches // 4):
                        return
                started = time.perf_counter()
                result = http_search(i)
                with lock:
                    during.append((time.perf_counter() - started) * 1000)
                    during_results.append(result)
                i += args.clients

        threads = [threading.Thread(target=updater)] + [threading.Thread(target=searching, args=(c,))
                                                        for c in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.terminate()
        server.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)

    job = published["job"]
    new = job.get("summary", {}).get("version")
    errors = [r for r in steady_results + during_results if r[0] != 200]
    versions = {r[1] for r in during_results if r[0] == 200}
    late_old = [r for r in during_results if r[0] == 200 and r[2] > published["at"] + 0.001 and r[1] != new]
    print("| run | searches | errors | p50 ms | p99 ms | p50 / in-process |")
    print("| --- | --- | --- | --- | --- | --- |")
    p50 = percentile(local, 50)
    for name, lat, res in (("Searcher.search in process", local, None), ("GET /search (uvicorn)", steady, steady_results),
                           ("GET /search, update published midway", during, during_results)):
        errs = 0 if res is None else sum(1 for r in res if r[0] != 200)
        print(f"| {name} | {len(lat)} | {errs} | {percentile(lat, 50):.1f} | {percentile(lat, 99):.1f} "
              f"| {percentile(lat, 50) / p50:.2f} |")
    print(f"\nupdate job: {job['status']} ({job.get('error') or (job['summary']['embedded'], 'embedded')}); "
          f"versions answering during run 3: old {old} {sum(1 for r in during_results if r[1] == old)}, "
          f"new {new} {sum(1 for r in during_results if r[1] == new)}, other {len(versions - {old, new})}; "
          f"asked after the update was published but answered by the old version: {len(late_old)}; errors: {len(errors)}")


if __name__ == "__main__":
    main()
