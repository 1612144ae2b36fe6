import pytest

from index.chunking import chunk_text, split_sentences


def sentences(n, words=6):
    return " ".join(f"Sentence {i} has " + " ".join(f"w{i}x{j}" for j in range(words)) + "." for i in range(n))


def test_offsets_point_into_the_document(fake):
    text = "  First sentence here.\n\nSecond one follows!   Third? " + sentences(30)
    chunks = chunk_text(text, "en", fake, budget=40)
    assert len(chunks) > 3
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip()


def test_passages_respect_the_budget_and_overlap_by_one_sentence(fake):
    text = sentences(40)
    chunks = chunk_text(text, "en", fake, budget=50)
    assert all(c.n_tokens <= 50 for c in chunks)
    spans = split_sentences(text, "en")
    for a, b in zip(chunks, chunks[1:]):
        last_sentence_of_a = [s for s in spans if s[1] == a.end][0]
        assert b.start == last_sentence_of_a[0]  # b starts with a's last sentence
    assert chunks[-1].end == len(text)


def test_a_sentence_longer_than_the_budget_is_cut_not_truncated(fake):
    long_sentence = " ".join(f"word{i}" for i in range(500))
    text = "Short start. " + long_sentence + ". Short end."
    chunks = chunk_text(text, "en", fake, budget=64)
    assert all(c.n_tokens <= 64 for c in chunks)
    covered = "".join(text[c.start : c.end] + " " for c in chunks)
    for i in (0, 250, 499):
        assert f"word{i}" in covered


def test_budget_never_exceeds_the_model_limit(fake):
    chunks = chunk_text(sentences(100), "en", fake, budget=10_000)
    assert max(c.n_tokens for c in chunks) <= fake.max_tokens - 2


def test_tiny_budget_is_refused(fake):
    with pytest.raises(ValueError, match="too small"):
        chunk_text("Some text.", "en", fake, budget=2)


def test_scripts_without_spaces_are_chunked(fake):
    text = "北约秘书长表示，欧洲导弹防御系统不会威胁俄罗斯。俄罗斯要求具有法律约束力的保证。" * 20
    chunks = chunk_text(text, "zh", fake, budget=16)
    assert chunks and all(text[c.start : c.end] == c.text for c in chunks)


@pytest.mark.model
def test_real_passages_of_the_seed_corpus_fit_the_model(real_embedder):
    from conftest import DATA
    from polyseek.embedder import text_token_limit

    limit = text_token_limit(real_embedder)
    for path in DATA.glob("*.txt"):
        text = path.read_text()
        chunks = chunk_text(text, "en", real_embedder, budget=200)
        counts = [len(s) for s in real_embedder.token_spans([c.text for c in chunks])]
        assert max(counts) <= 200 and max(counts) <= limit
        assert chunks[0].start == 0 and chunks[-1].end == len(text.rstrip())
