"""Watches: every update records exactly the passages it added or changed that reach a watch's
threshold, once, in every language; watches live outside the versions and survive a failed
update. Hashing embedder (texts that share words are similar), articles with declared languages."""

import json

import numpy as np
import pytest

from index import build_index, update_index
from index.versions import current_version
from index.watches import STATE, WatchStore
from polyseek.embedder import HashingEmbedder
from polyseek.errors import CorpusError, QueryError
from search import Searcher
from search.cli import main as cli

THRESHOLD = 1.5  # standard deviations; with the hashing model here on-topic ≥ 1.7, off-topic ≤ 1.25
#: One watch per language of the corpus, each in its own language.
WATCHES = {
    "en": "missile shield guarantees Moscow",
    "ro": "scutul antirachetă garanţii Moscova",
    "ar": "الدرع الصاروخي ضمانات موسكو",
    "ru": "противоракетный щит гарантии Москва",
    "zh": "导弹 防御 保证 莫斯科",
}
#: (id, lang, text): on topic ("hit") or not ("miss").
BASE = [
    ("base-en", "en", "Moscow wants guarantees about the missile shield in Romania and Poland."),
    ("base-ro", "ro", "Moscova cere garanţii privind scutul antirachetă din România."),
    ("base-ar", "ar", "موسكو تطلب ضمانات بشأن الدرع الصاروخي في رومانيا."),
    ("base-ru", "ru", "Москва требует гарантии насчёт противоракетный щит в Румынии."),
    ("base-zh", "zh", "莫斯科 要求 关于 导弹 防御 的 保证 。"),
    ("weather-en", "en", "Rain is expected in Bucharest on Monday and the sun returns on Friday."),
    ("bread-en", "en", "The price of bread rose again in the markets of the city."),
    ("train-en", "en", "A new train line links the airport with the old harbour."),
    ("vreme-ro", "ro", "Ploile continuă luni în Bucureşti, iar soarele revine vineri."),
    ("paine-ro", "ro", "Preţul pâinii a crescut din nou în pieţele oraşului."),
    ("tren-ro", "ro", "O nouă linie de tren leagă aeroportul de portul vechi."),
    ("taqs-ar", "ar", "يتوقع هطول الأمطار في بوخارست يوم الاثنين وتعود الشمس يوم الجمعة."),
    ("khubz-ar", "ar", "ارتفع سعر الخبز مرة أخرى في أسواق المدينة."),
    ("qitar-ar", "ar", "خط قطار جديد يربط المطار بالميناء القديم."),
    ("pogoda-ru", "ru", "В понедельник в Бухаресте ожидается дождь, а в пятницу вернётся солнце."),
    ("khleb-ru", "ru", "Цена хлеба снова выросла на рынках города."),
    ("poezd-ru", "ru", "Новая линия поезда соединяет аэропорт со старым портом."),
    ("tianqi-zh", "zh", "布加勒斯特 周一 有 雨 ， 周五 天晴 。"),
    ("mianbao-zh", "zh", "城里 市场 的 面包 价格 又 涨 了 。"),
    ("huoche-zh", "zh", "新 火车 线路 连接 机场 和 老 港口 。"),
]
FIRST = [  # update 1: one on topic and one off topic per language
    ("u1-hit-en", "en", "Moscow again demands guarantees that the missile shield is not aimed at it."),
    ("u1-miss-en", "en", "The football season opens next week with a derby in the capital city."),
    ("u1-hit-ro", "ro", "Moscova cere din nou garanţii că scutul antirachetă nu o vizează."),
    ("u1-miss-ro", "ro", "Sezonul de fotbal începe săptămâna viitoare cu un derby în capitală."),
    ("u1-hit-ar", "ar", "موسكو تريد ضمانات جديدة لأن الدرع الصاروخي يقلقها."),
    ("u1-miss-ar", "ar", "يبدأ موسم كرة القدم الأسبوع المقبل بمباراة في العاصمة."),
    ("u1-hit-ru", "ru", "Москва снова требует гарантии: противоракетный щит её тревожит."),
    ("u1-miss-ru", "ru", "Футбольный сезон начнётся на следующей неделе с дерби в столице."),
    ("u1-hit-zh", "zh", "莫斯科 再次 要求 保证 导弹 防御 不 针对 它 。"),
    ("u1-miss-zh", "zh", "足球 赛季 下周 在 首都 开幕 。"),
]
SECOND = [  # update 2: one more on topic per language
    ("u2-hit-en", "en", "NATO says Moscow needs no guarantees about the missile shield."),
    ("u2-hit-ro", "ro", "NATO spune că scutul antirachetă nu cere garanţii pentru Moscova."),
    ("u2-hit-ar", "ar", "الناتو يقول إن الدرع الصاروخي لا يستدعي ضمانات إلى موسكو."),
    ("u2-hit-ru", "ru", "НАТО: противоракетный щит не требует гарантии, Москва спокойна."),
    ("u2-hit-zh", "zh", "北约 说 导弹 防御 不 需要 保证 莫斯科 。"),
]


def write(corpus, name, records):
    (corpus / name).write_text("".join(json.dumps({"id": i, "title": i, "lang": lang, "text": text},
                                                  ensure_ascii=False) + "\n" for i, lang, text in records),
                               encoding="utf-8")


def base_index(tmp_path, fake):
    """(corpus, index_dir): a corpus of BASE and the index built from it."""
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    write(corpus, "base.jsonl", BASE)
    build_index(corpus, index_dir, embedder=fake)
    return corpus, index_dir


def oracle(index_dir, fake, query, new_texts, threshold):
    """The passages among ``new_texts`` whose searcher score, over the query's spread in their
    language, reaches the threshold."""
    with Searcher.open(index_dir, embedder=fake) as searcher:
        hits = searcher.search(query, k=searcher.manifest.passages, mode="dense")
        z = searcher.standardized(searcher.encode_query(query), hits)
    return {(h.doc_id, h.text) for h, s in zip(hits, z) if h.text in new_texts and s >= threshold}


def texts(index_dir, fake):
    with Searcher.open(index_dir, embedder=fake) as searcher:
        return {h.text for h in searcher.search("x", k=searcher.manifest.passages, mode="dense")}


@pytest.fixture
def fake():
    return HashingEmbedder(dim=512)


def test_each_update_records_exactly_its_new_matches_once_in_every_language(tmp_path, fake):
    corpus, index_dir = base_index(tmp_path, fake)
    store = WatchStore(index_dir)
    ids = {lang: store.add(q, threshold=THRESHOLD).watch_id for lang, q in WATCHES.items()}
    seen: dict[int, list] = {i: [] for i in ids.values()}

    for name, records in (("first.jsonl", FIRST), ("second.jsonl", SECOND)):
        before = texts(index_dir, fake)
        write(corpus, name, records)
        summary = update_index(corpus, index_dir, embedder=fake)
        new_texts = texts(index_dir, fake) - before
        recorded_now = 0
        for lang, watch_id in ids.items():
            recorded = store.matches(watch_id)[len(seen[watch_id]):]
            expected = oracle(index_dir, fake, WATCHES[lang], new_texts, THRESHOLD)
            assert {(m.doc_id, m.text) for m in recorded} == expected, (lang, name)
            # The on-topic article of the watch's language is found, the off-topic one is not.
            docs = {m.doc_id.rsplit("#", 1)[-1] for m in recorded}
            prefix = "u1" if name == "first.jsonl" else "u2"
            assert f"{prefix}-hit-{lang}" in docs and f"{prefix}-miss-{lang}" not in docs, (lang, docs)
            assert not any(d.startswith("base-") for d in docs)  # held before the watch: not new
            assert all(m.version == current_version(index_dir).name for m in recorded)
            seen[watch_id] += recorded
            recorded_now += len(recorded)
        assert summary.watch_matches == recorded_now
        assert f"Watches: {summary.watch_matches} new matches" in summary.to_text()

    # Nothing changed: nothing new. Every match recorded exactly once.
    assert update_index(corpus, index_dir, embedder=fake).watch_matches == 0
    for watch_id in ids.values():
        found = store.matches(watch_id)
        assert [m.match_id for m in found] == [m.match_id for m in seen[watch_id]]
        assert len({(m.doc_id, m.text) for m in found}) == len(found)


def test_match_scores_are_the_searchers_scores(tmp_path, fake):
    corpus, index_dir = base_index(tmp_path, fake)
    store = WatchStore(index_dir)
    watch = store.add(WATCHES["en"], langs=["en"], mode="dense", threshold=-100)  # everything new in English
    write(corpus, "first.jsonl", FIRST)
    update_index(corpus, index_dir, embedder=fake)
    found = store.matches(watch.watch_id)
    assert {m.doc_id.rsplit("#", 1)[-1] for m in found} == {"u1-hit-en", "u1-miss-en"}
    with Searcher.open(index_dir, embedder=fake) as searcher:
        qvec = searcher.encode_query(WATCHES["en"])
        spread = searcher.language_spread(qvec)["en"]
        hits = searcher.search(WATCHES["en"], k=50, langs=["en"], mode="dense")
        scores = {h.text: (z * spread, z, h.cosine) for h, z in zip(hits, searcher.standardized(qvec, hits))}
    for m in found:
        assert np.allclose((m.score, m.z, m.cosine), scores[m.text], atol=1e-4)


def test_a_changed_passage_is_new_and_filters_apply(tmp_path, fake):
    corpus, index_dir = base_index(tmp_path, fake)
    store = WatchStore(index_dir)
    ro_only = store.add(WATCHES["en"], langs=["ro"], threshold=-100)
    en_src = store.add(WATCHES["en"], sources=["nowhere"], threshold=-100)
    changed = [(i, lang, text + " Update: the talks go on.") if i == "base-en" else (i, lang, text)
               for i, lang, text in BASE]
    write(corpus, "base.jsonl", changed)
    update_index(corpus, index_dir, embedder=fake)
    assert store.matches(ro_only.watch_id) == []  # only the English passage changed
    assert store.matches(en_src.watch_id) == []  # no document has that source
    everything = store.add(WATCHES["en"], threshold=-100)
    write(corpus, "base.jsonl", BASE)  # changed back: the old text is new to this version
    update_index(corpus, index_dir, embedder=fake)
    assert [m.doc_id.rsplit("#", 1)[-1] for m in store.matches(everything.watch_id)] == ["base-en"]


def test_an_update_with_watches_reads_only_the_documents_it_changes(tmp_path, fake, monkeypatch):
    """With watches saved, an update tells its new passages from old ones by the passages of the
    documents it replaces (read anyway to reuse their vectors), never by reading every passage
    of the index: its cost stays what changed. A passage an edited document already held is not
    new; the edit and a new document are."""
    from index import version_stories

    corpus, index_dir = base_index(tmp_path, fake)
    store = WatchStore(index_dir)
    watch = store.add(WATCHES["en"], langs=["en"], mode="dense", threshold=-100)  # everything new in English
    monkeypatch.setattr(version_stories, "live_passages", lambda *a, **kw: pytest.fail("read every passage"))
    long_en = " ".join(f"Moscow wants guarantee number {i} about the missile shield in Romania." for i in range(80))
    edited = [(i, lang, long_en if i == "base-en" else text) for i, lang, text in BASE]
    write(corpus, "base.jsonl", edited)
    update_index(corpus, index_dir, embedder=fake)
    held = {m.text for m in store.matches(watch.watch_id)}
    write(corpus, "base.jsonl", [(i, lang, long_en + " Talks go on." if i == "base-en" else text)
                                 for i, lang, text in BASE])
    write(corpus, "first.jsonl", FIRST)
    update_index(corpus, index_dir, embedder=fake)
    found = store.matches(watch.watch_id)[len(held):]
    docs = [m.doc_id.rsplit("#", 1)[-1] for m in found]
    assert {"u1-hit-en", "u1-miss-en", "base-en"} <= set(docs)
    with Searcher.open(index_dir, embedder=fake) as searcher:
        now = {h.text for h in searcher.search("x", k=searcher.manifest.passages, langs=["en"], mode="dense")
               if h.doc_id.endswith("base-en")}
    assert len(now) > 1 and not any(m.text in held for m in found)  # its unchanged passages: not new again
    assert {m.text for m in found if m.doc_id.endswith("base-en")} == now - held


def test_hybrid_watch_also_matches_every_word_in_the_querys_language(tmp_path, fake):
    corpus, index_dir = base_index(tmp_path, fake)
    store = WatchStore(index_dir)
    words = store.add("missile shield", mode="hybrid", threshold=100)  # no score reaches 100: words alone
    dense = store.add("missile shield", mode="dense", threshold=100)
    write(corpus, "first.jsonl", FIRST + [("u1-shields-en", "en", "Missile shields were discussed at length.")])
    update_index(corpus, index_dir, embedder=fake)
    assert {m.doc_id.rsplit("#", 1)[-1] for m in store.matches(words.watch_id)} == {"u1-hit-en", "u1-shields-en"}
    assert store.matches(dense.watch_id) == []


def test_watches_live_outside_versions_and_survive_a_failed_update(tmp_path, fake):
    corpus, index_dir = base_index(tmp_path, fake)
    store = WatchStore(index_dir)
    watch = store.add(WATCHES["en"], threshold=THRESHOLD)
    write(corpus, "first.jsonl", FIRST)
    update_index(corpus, index_dir, embedder=fake)
    before = store.matches(watch.watch_id)
    assert before and (index_dir / STATE).is_file()
    for path in corpus.iterdir():
        path.unlink()
    with pytest.raises(CorpusError):
        update_index(corpus, index_dir, embedder=fake)
    assert store.get(watch.watch_id) is not None and store.matches(watch.watch_id) == before
    write(corpus, "base.jsonl", BASE)
    build_index(corpus, index_dir, embedder=fake)  # a full rebuild keeps them too
    assert store.matches(watch.watch_id) == before


def test_new_counts_seen_and_since(tmp_path, fake):
    corpus, index_dir = base_index(tmp_path, fake)
    store = WatchStore(index_dir)
    watch = store.add(WATCHES["ru"], threshold=THRESHOLD)
    write(corpus, "first.jsonl", FIRST)
    update_index(corpus, index_dir, embedder=fake)
    total = len(store.matches(watch.watch_id))
    assert store.get(watch.watch_id).new == store.get(watch.watch_id).matches == total > 0
    store.mark_seen(watch.watch_id)
    assert store.get(watch.watch_id).new == 0 and store.matches(watch.watch_id, new_only=True) == []
    assert store.matches(watch.watch_id, since="2999-01-01") == []
    assert len(store.matches(watch.watch_id, since="2000-01-01")) == total
    with pytest.raises(QueryError, match="YYYY-MM-DD"):
        store.matches(watch.watch_id, since="yesterday")
    with pytest.raises(QueryError, match="ISO 639-1"):
        store.add("x", langs=["english"])
    with pytest.raises(QueryError, match="empty"):
        store.add("   ")
    assert store.remove(watch.watch_id) and store.get(watch.watch_id) is None and not store.remove(watch.watch_id)


def test_watch_cli(tmp_path, fake, capsys):
    corpus, index_dir = base_index(tmp_path, fake)
    assert cli(["watch", "--index", str(index_dir), "add", WATCHES["ro"], "--lang", "ro", "--threshold",
                str(THRESHOLD)]) == 0
    assert "watch 1 saved" in capsys.readouterr().out
    write(corpus, "first.jsonl", FIRST)
    update_index(corpus, index_dir, embedder=fake)
    assert cli(["--index", str(index_dir), "watch", "list"]) == 0
    assert "1 new / 1 matches" in capsys.readouterr().out
    assert cli(["watch", "list", "--index", str(index_dir)]) == 0  # --index after the subcommand too
    assert "1 new / 1 matches" in capsys.readouterr().out
    out_file = tmp_path / "matches.jsonl"
    assert cli(["watch", "-i", str(index_dir), "matches", "1", "--jsonl", str(out_file), "--new"]) == 0
    assert "u1-hit-ro" in capsys.readouterr().out
    rows = [json.loads(line) for line in out_file.read_text(encoding="utf-8").splitlines()]
    assert [r["doc_id"].rsplit("#", 1)[-1] for r in rows] == ["u1-hit-ro"] and rows[0]["lang"] == "ro"
    assert cli(["watch", "-i", str(index_dir), "matches", "1", "--new"]) == 0  # seen: nothing new
    assert "0 matches" in capsys.readouterr().out
    assert cli(["watch", "-i", str(index_dir), "remove", "7"]) == 2
    assert cli(["watch", "-i", str(index_dir), "remove", "1"]) == 0


def test_a_damaged_watch_state_never_blocks_an_update(tmp_path, fake):
    import os

    from polyseek.errors import PolyseekError

    corpus, index_dir = base_index(tmp_path, fake)
    os.mkfifo(index_dir / STATE)  # opened for reading, it would block forever
    with pytest.raises(PolyseekError, match="not a regular file"):
        WatchStore(index_dir).list()
    write(corpus, "first.jsonl", FIRST)
    summary = update_index(corpus, index_dir, embedder=fake)
    assert summary.watch_matches == 0 and "not a regular file" in summary.watch_error
    assert "Watches: not evaluated" in summary.to_text()
    (index_dir / STATE).unlink()
    (index_dir / STATE).write_bytes(b"this is not SQLite" * 100)
    summary = update_index(corpus, index_dir, embedder=fake)
    assert "unreadable" in summary.watch_error
