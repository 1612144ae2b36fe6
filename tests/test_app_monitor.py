"""The page's watches and timeline (AppTest, hashing embedder): save a search as a watch, see a
badge "N new" after a rebuild finds something, open the watch, draw a timeline per language."""

import json
import re

import pytest
from streamlit.testing.v1 import AppTest

from index import build_index
from index.watches import DEFAULT_THRESHOLD, WatchStore
from polyseek.languages import language_name
from search import Searcher
from search.timeline import timeline
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
RECORDS = [
    {"id": "r1", "title": "Shield talks", "lang": "en", "date": "2026-11-02",
     "text": "Moscow wants legally binding guarantees about the missile shield in Romania."},
    {"id": "r2", "title": "Shield again", "lang": "en", "date": "2026-11-04",
     "text": "Moscow again wants guarantees about the missile shield."},
    {"id": "r3", "title": "Scutul", "lang": "ro", "date": "2026-11-03",
     "text": "Moscova cere garanţii privind scutul antirachetă de la Deveselu, missile shield guarantees."},
]


@pytest.fixture
def site(tmp_path, corpus, monkeypatch, fake):
    (corpus / "news.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS),
                                       encoding="utf-8")
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=fake, chunk_tokens=32)
    monkeypatch.setenv("POLYSEEK_INDEX", str(index_dir))
    monkeypatch.setenv("POLYSEEK_CORPUS", str(corpus))
    return index_dir, corpus


def run(at_or_widget) -> AppTest:
    """Run the page (an AppTest, or a widget after an interaction) and check it raised nothing."""
    at = at_or_widget.run()
    assert not at.exception, at.exception
    return at


def badges(at: AppTest) -> list[str]:
    return [m.value for m in at.sidebar.markdown if "badge[" in m.value]


def test_save_a_search_as_a_watch_and_see_new_matches(site):
    index_dir, corpus = site
    at = run(AppTest.from_file(APP, default_timeout=60))
    assert "No watches yet" in " ".join(c.value for c in at.sidebar.caption)
    at.text_input(key="query").input("missile shield guarantees")
    at = run(at.multiselect(key="langs").set_value(["en"]))
    at = run(at.button(key="save_watch").click())
    [watch] = WatchStore(index_dir).list()
    assert [m.value for m in at.sidebar.success] == [f"Watch {watch.watch_id} saved: each rebuild now records its new "
                                                     "matches here, with a badge."]
    assert (watch.query, watch.langs, watch.mode) == ("missile shield guarantees", ["en"], "auto")
    assert at.sidebar.button(key=f"watch-{watch.watch_id}").label == "missile shield guarantees · en"
    assert badges(at) == []

    # A rebuild (the sidebar's button) adds an English article on the subject: one new match.
    (corpus / "new.txt").write_text("NATO answers Moscow: the missile shield needs no new guarantees.", encoding="utf-8")
    at = run(at.sidebar.button(key="rebuild").click())
    flashed = [re.sub(r"\\(.)", r"\1", s.value) for s in at.success]  # the page escapes Markdown
    assert any("Watches: 1 new matches" in s for s in flashed), flashed
    assert badges(at) == [":red-badge[1 new]"]

    at = run(at.sidebar.button(key=f"watch-{watch.watch_id}").click())
    assert at.subheader[0].value == "Watch: missile shield guarantees"
    shown = " ".join(h.value for h in at.html if "ps-match" in h.value)
    assert "NATO answers Moscow" in shown and '<span class="ps-new">new</span>' in shown
    at = run(at)  # seen: the badge is gone
    assert badges(at) == [] and WatchStore(index_dir).get(watch.watch_id).new == 0
    at = run(at.button(key="watch_close").click())
    assert at.text_input(key="query").value == "missile shield guarantees"


def test_timeline_draws_a_chart_per_language(site, fake):
    at = run(AppTest.from_file(APP, default_timeout=60))
    at = run(at.text_input(key="query").input("missile shield guarantees"))
    assert not at.get("vega_lite_chart")
    at = run(at.toggle(key="timeline").set_value(True))
    assert at.number_input(key="timeline_threshold").value == DEFAULT_THRESHOLD
    at = run(at.number_input(key="timeline_threshold").set_value(0.5))  # a corpus this small: nothing stands out more
    charts = at.get("vega_lite_chart")
    titles = [m.value for m in at.markdown if m.value.startswith("**")]
    assert len(charts) == len(titles) >= 2, titles
    with Searcher.open(site[0], embedder=fake) as searcher:
        expected = timeline(searcher, "missile shield guarantees", threshold=0.5)
    drawn = {lang: n for lang, n in expected.counts.items() if sum(n)}
    assert set(drawn) >= {"en", "ro"}
    assert titles == [f"**{language_name(lang)}** · {sum(n)} documents" for lang, n in drawn.items()]
    note = next(c.value for c in at.caption if c.value.startswith("Documents whose best passage"))
    undated = ", ".join(f"{language_name(c)} {n}" for c, n in expected.undated.items() if n)
    assert (f"Undated: {undated}." in note) if undated else ("Undated" not in note)
    at = run(at.segmented_control(key="timeline_interval").set_value("week"))
    assert len(at.get("vega_lite_chart")) == len(titles)
