"""The evaluation command on tiny synthetic parallel sets with the hashing embedder, where the
right numbers can be worked out by hand."""

import json
import subprocess
import sys

import numpy as np
import pytest

from polyseek.embedder import HashingEmbedder
from search.eval import TASKS, evaluate_tatoeba, evaluate_xquad, read_squad
from tests.conftest import ROOT

PARAGRAPHS = {
    "en": ["The old museum in Varanasi opened in 1901 and shows paintings by Monet.",
           "A bridge over the Danube near Zimnicea was finished in 1954 after long delays.",
           "The orchestra from Trondheim plays music by Enescu every summer in the park.",
           "Farmers near Kayseri harvest apricots in July and sell them at the market."],
    "ro": ["Vechiul muzeu din Varanasi s-a deschis în 1901 și expune picturi de Monet.",
           "Un pod peste Dunăre lângă Zimnicea a fost terminat în 1954 după întârzieri lungi.",
           "Orchestra din Trondheim cântă muzică de Enescu în fiecare vară în parc.",
           "Fermierii de lângă Kayseri culeg caise în iulie și le vând la piață."],
}
QUESTIONS = {  # two per paragraph; each names what only its paragraph has
    "en": [["Which painter is shown in Varanasi?", "What opened in 1901?"],
           ["What was built near Zimnicea?", "Which river does the 1954 bridge cross?"],
           ["Who plays Enescu in Trondheim?", "Where does the Trondheim orchestra play?"],
           # the second question is misleading on purpose: "1954" belongs to paragraph 1
           ["What do Kayseri farmers harvest?", "What happened in 1954?"]],
    "ro": [["Pictorul Monet din Varanasi?", "Deschiderea din 1901?"],
           ["Ce s-a construit lângă Zimnicea?", "Podul terminat în 1954?"],
           ["Cine cântă Enescu la Trondheim?", "Unde cântă orchestra din Trondheim?"],
           ["Ce culeg fermierii din Kayseri?", "Ce vând fermierii din Kayseri în piață?"]],
}


def write_squad(folder, lang):
    paragraphs = [{"context": text, "qas": [{"id": f"{lang}{i}{j}", "question": q, "answers": []}
                                            for j, q in enumerate(QUESTIONS[lang][i])]}
                  for i, text in enumerate(PARAGRAPHS[lang])]
    path = folder / f"xquad.{lang}.json"
    path.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}), encoding="utf-8")
    return path


def test_xquad_metrics_match_the_hand_count(tmp_path):
    sets = [read_squad(write_squad(tmp_path, lang)) for lang in ("en", "ro")]
    assert sets[1].lang == "ro" and sets[1].questions[3] == (1, "Podul terminat în 1954?")
    results = evaluate_xquad(sets, HashingEmbedder(4096), ("dense", "hybrid", "bare"), work=tmp_path / "work",
                             progress=False)
    assert results["misdetected_passages"] == 0 and results["build"]["passages"] == 8
    for system in ("dense", "hybrid", "bare"):
        table = results["systems"][system]
        # one English question of eight misses in both target languages; everything else is found
        assert table["en->en"]["r1"] == table["en->ro"]["r1"] == pytest.approx(7 / 8), system
        assert table["ro->en"]["r1"] == table["ro->ro"]["r1"] == 1.0, system
        assert all(table[p]["r10"] == 1.0 for p in ("en->en", "en->ro", "ro->en", "ro->ro"))
        assert table["mean"]["r1"] == pytest.approx((7 / 8 * 2 + 2) / 4)
        assert table["same-language"]["r1"] == pytest.approx((7 / 8 + 1) / 2)
        assert 7 / 8 < table["en->en"]["mrr10"] < 1.0
    # the pipeline loses nothing against the bare model here (MRR may differ: the misleading
    # question ties at zero similarity with three paragraphs, and ties break differently)
    for pair in ("en->en", "en->ro", "ro->en", "ro->ro"):
        dense, bare = results["systems"]["dense"][pair], results["systems"]["bare"][pair]
        assert (dense["r1"], dense["r10"]) == (bare["r1"], bare["r10"])


def test_tatoeba_accuracy_both_directions(tmp_path):
    xxx = ["w0 v0 x0", "w1 v1 x1", "w2 v2 x2", "w3 v3 x3", "w2 x4"]  # line 4 points at line 2
    eng = ["w0 v0 y0", "w1 v1 y1", "w2 v2 y2", "w3 v3 y3", "x0 y4"]  # line 4 points at line 0
    (tmp_path / "tatoeba.ron-eng.ron").write_text("\n".join(xxx) + "\n", encoding="utf-8")
    (tmp_path / "tatoeba.ron-eng.eng").write_text("\n".join(eng) + "\n", encoding="utf-8")
    out = evaluate_tatoeba([(tmp_path / "tatoeba.ron-eng.ron", tmp_path / "tatoeba.ron-eng.eng")],
                           HashingEmbedder(4096), ("dense", "bare"), work=tmp_path / "work", progress=False)
    for system in ("dense", "bare"):
        assert out[system] == {"ron->eng": pytest.approx(0.8), "eng->ron": pytest.approx(0.8)}


def test_command_writes_markdown_json_and_heatmap(tmp_path):
    files = [str(write_squad(tmp_path, lang)) for lang in ("en", "ro")]
    run = subprocess.run([sys.executable, "-m", "search.eval", *files, "--model", "fake:4096", "--bare", "-q",
                          "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "| system | mean R@1 |" in run.stdout and "| bare | 0.9375 |" in run.stdout
    assert "| en | 0.875 / 1.000 /" in run.stdout
    results = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert set(results["systems"]) == {"dense", "hybrid", "bare"} and results["model"] == "fake:4096"
    # the mixed pool runs by default, beside the filtered pairs
    assert set(results["mixed"]) == {"dense", "hybrid", "bare"} and "**Mixed pool, paragraphs**" in run.stdout
    assert set(results["mixed"]["bare"]["by_language"]) == {"en", "ro"}
    assert (tmp_path / "out" / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bad = subprocess.run([sys.executable, "-m", "search.eval", str(tmp_path / "missing.de.json"), "--model", "fake:8"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


# --- the mixed pool and XQuAD-R (LAReQA) -------------------------------------------------------

#: Two sentences per paragraph; each question's words occur only in the answer sentence (the
#: second), in both languages, so the hashing model ranks both translations first.
TWO_SENTENCES = {
    "en": ["Rain fell all week. The museum in Varanasi shows Monet since 1901.",
           "Nobody expected it. The Zimnicea bridge over the Danube opened in 1954."],
    "ro": ["Ploua toata saptamana. Muzeul din Varanasi expune Monet din 1901.",
           "Nimeni nu se astepta. Podul Zimnicea peste Danube s-a deschis in 1954."],
}
DISTINCT = {"en": [(0, "Varanasi Monet 1901"), (1, "Zimnicea Danube 1954")],
            "ro": [(0, "Varanasi Monet 1901"), (1, "Zimnicea Danube 1954")]}


def two_sentence_sets():
    from search.eval import Parallel

    sets = []
    for lang, paragraphs in TWO_SENTENCES.items():
        starts = [p.index(q.split()[0]) for (i, q), p in zip(DISTINCT[lang], paragraphs)]
        sets.append(Parallel(lang, paragraphs, DISTINCT[lang], starts))
    return sets


def test_mixed_pool_and_xquad_r_find_every_translation_of_a_distinctive_question(tmp_path):
    results = evaluate_xquad(two_sentence_sets(), HashingEmbedder(4096), ("dense", "bare"), work=tmp_path / "w",
                             progress=False, tasks=("mixed", "sentences"))
    assert "dense" not in results["systems"]  # the filtered task was not asked for
    for table in (results["mixed"], results["xquad_r"]["systems"]):
        for system in ("dense", "bare"):
            for lang in ("en", "ro"):
                row = table[system]["by_language"][lang]
                # both translations of the answer hold all three words: ranks 1 and 2
                assert (row["map20"], row["r_precision"], row["n"]) == (1.0, 1.0, 2), (system, lang)
            assert table[system]["mean"]["unbiased_own10"] == 0.5
    # 4 paragraphs in the paragraph pool, 8 sentences in the sentence pool: own@10 counts them all
    assert results["mixed"]["bare"]["mean"]["own10"] == 0.5
    assert results["xquad_r"]["candidates"] == {"en": 4, "ro": 4}
    assert results["xquad_r"]["systems"]["bare"]["top10_languages"]["en"] == {"en": 0.5, "ro": 0.5}


def test_xquad_r_candidates_and_answer_sentences_on_the_xquad_fixture():
    from index.chunking import split_sentences
    from search.eval import Parallel
    from search.eval_mixed import sentence_candidates
    from tests.conftest import FIXTURES

    data = json.loads((FIXTURES / "xquad_subset.json").read_text(encoding="utf-8"))
    sets = [Parallel(lang, [p["context"] for p in data[lang]],
                     [(i, q) for i, p in enumerate(data[lang]) for q in p["questions"]],
                     [s for p in data[lang] for s in p["answer_starts"]]) for lang in ("de", "zh", "th")]
    candidates, answer_key = sentence_candidates(sets)
    for s in sets:
        spans = [split_sentences(p, s.lang) for p in s.paragraphs]
        texts = [p[a:b] for p, sp in zip(s.paragraphs, spans) for a, b in sp]
        assert [t for _, t in candidates[s.lang]] == list(dict.fromkeys(texts))  # every sentence, once
        by_key = dict(candidates[s.lang])
        for n, ((gold, _), start) in enumerate(zip(s.questions, s.answer_starts)):
            key = answer_key[(s.lang, n)]
            a, b = next((a, b) for a, b in spans[gold] if s.paragraphs[gold][a:b] == by_key[key])
            assert a <= start < b, (s.lang, n)  # the sentence holding the answer's first character
            assert key.startswith(f"{s.lang}/{gold:04d}-")


def test_mixed_pool_on_the_xquad_fixture_reports_every_language(tmp_path):
    from search.eval import Parallel
    from tests.conftest import FIXTURES

    data = json.loads((FIXTURES / "xquad_subset.json").read_text(encoding="utf-8"))
    langs = ("de", "es", "ru")
    sets = [Parallel(lang, [p["context"] for p in data[lang]],
                     [(i, q) for i, p in enumerate(data[lang]) for q in p["questions"]],
                     [s for p in data[lang] for s in p["answer_starts"]]) for lang in langs]
    results = evaluate_xquad(sets, HashingEmbedder(4096), ("dense", "bare"), work=tmp_path / "w", progress=False,
                             tasks=TASKS)
    for table in (results["mixed"], results["xquad_r"]["systems"]):
        for system in ("dense", "bare"):
            summary = table[system]
            assert set(summary["by_language"]) == set(langs)
            assert all(row["n"] == 16 for row in summary["by_language"].values())
            assert all(0 <= row[m] <= 1 for row in summary["by_language"].values() for m in ("map20", "r_precision", "own10"))
            assert summary["mean"]["map20"] == pytest.approx(np.mean([r["map20"] for r in summary["by_language"].values()]))
            for a in langs:  # each query language's top 10 shares add up to one
                assert sum(summary["top10_languages"][a].values()) == pytest.approx(1.0)
    # the hashing model matches words, which rarely cross languages: the bare model's top 10 is
    # mostly in the query's own language (a third would be no bias)
    assert results["mixed"]["bare"]["mean"]["own10"] > 0.6
    assert set(results["systems"]) == {"dense", "bare"}  # the filtered task ran too
