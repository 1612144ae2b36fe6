"""Stories as the query side hands them out: small frozen records with ``to_dict()``.

A story is a set of documents in one or more languages that report the same event, grouped when
the index was built (:mod:`index.stories`). :class:`Story` is a line of the list;
:class:`StoryDetail` is one story opened: its documents, each with its best passage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

SORTS = ("size", "date")


@dataclass(frozen=True)
class Story:
    story_id: str
    title: str  # the title of its most linked document
    size: int  # documents
    languages: dict[str, int]  # documents per language, most first
    first_date: str  # ISO date of its first dated report; "" when none is dated
    last_date: str
    first_langs: tuple[str, ...]  # the language that reported it first (several when tied); () when none is dated
    missing_langs: tuple[str, ...]  # languages of the corpus that never covered it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StoryDocument:
    doc_id: str
    title: str
    lang: str
    date: str
    source: str
    url: str
    passage_id: int  # its best passage: the one most strongly linked to another document of the story
    passage: str
    links: int  # passage links to other documents of the story

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class StoryDetail:
    story: Story
    documents: tuple[StoryDocument, ...]  # earliest first, undated last

    def by_language(self) -> dict[str, list[StoryDocument]]:
        """Documents per language, languages in the story's order (most documents first)."""
        out: dict[str, list[StoryDocument]] = {lang: [] for lang in self.story.languages}
        for doc in self.documents:
            out.setdefault(doc.lang, []).append(doc)
        return out

    def to_dict(self) -> dict:
        return {"story": self.story.to_dict(), "documents": [d.to_dict() for d in self.documents]}


def story_from_row(row: tuple, corpus_langs) -> Story:
    """A :class:`Story` from a row of the store's ``stories`` table."""
    story_id, title, size, languages, first_date, last_date, first_lang, _ = row
    languages = json.loads(languages)
    return Story(story_id, title, int(size), languages, first_date, last_date, tuple(x for x in first_lang.split(",") if x),
                 tuple(lang for lang in corpus_langs if lang not in languages))
