"""Best-sentence highlighting: logic with the hashing embedder, cross-lingual choice with the
bundled model."""

import pytest

from search.highlight import SentenceHighlighter

PASSAGE = ("Rain is expected in Bucharest on Monday. NATO says the missile shield does not threaten Russia. "
           "The football season starts in August.")


def test_picks_the_sentence_closest_to_the_query(fake):
    h = SentenceHighlighter(fake)
    qvec = fake.embed(["missile shield threaten"], "query")[0]
    [best] = h.best_sentences(qvec, [(PASSAGE, "en")])
    assert PASSAGE[best.start : best.end] == "NATO says the missile shield does not threaten Russia."
    assert 0 < best.similarity <= 1


def test_sentence_vectors_are_cached_across_queries(fake):
    h = SentenceHighlighter(fake)
    q1, q2 = fake.embed(["rain Monday", "football August"], "query")
    h.best_sentences(q1, [(PASSAGE, "en")])
    embedded = fake.texts_embedded
    [best] = h.best_sentences(q2, [(PASSAGE, "en")])
    assert fake.texts_embedded == embedded  # nothing embedded the second time
    assert PASSAGE[best.start : best.end] == "The football season starts in August."


def test_known_answers_from_the_cache_only(fake):
    h = SentenceHighlighter(fake)
    q = fake.embed(["football August"], "query")[0]
    other = ("Another passage. Not seen yet.", "en")
    assert h.known(q, [(PASSAGE, "en"), other]) == {}
    h.best_sentences(q, [(PASSAGE, "en")])
    embedded = fake.texts_embedded
    known = h.known(q, [other, (PASSAGE, "en")])
    assert list(known) == [1] and PASSAGE[known[1].start : known[1].end] == "The football season starts in August."
    assert fake.texts_embedded == embedded


def test_one_batch_for_many_passages_and_none_for_empty_text(fake):
    h = SentenceHighlighter(fake)
    passages = [(PASSAGE, "en"), ("Un singur rând.", "ro"), ("   ", "en"), (PASSAGE, "en")]
    calls = fake.calls
    out = h.best_sentences(fake.embed(["rând"], "query")[0], passages)
    assert fake.calls == calls + 2  # the query above, then one batch for all sentences
    assert out[1] is not None and (out[1].start, out[1].end) == (0, len("Un singur rând."))
    assert out[2] is None
    assert out[0] == out[3]


def test_cache_is_bounded(fake):
    h = SentenceHighlighter(fake, cache_passages=2)
    q = fake.embed(["x"], "query")[0]
    out = h.best_sentences(q, [(f"Passage number {i}.", "en") for i in range(5)])
    assert len(out) == 5 and all(o is not None for o in out)
    assert len(h._cache) == 2


@pytest.mark.model
def test_english_query_highlights_the_right_arabic_sentence(real_embedder):
    sentences = [
        "هطلت أمطار غزيرة على القاهرة يوم الاثنين وتسببت في ازدحام مروري.",
        "طالبت موسكو بضمانات ملزمة قانونيا بأن الدرع الصاروخية لن تستهدف روسيا.",
        "فاز الفريق المحلي بالمباراة النهائية لكأس كرة القدم.",
    ]
    passage = " ".join(sentences)
    h = SentenceHighlighter(real_embedder)
    qvec = real_embedder.embed(["missile defense guarantees"], "query")[0]
    [best] = h.best_sentences(qvec, [(passage, "ar")])
    assert passage[best.start : best.end] == sentences[1]
    qvec = real_embedder.embed(["football final"], "query")[0]
    assert passage[slice(*_span(h.best_sentences(qvec, [(passage, "ar")])[0]))] == sentences[2]


def _span(highlight):
    return highlight.start, highlight.end
