"""How fast the page answers, as a person sees it: `streamlit run app.py` on the seed index,
driven by headless Chromium on the same machine.

For each model-thread setting (POLYSEEK_THREADS) it starts a server, asks a fixed list of
queries twice (the first round fills the sentence cache, the second is warm), and reads from the
page the times it prints (search; best sentences) and, inside the browser (a MutationObserver,
performance.now()), the time from Enter until the results are in the page and until every best
sentence is marked. Figures are medians; the ratio compares the settings within one run.

    .venv/bin/python benchmarks/page.py                 # threads 1 and 2
    .venv/bin/python benchmarks/page.py --threads 1 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [
    "missile defense guarantees",
    "extinderea tratatului New START",
    "ضمانات الدفاع الصاروخي",
    "Lukashenko and Putin discuss security",
    "Iskander missiles in Kaliningrad",
    "negocieri la Geneva cu Blinken",
]
OBSERVE = """() => { window.__seen = {};
  new MutationObserver(() => { for (const el of document.querySelectorAll('p.ps-summary')) {
      const key = el.dataset.query + '|' + el.dataset.state;
      if (!(key in window.__seen)) window.__seen[key] = performance.now(); } })
    .observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true}); }"""
SUMMARY = re.compile(r"search (\d+) ms · best sentences (\d+) ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2, help="passes over the queries; the first is cold")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="polyseek-page-"))
    index_dir = tmp / "index"
    subprocess.run([sys.executable, "-m", "index", "build", str(ROOT / "data"), "--index", str(index_dir), "-q"],
                   check=True, cwd=ROOT)
    print(f"cores: {os.cpu_count()}; queries: {len(QUERIES)}; rounds: {args.rounds} (round 1 cold)\n")
    print("threads | round | search ms (page) | best sentences ms (page) | Enter → results shown ms | Enter → all marked ms")
    print("---|---|---|---|---|---")
    warm = {}
    for threads in args.threads:
        rows = run(index_dir, threads, args.rounds, args.chromium)
        for rnd, (search, best, shown, marked) in enumerate(rows, 1):
            print(f"{threads} | {rnd} | {statistics.median(search):.0f} | {statistics.median(best):.0f} | "
                  f"{statistics.median(shown):.0f} | {statistics.median(marked):.0f}")
        warm[threads] = statistics.median(rows[-1][3])
    if len(warm) > 1:
        base = min(warm)
        print("\nwarm Enter → all marked, ratio to threads=%d: " % base
              + ", ".join(f"threads {t}: {warm[t] / warm[base]:.2f}" for t in warm))
    shutil.rmtree(tmp, ignore_errors=True)


def run(index_dir: Path, threads: int, rounds: int, chromium: str):
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, POLYSEEK_INDEX=str(index_dir), POLYSEEK_CORPUS=str(ROOT / "data"),
               POLYSEEK_THREADS=str(threads))
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read()
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.set_default_timeout(120_000)
            page.goto(url)
            box = page.get_by_placeholder("Ask in any language")
            box.wait_for()
            page.evaluate(OBSERVE)
            rows = []
            for rnd in range(rounds):
                search, best, shown, marked = [], [], [], []
                for query in QUERIES:
                    box.fill(query)
                    page.evaluate("window.__seen = {}")
                    started = page.evaluate("performance.now()")
                    box.press("Enter")
                    done = page.locator(f'.ps-summary[data-state="done"]'
                                        f'[data-query={json.dumps(query, ensure_ascii=False)}]')
                    done.wait_for()
                    seen = page.evaluate("window.__seen")
                    first = min(v for k, v in seen.items() if k.startswith(query + "|"))
                    shown.append(first - started)
                    marked.append(seen[query + "|done"] - started)
                    m = SUMMARY.search(done.inner_text())
                    search.append(int(m.group(1)))
                    best.append(int(m.group(2)))
                rows.append((search, best, shown, marked))
            browser.close()
        return rows
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
