"""The Streamlit page, driven by streamlit.testing's AppTest on small indexes built with the
hashing embedder (``fake:64``): the flows of search, filter, grouping, building and uploads."""

import re

import pytest
from streamlit.testing.v1 import AppTest

from index import build_index
from index.versions import current_version
from tests.conftest import ROOT

APP = str(ROOT / "app.py")
HOSTILE = 'Sanctions news <script>alert("pwned")</script> **bold** [click](javascript:alert(1)) <img src=x onerror=alert(1)>'


@pytest.fixture
def site(tmp_path, corpus, monkeypatch, fake):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder=fake, chunk_tokens=16)
    monkeypatch.setenv("POLYSEEK_INDEX", str(index_dir))
    monkeypatch.setenv("POLYSEEK_CORPUS", str(corpus))
    return index_dir, corpus


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def search(at: AppTest, query: str) -> AppTest:
    at.text_input(key="query").input(query).run()
    assert not at.exception, at.exception
    return at


def cards(at: AppTest) -> list[str]:
    return [h.value for h in at.html if h.value.startswith('<div class="ps-hit"')]


def card_field(card: str, cls: str) -> str:
    return re.search(rf'class="{cls}[^"]*"[^>]*>(.*?)</span>', card).group(1)


def summary(at: AppTest) -> str:
    return next(re.sub("<[^>]+>", "", h.value) for h in at.html if h.value.startswith('<p class="ps-summary"'))


def plain(elements) -> list[str]:
    """Messages as a reader sees them: the page escapes Markdown in everything it quotes."""
    return [re.sub(r"\\(.)", r"\1", e.label if e.type == "checkbox" else e.value) for e in elements]


def status_table(at: AppTest) -> str:
    return next(h.value for h in at.sidebar.get("html") if "ps-status" in h.value)


def test_search_shows_ranked_cards_with_best_sentence_and_document(site):
    at = search(open_page(), "legally binding guarantees missile shield")
    found = cards(at)
    assert found and card_field(found[0], "ps-file") == "en/missiles.txt"
    assert '<mark class="ps-best">Moscow wants legally binding guarantees about the missile shield.</mark>' in found[0]
    assert all(f'class="ps-rank">{i}.<' in c for i, c in enumerate(found, 1))
    text = summary(at)
    assert re.match(rf"{len(found)} passages in \d languages? \(.*English \d.*\) · dense · search \d+ ms · best sentences \d+ ms", text), text
    docs = [h.value for h in at.html if h.value.startswith('<div class="ps-doc"')]
    assert len(docs) == len(found) == len(at.expander)
    assert '<mark class="ps-passage">' in docs[0]
    assert "Documents</th><td>5<" in status_table(at) and "fake:64" in status_table(at)


def test_language_filter_lists_counts_and_restricts_results(site):
    at = open_page()
    langs = at.multiselect(key="langs")
    assert any(re.fullmatch(r"Romanian \(ro\) · \d+ passages?", o) for o in langs.options), langs.options
    at = search(at.multiselect(key="langs").set_value(["ro", "ar"]).run(), "missile shield guarantees")
    found = cards(at)
    assert {card_field(c, "ps-badge") for c in found} == {"Romanian · ro", "Arabic · ar"}
    arabic = [c for c in found if card_field(c, "ps-badge") == "Arabic · ar"]
    assert all('class="ps-text" dir="rtl" lang="ar"' in c for c in arabic)
    assert all('dir="ltr"' in c for c in found if c not in arabic)


def test_one_passage_per_document(site):
    at = search(open_page(), "missile shield Russia guarantees NATO")
    at.number_input(key="k").set_value(50).run()
    files = [card_field(c, "ps-file") for c in cards(at)]
    assert len(files) > len(set(files))  # without grouping, a document comes back several times
    at.checkbox(key="per_document").check().run()
    files = [card_field(c, "ps-file") for c in cards(at)]
    assert len(files) == len(set(files)) == 5
    assert summary(at).startswith("5 documents in")


def test_empty_query_gives_a_hint_not_an_error(site):
    at = open_page()
    assert any("Type a question" in c for c in plain(at.caption))
    at = search(at, "   ")
    assert not cards(at) and any("Type a question" in c for c in plain(at.caption))


def test_corpus_text_shows_as_text(site, fake):
    index_dir, corpus = site
    (corpus / "hostile.md").write_text(HOSTILE, encoding="utf-8")
    build_index(corpus, index_dir, embedder=fake)
    at = search(open_page(), "Sanctions news script alert pwned bold click")
    html = "".join(h.value for h in at.html)
    assert "&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;" in html
    assert "<script" not in html and "<img" not in html
    assert "**bold** [click](javascript:alert(1))" in html  # st.html renders no Markdown


def test_no_index_offers_to_build_one(tmp_path, corpus, monkeypatch):
    monkeypatch.setenv("POLYSEEK_INDEX", str(tmp_path / "none"))
    monkeypatch.setenv("POLYSEEK_CORPUS", str(corpus))
    monkeypatch.setenv("POLYSEEK_MODEL", "fake:64")
    at = open_page()
    assert any("no index yet" in i for i in plain(at.info))
    assert not at.text_input  # nothing to search yet
    at.button(key="build_first").click().run()
    assert not at.exception, at.exception
    assert any("Indexed 5 of 5 documents" in s for s in plain(at.success))
    assert (tmp_path / "none" / "CURRENT").is_file()
    assert cards(search(at, "missile shield"))


def test_rebuild_switches_the_page_to_the_new_index(site):
    index_dir, corpus = site
    before = current_version(index_dir)
    at = open_page()
    (corpus / "de.txt").write_text("Die Nachrichtenagentur berichtet über die Raketenabwehr in Europa und die "
                                   "Sicherheitsgarantien, die Russland von der NATO verlangt.", encoding="utf-8")
    at.button(key="rebuild").click().run()
    assert not at.exception and not at.error, (at.exception, plain(at.error))
    assert any("Indexed 6 of 6 documents" in s for s in plain(at.success))
    assert current_version(index_dir) != before
    assert current_version(index_dir).name in status_table(at) and "German (de)" in status_table(at)
    at.multiselect(key="langs").set_value(["de"]).run()
    assert {card_field(c, "ps-file") for c in cards(search(at, "Raketenabwehr"))} == {"de.txt"}


def test_failed_rebuild_keeps_the_old_index_and_says_why(site):
    index_dir, corpus = site
    before = current_version(index_dir)
    at = open_page()
    for path in sorted(corpus.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()  # an empty corpus: nothing to index
    at.button(key="rebuild").click().run()
    assert not at.exception
    errors = plain(at.error)
    assert any("Rebuild failed: nothing to index" in e and "previous index is still in service" in e for e in errors), errors
    assert current_version(index_dir) == before
    assert cards(search(at, "missile shield"))  # still answering from the old index


def test_upload_saves_safely_then_rebuilds(site):
    index_dir, corpus = site
    at = open_page()
    at.file_uploader[0].set_value([("../../Știri azi.txt", "Guvernul a anunțat noi măsuri economice azi.".encode(), "text/plain"),
                                   ("bad.txt", b"\x00\x01binary", "text/plain")]).run()
    at.button(key="add_files").click().run()
    assert not at.exception, at.exception
    assert (corpus / "Știri azi.txt").is_file() and not (corpus.parent.parent / "Știri azi.txt").exists()
    assert not (corpus / "bad.txt").exists()
    assert any("Not added: bad.txt: binary" in e for e in plain(at.error))
    assert any("Added to" in s for s in plain(at.success)) and any("Indexed 6 of 6" in s for s in plain(at.success))
    assert not at.file_uploader[0].value  # emptied for the next upload


def test_upload_never_overwrites_without_asking(site):
    index_dir, corpus = site
    original = (corpus / "en" / "weather.md").read_bytes()
    (corpus / "weather.md").write_bytes(original)
    at = open_page()
    at.file_uploader[0].set_value(("weather.md", b"# Replaced\n\nA different forecast.", "text/markdown")).run()
    assert plain([at.checkbox(key="replace")])[0] == "Replace 1 existing file(s): weather.md"
    at.button(key="add_files").click().run()
    assert any("name is taken" in w for w in plain(at.warning))
    assert (corpus / "weather.md").read_bytes() == original
    at.file_uploader[0].set_value(("weather.md", b"# Replaced\n\nA different forecast.", "text/markdown")).run()
    at.checkbox(key="replace").check().run()
    at.button(key="add_files").click().run()
    assert (corpus / "weather.md").read_text(encoding="utf-8").startswith("# Replaced")
    assert any("Added to" in s for s in plain(at.success))


def test_a_damaged_index_is_reported_with_a_way_out(site):
    index_dir, _ = site
    (current_version(index_dir) / "manifest.json").write_text("{not json", encoding="utf-8")
    at = open_page()
    assert any("cannot be used" in e and "corrupt" in e for e in plain(at.error))
    assert at.button(key="build_first")


def test_file_names_in_labels_and_messages_show_as_text(site, fake):
    index_dir, corpus = site
    tricky = "a*b*_c_ [x](javascript:alert(1)) <b>.txt"
    (corpus / tricky).write_text("Sanctions were announced against the shipping company.", encoding="utf-8")
    build_index(corpus, index_dir, embedder=fake)
    at = search(open_page(), "sanctions shipping company")
    label = next(e.label for e in at.expander if "javascript" in e.label)
    assert "\\*" in label and "\\[x\\]\\(javascript\\:alert" in label and "\\<b\\>" in label
    assert re.sub(r"\\(.)", r"\1", label) == f"Whole document: {tricky}"


def test_ranking_mode_auto_uses_words_only_within_the_querys_language(site):
    at = open_page()
    control = at.get("button_group")[0]
    assert control.options == ["Auto", "Meaning", "Meaning + words"] and control.value == "auto"
    at = search(at, "Rusia cere garanţii de securitate privind scutul antirachetă")
    assert " · dense · " in summary(at)  # all languages: the model alone
    at.multiselect(key="langs").set_value(["ro"]).run()
    assert " · hybrid · " in summary(at)  # the query's own language: words too
    assert card_field(cards(at)[0], "ps-file") == "ro/deveselu.txt"
    at.get("button_group")[0].set_value("dense").run()
    assert " · dense · " in summary(at)
    at.multiselect(key="langs").set_value([]).run()
    at.get("button_group")[0].set_value("hybrid").run()
    assert " · hybrid · " in summary(at)


def test_stories_view_and_the_cards_that_open_it(tmp_path, monkeypatch):
    from polyseek.embedder import HashingEmbedder
    from tests.test_stories import record, write_jsonl

    corpus, index_dir = tmp_path / "stories", tmp_path / "stories-index"
    write_jsonl(corpus, [record("summit", "en", "2024-03-02"), record("summit", "ro", "2024-03-01"),
                         record("summit", "de", "2024-03-04"), record("floods", "en"), record("floods", "de"),
                         record("rates", "en"), record("rates", "ro"), record("vaccine", "ro")])
    build_index(corpus, index_dir, embedder=HashingEmbedder(1024))
    monkeypatch.setenv("POLYSEEK_INDEX", str(index_dir))
    monkeypatch.setenv("POLYSEEK_CORPUS", str(corpus))
    at = search(open_page(), "summit geneva presidents agreement")
    top = cards(at)[0]
    assert "ps-also" in top and "Also reported in" in top and "margin" in top
    assert "summit (ro)" in top and "summit (de)" in top and "floods" not in top.split("ps-also")[1]
    assert at.button(key="story-1").label == "Open the story: 3 documents in German, English, Romanian"

    at.button(key="story-1").click().run()  # the card opens its story on the Stories page
    assert not at.exception, at.exception
    html = "".join(h.value for h in at.html)
    assert "<h1" not in html and at.title[0].value == "Stories"
    assert html.count('class="ps-story-lang"') == 3 and all(f'data-lang="{c}"' in html for c in ("en", "ro", "de"))
    assert "2024-03-01 – 2024-03-04" in html
    captions = plain(at.caption)
    assert any("Reported first in Romanian (2024-03-01)" in c and "Covered in every language" in c for c in captions), captions

    at.button(key="all_stories").click().run()  # back to the list: multi-document stories, largest first
    stories = [h.value for h in at.html if h.value.startswith('<div class="ps-story"')]
    assert len(stories) == 3 and "3 documents" in stories[0]
    assert any("Never covered in: Romanian" in s for s in stories)  # the floods: English and German only
    at.checkbox(key="story_singles").check().run()
    assert len([h for h in at.html if h.value.startswith('<div class="ps-story"')]) == 4
    vaccine = next(b for b in at.button if b.key and b.key.startswith("open-") and b.key.endswith(
        next(h.value for h in at.html if "vaccine" in h.value).split('data-story="')[1].split('"')[0]))
    vaccine.click().run()
    html = "".join(h.value for h in at.html)
    assert html.count('class="ps-story-lang"') == 1 and "vaccine (ro)" in html
    assert any("Never covered in English, German" in c for c in plain(at.caption))
