"""End to end in a real browser: `streamlit run app.py` on a free localhost port, on a copy of
the seed index built with the bundled model, driven by headless Chromium through Playwright.

Chromium is Debian's (``make test`` installs it where it is missing). Without it the test is
skipped on a developer's machine, and fails in CI, where it must run."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import DATA, ROOT

pytestmark = [pytest.mark.model, pytest.mark.browser]
QUERY = "missile defense guarantees"
STARTUP_SECONDS = 120


def chromium_path() -> str:
    path = os.environ.get("POLYSEEK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing in CI: `make test` installs Debian's chromium; this test must run there")
    pytest.skip("no Chromium here: `make browser` installs Debian's chromium (as root)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(seed_index, tmp_path_factory):
    """A copy of the seed index and corpus (the page may rebuild and upload), and the server."""
    chromium = chromium_path()
    root = tmp_path_factory.mktemp("site")
    index_dir, corpus = root / "index", root / "corpus"
    shutil.copytree(seed_index, index_dir)
    shutil.copytree(DATA, corpus)
    port = free_port()
    env = dict(os.environ, POLYSEEK_INDEX=str(index_dir), POLYSEEK_CORPUS=str(corpus))
    log = open(root / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, root / "streamlit.log")
        yield {"url": url, "chromium": chromium, "root": root, "corpus": corpus, "index": index_dir}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {STARTUP_SECONDS} s:\n{log_path.read_text()}")


@pytest.fixture
def page(site):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=site["chromium"], args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(90_000)
        page.goto(site["url"])
        yield page
        browser.close()


def ask(page, query: str):
    box = page.get_by_placeholder("Ask in any language")
    box.fill(query)
    box.press("Enter")
    done = page.locator(f'.ps-summary[data-state="done"][data-query={json.dumps(query, ensure_ascii=False)}]')
    done.wait_for()
    return done.inner_text()


def test_search_across_languages_in_a_real_browser(site, page):
    summary = ask(page, QUERY)
    cards = page.locator(".ps-hit")
    badges = {cards.nth(i).locator(".ps-head .ps-badge").inner_text() for i in range(cards.count())}
    assert len(badges) >= 2, badges  # results in at least two languages
    assert "Arabic · ar" in badges or "Romanian · ro" in badges, badges
    best = page.locator(".ps-hit mark.ps-best")
    assert best.count() == cards.count() and best.first.is_visible()
    assert len(best.first.inner_text()) > 20
    arabic = page.locator('.ps-hit > .ps-text[dir="rtl"][lang="ar"]')
    assert arabic.count() == sum(1 for i in range(cards.count()) if "Arabic" in cards.nth(i).locator(".ps-head").inner_text())
    shot = site["root"] / "search.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}\nsummary: {summary}")

    page.get_by_text("Whole document:").first.click()
    assert page.locator(".ps-doc mark.ps-passage").first.is_visible()


def test_filter_rebuild_and_upload_in_a_real_browser(site, page):
    page.get_by_text("One passage per document").click()
    from playwright.sync_api import expect

    summary = ask(page, "extinderea tratatului New START")
    expect(page.locator(".ps-file")).to_have_count(4)  # (waits for the page to draw every card)
    files = [t for t in page.locator(".ps-file").all_inner_texts()]
    assert len(files) == len(set(files)) == 4 and summary.startswith("4 documents")

    page.get_by_role("button", name="Rebuild index").click()
    page.get_by_text("Indexed 4 of 4 documents").wait_for()

    page.locator('input[type="file"]').set_input_files(files=[{
        "name": "stire.txt", "mimeType": "text/plain",
        "buffer": "Guvernul de la Chișinău a anunțat un nou pachet de măsuri economice.".encode()}])
    page.get_by_role("button", name="Add 1 file(s)").click()
    page.get_by_text("Indexed 5 of 5 documents").wait_for()
    assert (site["corpus"] / "stire.txt").is_file()
    page.locator(".ps-summary[data-state=done]").wait_for()  # the page has re-run the search on the new index
    assert page.locator('table.ps-status tr:has(th:text-is("Documents")) td').inner_text() == "5"
    page.screenshot(path=str(site["root"] / "after-upload.png"))


def test_a_translation_makes_a_story_the_page_shows(site, page):
    """Upload a Romanian translation of the English NATO article's opening: the rebuilt index
    links them, the result card says so and opens the story, and the Stories view lists it."""
    from playwright.sync_api import expect

    from tests.conftest import FIXTURES

    page.locator('input[type="file"]').set_input_files(files=[{
        "name": "nato_ro.txt", "mimeType": "text/plain", "buffer": (FIXTURES / "nato_ro.txt").read_bytes()}])
    page.get_by_role("button", name="Add 1 file(s)").click()
    page.get_by_text("Added to").wait_for()
    page.locator(".ps-status").wait_for()
    ask(page, "NATO chief calls a pre-emptive strike threat unjustified")
    card = page.locator(".ps-hit").filter(has_text="001_1343e8bf4947fd03.txt").first
    also = card.locator(".ps-also")
    assert "Also reported in" in also.inner_text() and "Romanian" in also.inner_text()
    page.get_by_role("button", name="Open the story: 2 documents in English, Romanian").first.click()
    columns = page.locator(".ps-story-lang")
    expect(columns).to_have_count(2)  # (waits: the page draws the columns one by one)
    assert {columns.nth(i).get_attribute("data-lang") for i in range(2)} == {"en", "ro"}
    assert page.get_by_text("Never covered in Arabic").is_visible()
    page.screenshot(path=str(site["root"] / "story.png"), full_page=False)

    page.get_by_role("button", name="All stories").click()
    stories = page.locator(".ps-story")
    stories.first.wait_for()
    expect(stories).to_have_count(1)
    assert "2 documents" in stories.first.inner_text()
