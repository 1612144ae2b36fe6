"""Splitting a document into passages: whole sentences packed up to a token budget.

Sentences come from sentencex (multilingual, rule-based); their length is measured in the
embedding model's own tokens. Passages overlap by one sentence. A sentence longer than the
budget is cut at token boundaries, so no passage is ever truncated by the model.
"""

from __future__ import annotations

from dataclasses import dataclass

from polyseek.embedder import Embedder, text_token_limit

DEFAULT_CHUNK_TOKENS = 200
LIMIT_MARGIN = 8


@dataclass(frozen=True)
class Chunk:
    start: int  # character offsets of the passage in its document's text
    end: int
    text: str
    n_tokens: int


def split_sentences(text: str, lang: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (whitespace trimmed, empty ones dropped)."""
    import sentencex

    spans, pos = [], 0
    for segment in sentencex.segment(lang if lang and lang != "und" else "en", text):
        found = text.find(segment, pos)
        start = found if found >= 0 else pos
        end = start + len(segment)
        pos = end
        stripped = segment.strip()
        if stripped:
            lead = len(segment) - len(segment.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
    return spans


def chunk_text(text: str, lang: str, embedder: Embedder, budget: int = DEFAULT_CHUNK_TOKENS,
               overlap: int = 1) -> list[Chunk]:
    """Pack the sentences of ``text`` into passages of at most ``budget`` model tokens."""
    if budget < 8:
        raise ValueError(f"chunk budget of {budget} tokens is too small: use at least 8")
    # Joined sentences can tokenize a little differently from the sum of their parts: keep a
    # margin under the model's limit so a passage is never truncated.
    budget = min(budget, text_token_limit(embedder, "passage") - LIMIT_MARGIN)
    sentences = split_sentences(text, lang)
    token_spans = embedder.token_spans([text[a:b] for a, b in sentences])

    # Units: (start, end, tokens) — whole sentences, or token-aligned pieces of long ones.
    units: list[tuple[int, int, int]] = []
    for (start, end), spans in zip(sentences, token_spans):
        if len(spans) <= budget:
            units.append((start, end, len(spans)))
            continue
        for i in range(0, len(spans), budget):
            piece = spans[i : i + budget]
            units.append((start + piece[0][0], start + piece[-1][1], len(piece)))

    chunks: list[Chunk] = []
    group: list[tuple[int, int, int]] = []
    for unit in units:
        if group and sum(u[2] for u in group) + unit[2] > budget:
            chunks.append(_chunk(text, group))
            kept = group[-overlap:] if overlap else []
            group = kept if kept and sum(u[2] for u in kept) + unit[2] <= budget else []
        group.append(unit)
    if group:
        chunks.append(_chunk(text, group))
    chunks = _drop_contained(chunks)
    counts = embedder.token_spans([c.text for c in chunks])  # the real counts, as stored
    return [Chunk(c.start, c.end, c.text, len(n)) for c, n in zip(chunks, counts)]


def _chunk(text: str, group: list[tuple[int, int, int]]) -> Chunk:
    start, end = group[0][0], group[-1][1]
    return Chunk(start, end, text[start:end], sum(u[2] for u in group))


def _drop_contained(chunks: list[Chunk]) -> list[Chunk]:
    """An overlap sentence followed by a too-long sentence can leave a chunk inside its
    neighbour; keep only chunks that add text."""
    out: list[Chunk] = []
    for c in chunks:
        if out and out[-1].start <= c.start and c.end <= out[-1].end:
            continue
        out.append(c)
    return out
