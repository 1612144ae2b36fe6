"""Stories across languages: margin links, grouping into stories at build and update time, the
Searcher's story API and the command line. Logic with the hashing model (texts that share words
are alike); what users see with the bundled model (marked ``model``)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from index import build_index, update_index
from index.manifest import LINKS, MARGIN_ROWS, MARGINS, NEIGHBOURS, STORIES, read_manifest
from index import merge
from index.margins import LINK_THRESHOLD, cross_language_neighbours, passage_links
from index.stories import DocInfo, group_stories
from index.store import PassageStore
from index.versions import current_version
from polyseek.embedder import HashingEmbedder
from polyseek.errors import IndexFormatError, QueryError
from search import Searcher
from tests.conftest import ROOT

#: Five events; each "translation" shares the event's words and adds words of its own language.
#: All share some words too, as a real encoder finds all news somewhat alike (the neighbourhoods
#: a margin is measured against are then not empty).
COMMON = "agency officials said on monday that the situation was being followed closely by observers"
EVENTS = {
    "summit": "summit geneva presidents agreement nuclear warheads reduction treaty signed delegations",
    "floods": "floods northern valley rivers burst villages evacuated soldiers boats rescue rainfall",
    "rates": "central bank raised interest rates inflation currency markets governor announced percent",
    "election": "parliament election ballots counted opposition coalition turnout candidates districts",
    "vaccine": "vaccine trial volunteers hospital doses results regulator approval laboratory",
}
OWN_WORDS = {"en": "report english news today", "ro": "știre română azi presa", "de": "bericht deutsch heute presse",
             "ar": "تقرير عربي اليوم صحافة"}


def text(event: str, lang: str) -> str:
    return f"{COMMON} {EVENTS[event]} {OWN_WORDS[lang]}"


def write_jsonl(folder, records) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n",
                                       encoding="utf-8")


def record(event: str, lang: str, date: str = "2024-03-01", source: str = "Wire") -> dict:
    return {"id": f"{lang}-{event}", "title": f"{event} ({lang})", "text": text(event, lang), "lang": lang,
            "date": date, "source": source}


@pytest.fixture
def fake256():
    return HashingEmbedder(1024)  # few hash collisions: unrelated texts differ by their words only


def story_sets(searcher) -> set[frozenset]:
    """Each story as the set of its documents' record ids."""
    out = set()
    for story in searcher.stories(min_size=1, limit=1000):
        detail = searcher.story(story.story_id)
        out.add(frozenset(d.doc_id.split("#")[1] for d in detail.documents))
    return out


def test_a_parallel_fixture_gives_exactly_the_expected_stories(tmp_path, fake256):
    records = [record(e, lang) for e in ("summit", "floods", "rates") for lang in ("en", "ro", "de")]
    records += [record("election", "en"), record("vaccine", "ro")]  # reported in one language only
    write_jsonl(tmp_path / "c", records)
    build_index(tmp_path / "c", tmp_path / "i", embedder=fake256)
    with Searcher.open(tmp_path / "i", embedder=fake256) as s:
        assert story_sets(s) == {frozenset({f"{lang}-{e}" for lang in ("en", "ro", "de")}) for e in ("summit", "floods", "rates")} | {
            frozenset({"en-election"}), frozenset({"ro-vaccine"})}
        listed = s.stories()  # stories of one too
        assert [st.size for st in listed] == [3, 3, 3, 1, 1]
        big = s.stories(min_size=2)
        assert len(big) == 3 and all(st.languages == {"de": 1, "en": 1, "ro": 1} and st.missing_langs == () for st in big)
        single = next(st for st in listed if st.size == 1 and "election" in st.title)
        assert set(single.missing_langs) == {"de", "ro"} and single.first_langs == ("en",)

        hit = s.search("summit geneva presidents", 1, ["en"])[0]
        assert hit.story_id and hit.story_id == s.search("summit geneva presidents", 1, ["de"])[0].story_id
        also = s.same_story(hit)
        assert {h.doc_id.split("#")[1] for h in also} == {"ro-summit", "de-summit"}
        assert all(h.score >= LINK_THRESHOLD and h.lang != "en" and h.story_id == hit.story_id for h in also)
        assert s.same_story(s.search("parliament election ballots", 1)[0]) == []

        detail = s.story(hit.story_id)
        assert set(detail.by_language()) == {"en", "ro", "de"}
        assert all(d.passage and d.links >= 1 for d in detail.documents)
        assert json.loads(json.dumps(detail.to_dict()))["story"]["size"] == 3


def test_dates_split_a_story(tmp_path, fake256):
    records = [record("summit", "en", "2024-03-01"), record("summit", "ro", "2024-03-03T10:00:00+02:00"),
               record("summit", "de", "2025-03-02")]  # a year later: another summit, another story
    records += [record(e, lang) for e in ("floods", "rates", "election") for lang in ("en", "ro", "de")]
    write_jsonl(tmp_path / "c", records)
    build_index(tmp_path / "c", tmp_path / "i", embedder=fake256)
    with Searcher.open(tmp_path / "i", embedder=fake256) as s:
        sets = story_sets(s)
        assert frozenset({"en-summit", "ro-summit"}) in sets and frozenset({"de-summit"}) in sets
        en = s.search("summit geneva", 1, ["en"])[0]
        assert {h.doc_id.split("#")[1] for h in s.same_story(en)} == {"ro-summit"}  # the German link is not "the same story"
        story = s.stories_by_id([en.story_id])[en.story_id]
        assert (story.first_date, story.last_date, story.first_langs) == ("2024-03-01", "2024-03-03", ("en",))
        assert story.missing_langs == ("de",)
        # Filters and order
        assert [st.story_id for st in s.stories(since="2025-01-01", min_size=1)] == [
            s.search("summit geneva", 1, ["de"])[0].story_id]
        assert all(st.last_date <= "2024-12-31" for st in s.stories(until="2024-12-31"))
        by_date = s.stories(sort="date", min_size=1)
        assert by_date[0].last_date == "2025-03-02"
        assert all(st.languages.get("de") for st in s.stories(langs=["de"], min_size=1))
        assert s.stories(sources=["Nobody"]) == [] and len(s.stories(sources=["wire"], min_size=2)) == 4
        assert s.story("s-none") is None
        with pytest.raises(QueryError, match="sort"):
            s.stories(sort="relevance")
        with pytest.raises(QueryError, match="date"):
            s.stories(since="March")


def test_an_update_joins_a_translation_and_drops_a_deleted_document(tmp_path, fake256):
    corpus = tmp_path / "c"
    records = [record("summit", "en"), record("summit", "ro")]
    records += [record(e, lang) for e in ("floods", "rates", "election") for lang in ("en", "ro", "de")]
    write_jsonl(corpus, records)
    build_index(corpus, tmp_path / "i", embedder=fake256)
    with Searcher.open(tmp_path / "i", embedder=fake256) as s:
        assert frozenset({"en-summit", "ro-summit"}) in story_sets(s)

    (corpus / "more.jsonl").write_text(json.dumps(record("summit", "de")) + "\n", encoding="utf-8")
    summary = update_index(corpus, tmp_path / "i", embedder=fake256)
    assert summary.embedded == 1
    with Searcher.open(tmp_path / "i", embedder=fake256) as s:
        info = s.manifest.stories  # only the new passage's neighbourhoods were searched in full
        assert info["neighbour_lists_searched"] == 2 < info["neighbour_lists"] == 2 * 12
        sets = story_sets(s)
        assert {"en-summit", "ro-summit"} <= next(x for x in sets if "en-summit" in x)
        summit = next(st for st in s.stories(min_size=2) if "summit" in st.title)
        assert summit.size == 3 and set(summit.languages) == {"en", "ro", "de"}

    write_jsonl(corpus, [r for r in records if r["id"] != "ro-summit"])  # the Romanian report deleted
    update_index(corpus, tmp_path / "i", embedder=fake256)
    with Searcher.open(tmp_path / "i", embedder=fake256) as s:
        sets = story_sets(s)
        assert all("ro-summit" not in x for x in sets)
        summit = next(st for st in s.stories(min_size=2) if "summit" in st.title)
        assert summit.size == 2 and set(summit.languages) == {"en", "de"}
        hit = s.search("summit geneva", 1, ["en"])[0]
        assert [h.lang for h in s.same_story(hit)] == ["de"]

    # The updated index's margins and stories are those of a full build of the same corpus.
    build_index(corpus, tmp_path / "full", embedder=fake256)
    def margins_by_passage(index_dir):  # margins.npy rows are in passage-id order, ids differ between the two
        with Searcher.open(index_dir, embedder=fake256) as s:
            rows = s._segments.passages(s._all_ids)
            keys = [(rows[pid][0].doc_id, rows[pid][0].ordinal) for pid in s._all_ids.tolist()]
        means = np.load(current_version(index_dir) / MARGINS)
        return np.stack([means[i] for _, i in sorted((key, i) for i, key in enumerate(keys))])

    np.testing.assert_allclose(margins_by_passage(tmp_path / "i"), margins_by_passage(tmp_path / "full"), atol=1e-6)
    with Searcher.open(tmp_path / "i", embedder=fake256) as u, Searcher.open(tmp_path / "full", embedder=fake256) as f:
        assert story_sets(u) == story_sets(f)
        assert [x.to_dict() for x in u.stories(min_size=1)] == [x.to_dict() for x in f.stories(min_size=1)]


def test_counterparts_put_the_translation_first(tmp_path, fake256):
    write_jsonl(tmp_path / "c", [record(e, lang) for e in EVENTS for lang in ("en", "ro", "ar")])
    build_index(tmp_path / "c", tmp_path / "i", embedder=fake256)
    with Searcher.open(tmp_path / "i", embedder=fake256) as s:
        found = s.counterparts(text("rates", "en"), k=3)
        assert found[0].doc_id.endswith("-rates") and found[0].lang in ("ro", "ar")
        assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
        only_ar = s.counterparts(text("floods", "en"), langs=["ar"], k=1)
        assert [h.doc_id.split("#")[1] for h in only_ar] == ["ar-floods"]
        assert only_ar[0].score > 1.3 and only_ar[0].cosine > 0.8  # margin and plain cosine
        with pytest.raises(QueryError, match="empty"):
            s.counterparts("  ")


def test_margins_file_is_checked_like_every_file(tmp_path, fake256):
    write_jsonl(tmp_path / "c", [record(e, lang) for e in EVENTS for lang in ("en", "ro")])
    build_index(tmp_path / "c", tmp_path / "i", embedder=fake256)
    path = current_version(tmp_path / "i") / MARGINS
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match="margins.npy does not match its checksum"):
        Searcher.open(tmp_path / "i", embedder=fake256)


def test_neighbourhoods_match_brute_force():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(900, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    langs = rng.choice(["en", "ro", "de"], size=900)
    exact = cross_language_neighbours(vectors, langs)
    for i in (0, 17, 444, 899):
        for col, lang in enumerate(exact.langs):
            if lang == langs[i]:
                assert (exact.ids[i, col] == -1).all()
                continue
            others = np.flatnonzero(langs == lang)
            truth = others[np.argsort(-(vectors[others] @ vectors[i]), kind="stable")[:4]]
            assert set(exact.ids[i, col]) == set(truth)
            np.testing.assert_allclose(exact.cosines[i, col], np.sort(vectors[truth] @ vectors[i])[::-1], atol=1e-5)
    a, b, m, c = passage_links(exact, langs, threshold=-np.inf)
    assert (a < b).all() and len(set(zip(a.tolist(), b.tolist()))) == len(a) and (langs[a] != langs[b]).all()
    np.testing.assert_allclose(c, np.einsum("ij,ij->i", vectors[a], vectors[b]), atol=1e-5)


def test_grouping_keeps_each_document_in_one_story_and_respects_the_window():
    docs = [DocInfo("a", "A", "en", "2024-01-01"), DocInfo("b", "B", "ro", "2024-01-10"),
            DocInfo("c", "C", "de", "2024-01-20"), DocInfo("d", "D", "ar", "")]
    passage_doc = np.arange(4)
    # a-b strong, b-c strong, a-d weak: a+b+c would span 19 days (> 14): c stays alone; d joins.
    links = (np.array([0, 1, 0]), np.array([1, 2, 3]), np.array([1.3, 1.2, 1.1], np.float32), np.zeros(3, np.float32))
    stories, members, kept = group_stories(docs, passage_doc, links, window_days=14)
    by_doc = {m.doc_id: m.story_id for m in members}
    assert len(members) == 4 and by_doc["a"] == by_doc["b"] == by_doc["d"] != by_doc["c"]
    assert kept.tolist() == [True, False, True]
    story = next(s for s in stories if s.story_id == by_doc["a"])
    assert (story.size, story.first_date, story.last_date, story.first_lang) == (3, "2024-01-01", "2024-01-10", "en")


def test_command_line_lists_and_opens_stories_and_finds_counterparts(tmp_path):
    write_jsonl(tmp_path / "c", [record(e, lang) for e in ("summit", "floods", "rates") for lang in ("en", "ro")]
                + [record("vaccine", "en")])
    index_dir = tmp_path / "i"
    run = lambda *a: subprocess.run([sys.executable, "-m", *a], cwd=ROOT, capture_output=True, text=True, timeout=300)  # noqa: E731
    assert run("index", "build", str(tmp_path / "c"), "--index", str(index_dir), "--model", "fake:1024", "-q").returncode == 0
    listed = run("search", "stories", "--index", str(index_dir), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(rows) == 3 and all(r["size"] == 2 and r["languages"] == {"en": 1, "ro": 1} for r in rows)
    assert len(run("search", "stories", "--index", str(index_dir), "--all", "--json").stdout.splitlines()) == 4
    assert run("search", "stories", "--index", str(index_dir), "--lang", "de", "--json").stdout == ""
    human = run("search", "stories", "--index", str(index_dir))
    assert human.returncode == 0 and "2 documents (en 1, ro 1)" in human.stdout
    opened = run("search", "stories", "--index", str(index_dir), "--open", rows[0]["story_id"])
    assert opened.returncode == 0 and "Romanian (ro)" in opened.stdout and "English (en)" in opened.stdout
    unknown = run("search", "stories", "--index", str(index_dir), "--open", "nope")
    assert unknown.returncode == 2 and "no story 'nope'" in unknown.stderr
    found = run("search", "--counterparts", text("floods", "en"), "--index", str(index_dir), "-k", "1", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["doc_id"].endswith("#ro-floods")
    also = run("search", "summit geneva", "--index", str(index_dir), "--lang", "en", "-k", "1", "--also")
    assert "also reported in [ro] summit (ro)" in also.stdout
    neither = run("search", "--index", str(index_dir))
    assert neither.returncode == 2 and "give a query" in neither.stderr


@pytest.mark.model
def test_the_seed_corpus_has_no_cross_language_link(seed_index, real_embedder):
    """Its four articles are four different stories (the two English ones too)."""
    with Searcher.open(seed_index, embedder=real_embedder) as s:
        assert s.manifest.stories["links"] == 0
        assert s.stories(min_size=2) == [] and len(s.stories()) == 4
        for pid in range(s.manifest.passages):
            hit = s._passage_hits([(pid, 0.0, 0.0)])[0]
            assert s.same_story(hit) == []
        store = PassageStore(s.folder / STORIES)  # the version's story tables
        try:
            assert store._all("SELECT count(*) FROM passage_links")[0][0] == 0
        finally:
            store.close()


@pytest.mark.model
def test_an_update_adding_a_real_translation_makes_a_story(seed_index, real_embedder, tmp_path):
    """A Romanian translation of the opening of the English NATO article (tests/fixtures)
    joins that article's story, and nothing else."""
    import shutil

    from tests.conftest import DATA, FIXTURES

    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(DATA, corpus)
    shutil.copytree(seed_index, index_dir)
    shutil.copy(FIXTURES / "nato_ro.txt", corpus / "004_nato_ro.txt")
    summary = update_index(corpus, index_dir, embedder=real_embedder)
    assert summary.embedded == summary.passages - summary.reused > 0
    with Searcher.open(index_dir, embedder=real_embedder) as s:
        (story,) = s.stories(min_size=2)
        assert story.languages == {"en": 1, "ro": 1} and story.missing_langs == ("ar",)
        assert {d.doc_id for d in s.story(story.story_id).documents} == {"001_1343e8bf4947fd03.txt", "004_nato_ro.txt"}
        hit = s.search("NATO chief calls the threat of a pre-emptive strike unjustified", 1, ["en"])[0]
        assert hit.doc_id == "001_1343e8bf4947fd03.txt" and hit.story_id == story.story_id
        assert [h.doc_id for h in s.same_story(hit)] == ["004_nato_ro.txt"]
        top = s.counterparts(hit.text, langs=["ro"], k=1)[0]
        assert top.doc_id == "004_nato_ro.txt"


@pytest.mark.model
def test_real_translations_make_exactly_their_stories(real_embedder, tmp_path):
    """Eight paragraphs of one Wikipedia article (same topic: the hard case) in nine languages,
    professionally translated (XQuAD, tests/fixtures): eight stories of nine documents, each one
    paragraph's translations, and nothing mixed."""
    from tests.conftest import FIXTURES

    data = json.loads((FIXTURES / "xquad_subset.json").read_text(encoding="utf-8"))
    write_jsonl(tmp_path / "c", [{"id": f"{lang}/p{i}", "title": f"{lang} {i}", "text": p["context"], "lang": lang}
                                 for lang, paras in data.items() for i, p in enumerate(paras)])
    build_index(tmp_path / "c", tmp_path / "i", embedder=real_embedder)
    with Searcher.open(tmp_path / "i", embedder=real_embedder) as s:
        assert story_sets(s) == {frozenset(f"{lang}/p{i}" for lang in data) for i in range(8)}


class Jittered(HashingEmbedder):
    """The hashing model with a little noise fixed by each text: bags of a few words often give
    exactly equal cosines, and a tie between two neighbours may be broken either way."""

    def __init__(self, dim):
        super().__init__(dim)
        self.fingerprint += "-jittered"

    def embed(self, texts, kind, batch_size=None):
        import zlib

        out = super().embed(texts, kind, batch_size)
        for row, t in enumerate(texts):
            out[row] += 0.02 * np.random.default_rng(zlib.crc32(t.encode("utf-8"))).normal(size=self.dim)
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def state_by_passage(index_dir, fake):
    """The version's margins, neighbourhoods and links keyed by (doc_id, ordinal): comparable
    between two indexes whose passage ids differ."""
    folder = current_version(index_dir)
    with Searcher.open(index_dir, embedder=fake) as s:
        rows = s._segments.passages(s._all_ids)
        key = {pid: (rows[pid][0].doc_id, rows[pid][0].ordinal) for pid in s._all_ids.tolist()}
    state = np.load(folder / MARGIN_ROWS)
    assert state["id"].tolist() == sorted(key)
    means, ids, links = np.load(folder / MARGINS), np.load(folder / NEIGHBOURS), np.load(folder / LINKS)
    return ({key[p]: means[i] for i, p in enumerate(state["id"].tolist())},
            {key[p]: [{key[x] for x in col if x >= 0} for col in ids[i]] for i, p in enumerate(state["id"].tolist())},
            {tuple(sorted((key[a], key[b]))): m for a, b, m in links[["a", "b", "margin"]].tolist()})


def story_details(searcher):
    """Every story with its documents, their best passages (by document and start) and links."""
    out = {}
    for story in searcher.stories(min_size=1, limit=100000):
        detail = searcher.story(story.story_id)
        out[story.story_id] = (story.to_dict(), [(d.doc_id, d.passage, d.links) for d in detail.documents])
    return out


@pytest.mark.parametrize("seed", [5, 6, 8])
def test_updated_margins_links_and_stories_equal_a_full_build(tmp_path, monkeypatch, seed):
    """Random adds, edits, deletes and merges of reports of a few events in four languages (the
    texts link across languages; some undated, some a month apart; Arabic arrives after a few): after each update the margins, the
    neighbourhoods, every link and every story equal those of a full build of the corpus."""
    import random

    monkeypatch.setattr(merge, "FLOOR", 5)
    monkeypatch.setattr(merge, "SEGMENTS_PER_TIER", 3)
    monkeypatch.setattr(merge, "MERGE_AT_ONCE", 3)
    rng = random.Random(seed)
    fake = Jittered(1024)
    corpus, index_dir = tmp_path / "c", tmp_path / "i"
    langs = sorted(OWN_WORDS)

    def report(name, step=0):
        event, lang = rng.choice(sorted(EVENTS)), rng.choice(langs if step >= 3 else langs[1:])  # Arabic comes later
        extra = " ".join(rng.sample(EVENTS[rng.choice(sorted(EVENTS))].split(), 3))
        out = {"id": name, "title": f"{event} {name}", "text": f"{text(event, lang)} {extra}", "lang": lang,
               "source": rng.choice(["Wire", "Post"])}
        when = rng.random()  # undated, within a week, or a month later (the window splits those)
        if when > 0.6:
            out["date"] = f"2024-03-0{rng.randint(1, 7)}" if when < 0.93 else f"2024-04-{rng.randint(10, 28)}"
        return out

    files: dict[str, list] = {}
    for f in range(4):
        files[f"f{f}"] = [report(f"r{f}-{i}") for i in range(rng.randint(3, 6))]

    def write():
        for old in corpus.glob("*.jsonl"):
            if old.stem not in files:
                old.unlink()
        for name, records in files.items():
            write_jsonl_file(corpus / f"{name}.jsonl", records)

    write()
    build_index(corpus, index_dir, embedder=fake)
    incremental = merged = edited = regrouped = 0
    for step in range(8):
        for _ in range(rng.randint(1, 3)):
            op = rng.choice(["add", "add", "edit", "delete", "file", "unfile"])
            name = rng.choice(sorted(files))
            if op == "add":
                files[name].append(report(f"r{step}-{rng.randint(0, 10**6)}", step))
            elif op == "edit" and files[name]:
                i = rng.randrange(len(files[name]))
                files[name][i] = report(files[name][i]["id"], step)
            elif op == "delete" and files[name]:
                files[name].pop(rng.randrange(len(files[name])))
            elif op == "file":
                files[f"g{step}"] = [report(f"g{step}-{i}", step) for i in range(rng.randint(1, 4))]
            elif op == "unfile" and len(files) > 2:
                del files[name]
        write()
        summary = update_index(corpus, index_dir, embedder=fake)
        info = read_manifest(current_version(index_dir)).stories
        incremental += info["neighbour_lists_searched"] < info["neighbour_lists"]
        edited += info["stories_edited"]
        regrouped += info["documents_regrouped"]
        merged += summary.segments_merged
        full = tmp_path / f"full-{step}"
        build_index(corpus, full, embedder=fake)
        (mu, nu, lu), (mf, nf, lf) = state_by_passage(index_dir, fake), state_by_passage(full, fake)
        assert sorted(mu) == sorted(mf) and nu == nf
        np.testing.assert_allclose(np.stack([mu[k] for k in sorted(mu)]), np.stack([mf[k] for k in sorted(mf)]),
                                   atol=1e-5)
        assert sorted(lu) == sorted(lf) and [lu[k] for k in sorted(lu)] == pytest.approx([lf[k] for k in sorted(lf)], abs=1e-5)
        with Searcher.open(index_dir, embedder=fake) as u, Searcher.open(full, embedder=fake) as f:
            assert story_details(u) == story_details(f)
            assert u.manifest.stories["links"] == f.manifest.stories["links"]
            assert u.manifest.stories["multi_document_stories"] == f.manifest.stories["multi_document_stories"]
    assert incremental >= 5 and merged  # updates (and merges) did start from the previous version
    assert edited and regrouped  # stories were edited in place, and grouped again where dates are far apart
    with Searcher.open(index_dir, embedder=fake) as u:
        assert any(s.size > 1 for s in u.stories())  # the corpus did link across languages


def write_jsonl_file(path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def test_a_language_that_goes_drops_its_column_and_equals_a_full_build(tmp_path):
    fake = Jittered(1024)
    records = [record(e, lang) for e in ("summit", "floods", "rates") for lang in ("en", "ro", "de")]
    write_jsonl(tmp_path / "c", records)
    build_index(tmp_path / "c", tmp_path / "i", embedder=fake)
    write_jsonl(tmp_path / "c", [r for r in records if r["lang"] != "de"])  # every German report deleted
    update_index(tmp_path / "c", tmp_path / "i", embedder=fake)
    build_index(tmp_path / "c", tmp_path / "full", embedder=fake)
    (mu, nu, lu), (mf, nf, lf) = state_by_passage(tmp_path / "i", fake), state_by_passage(tmp_path / "full", fake)
    assert nu == nf and sorted(lu) == sorted(lf) and lf
    np.testing.assert_allclose(np.stack([mu[k] for k in sorted(mu)]), np.stack([mf[k] for k in sorted(mf)]), atol=1e-5)
    with Searcher.open(tmp_path / "i", embedder=fake) as u, Searcher.open(tmp_path / "full", embedder=fake) as f:
        assert u.manifest.stories["margin_languages"] == ["en", "ro"]
        assert u.manifest.stories["neighbour_lists_searched"] < u.manifest.stories["neighbour_lists"]
        assert story_details(u) == story_details(f)
