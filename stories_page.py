"""The Stories view: documents in several languages that report the same event.

A list (title, languages with document counts, first and last date, size, which language
reported it first, which of the corpus's languages never covered it); opening a story shows its
documents per language, side by side, each with its best passage. The story shown is in the
page's address (``?story=…``), so a result card on the search page can open it.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st

from polyseek.languages import label, language_name
from search.render import story_column_html, story_html
from search.searcher import Searcher

STORY_PARAM = "story"
#: Stories listed at most (the largest or latest first).
LIST_LIMIT = 50
#: Languages side by side in an opened story; more wrap onto the next row.
COLUMNS = 4


def stories_view(searcher: Searcher, md: Callable[[object], str] = str) -> None:
    """Draw the view. ``md`` escapes text for Streamlit's Markdown (the page's own)."""
    st.title("Stories")
    if not searcher.has_stories:
        st.info("This index was built before stories existed: rebuild it on the Search page.")
        return
    story_id = st.query_params.get(STORY_PARAM)
    if story_id:
        opened(searcher, story_id, md)
    else:
        listing(searcher)


def listing(searcher: Searcher) -> None:
    st.caption("Documents in several languages that report the same event, grouped when the index was built: "
               "passages linked by how far their similarity stands out from each one's neighbours in other "
               "languages, and reports more than two weeks apart kept apart.")
    counts = searcher.document_languages
    col_langs, col_sort, col_all = st.columns([4, 2, 2], vertical_alignment="bottom")
    langs = col_langs.multiselect("Languages", options=list(counts), key="story_langs", placeholder="All languages",
                                  format_func=lambda code: label(code, None) + f" · {counts[code]} documents")
    sort = col_sort.segmented_control("Order", ["size", "date"], default="size", key="story_sort",
                                      format_func=lambda v: {"size": "Largest", "date": "Latest"}[v])
    singles = col_all.checkbox("Single documents too", key="story_singles",
                               help="Also the documents no other document reports")
    stories = searcher.stories(langs=langs or None, sort=sort or "size", limit=LIST_LIMIT,
                               min_size=1 if singles else 2)
    if not stories:
        st.info("No story is reported by more than one document" + (" in these languages." if langs else ".")
                + ("" if singles else " Tick “Single documents too” to list every document."))
        return
    for story in stories:
        col_story, col_open = st.columns([9, 1], vertical_alignment="center")
        col_story.html(story_html(story))
        if col_open.button("Open", key=f"open-{story.story_id}"):
            st.query_params[STORY_PARAM] = story.story_id
            st.rerun()


def opened(searcher: Searcher, story_id: str, md: Callable[[object], str]) -> None:
    if st.button("All stories", key="all_stories", icon=":material/arrow_back:"):
        del st.query_params[STORY_PARAM]
        st.rerun()
    detail = searcher.story(story_id)
    if detail is None:
        st.warning(f"There is no story {md(story_id)} in the index in service (it may have been rebuilt).")
        return
    story = detail.story
    st.html(story_html(story))
    facts = []
    if story.first_langs and len(story.languages) > 1:
        facts.append("Reported first in " + ", ".join(language_name(c) for c in story.first_langs)
                     + f" ({story.first_date}).")
    facts.append("Never covered in " + ", ".join(language_name(c) for c in story.missing_langs) + "."
                 if story.missing_langs else "Covered in every language of the corpus.")
    st.caption(" ".join(md(f) for f in facts))
    groups = list(detail.by_language().items())
    for start in range(0, len(groups), COLUMNS):
        row = groups[start : start + COLUMNS]
        for column, (lang, documents) in zip(st.columns(len(row)), row):
            column.html(story_column_html(lang, documents))
