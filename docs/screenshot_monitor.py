"""Makes docs/page-monitor.png: the page's watch list (with a "1 new" badge) and the timeline of a
query, in headless Chromium (as tests/test_browser.py drives it), with the bundled model.

    .venv/bin/python docs/screenshot_monitor.py

The corpus is the four demo articles of data/ as a JSONL export with *illustrative* publication
dates (the articles' own dates are not in the files). Three are indexed, a watch is saved, the
fourth is added by an update: the watch reports it as new."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
QUERY = "missile defense guarantees"
DATES = {"000_d1e05861c7d0cafb.txt": "2026-11-03", "001_1343e8bf4947fd03.txt": "2026-11-02",
         "002_f0b8fe8fdb47aa20.txt": "2026-11-05", "003_6688a4da4cf28e67.txt": "2026-11-05"}
LATE = "002_f0b8fe8fdb47aa20.txt"  # added by the update
THRESHOLD = 1.0


def export(corpus: Path, names) -> None:
    with open(corpus / "news.jsonl", "w", encoding="utf-8") as out:
        for name in names:
            text = (ROOT / "data" / name).read_text(encoding="utf-8")
            out.write(json.dumps({"id": name, "title": text.split("\n", 1)[0][:90], "text": text,
                                  "date": DATES[name], "source": "demo"}, ensure_ascii=False) + "\n")


def main() -> None:
    from playwright.sync_api import sync_playwright

    from index import build_index, update_index
    from index.watches import WatchStore
    from polyseek.embedder import load_embedder

    work = Path(tempfile.mkdtemp(prefix="polyseek-shot-"))
    corpus, index_dir = work / "corpus", work / "index"
    corpus.mkdir()
    embedder = load_embedder()
    export(corpus, [n for n in DATES if n != LATE])
    build_index(corpus, index_dir, embedder=embedder)
    # Four articles on one subject: nothing stands out by the default 3.5 standard deviations
    # (that needs a corpus of many subjects), so the demo watches and timeline use 1.
    WatchStore(index_dir).add("garanţii de securitate NATO", langs=["ro"], threshold=THRESHOLD)
    WatchStore(index_dir).add(QUERY, threshold=THRESHOLD)
    export(corpus, list(DATES))
    print(update_index(corpus, index_dir, embedder=embedder).to_text())

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, POLYSEEK_INDEX=str(index_dir), POLYSEEK_CORPUS=str(corpus))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
                                        args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(180_000)
            page.goto(url)
            box = page.get_by_placeholder("Ask in any language")
            box.fill(QUERY)
            box.press("Enter")
            page.locator('.ps-summary[data-state="done"]').wait_for()
            page.get_by_text("Timeline", exact=True).click()
            box = page.get_by_role("spinbutton", name="Stands out by (standard deviations)")
            box.fill(str(THRESHOLD))
            box.press("Enter")
            try:
                page.locator("[data-testid='stVegaLiteChart']").first.wait_for(timeout=60_000)
            except Exception:
                page.screenshot(path=str(work.parent / "polyseek-shot-failed.png"))
                raise
            time.sleep(3)  # charts finish drawing
            page.get_by_text("Watches", exact=True).scroll_into_view_if_needed()
            out = ROOT / "docs" / "page-monitor.png"
            page.screenshot(path=str(out))
            browser.close()
        print(f"wrote {out}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
