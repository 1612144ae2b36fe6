"""The page's news monitoring: watches (saved searches that alert) in the sidebar with a badge of
new matches, "Save as watch" under a search, a watch's matches, and a timeline of a query per
language. The data come from ``index.watches`` and ``search.timeline``, as for the CLI and the
service."""

from __future__ import annotations

from html import escape
from pathlib import Path

import streamlit as st

from index.watches import DEFAULT_THRESHOLD, WatchStore
from polyseek.errors import PolyseekError
from polyseek.languages import language_name
from search.searcher import Searcher
from search.timeline import timeline

OPEN = "watch_open"
SAVED = "watch_saved"
STYLE = """<style>
.ps-match { margin: 0.6rem 0; padding: 0.5rem 0.8rem; border-left: 3px solid #bbb; }
.ps-new { background: #d33; color: white; border-radius: 0.5rem; padding: 0 0.4rem; font-size: 0.8rem; }
.ps-match .ps-text { margin-top: 0.3rem; }
</style>"""


def watches_sidebar(index_dir: Path) -> None:
    """Each watch with a badge "N new"; a click shows its matches."""
    store = WatchStore(index_dir)
    with st.sidebar:
        st.header("Watches")
        if SAVED in st.session_state:
            st.success(st.session_state.pop(SAVED))
        try:
            watches = store.list()
        except PolyseekError as exc:
            st.warning(str(exc))
            return
        if not watches:
            st.caption("No watches yet. Search, then “Save as watch”: each rebuild records what is new.")
        for w in watches:
            langs = f" · {', '.join(w.langs)}" if w.langs else ""
            col_name, col_badge = st.columns([4, 2], vertical_alignment="center")
            if col_name.button(f"{w.query}{langs}", key=f"watch-{w.watch_id}", width="stretch",
                               help=f"{w.matches} matches in all · {w.mode} · threshold {w.threshold:g}"):
                st.session_state[OPEN] = w.watch_id
            if w.new:
                col_badge.badge(f"{w.new} new", color="red")
            else:
                col_badge.caption(f"{w.matches} found")


def save_watch(index_dir: Path, query: str, langs: list[str], filters: dict, mode: str) -> None:
    """A button that saves the current search (query, languages, sources, mode) as a watch."""
    if st.button("Save as watch", key="save_watch", icon=":material/notifications:",
                 help="Every rebuild then records the new passages that match this search, in every language"):
        try:
            watch = WatchStore(index_dir).add(query, langs, filters.get("sources") or [], mode)
        except PolyseekError as exc:
            st.warning(str(exc))
        else:
            st.session_state[SAVED] = (f"Watch {watch.watch_id} saved: each rebuild now records its new matches "
                                       "here, with a badge.")
            st.rerun()


def watch_matches(index_dir: Path) -> None:
    """The matches of the watch opened in the sidebar, newest first (then marked seen)."""
    watch_id = st.session_state.get(OPEN)
    if watch_id is None:
        return
    store = WatchStore(index_dir)
    watch = store.get(watch_id)
    if watch is None:
        st.session_state.pop(OPEN, None)
        return
    found = store.matches(watch_id)  # in the order found: the watch's new ones are the last
    new = {m.match_id for m in found[len(found) - watch.new:]} if watch.new else set()
    st.subheader(f"Watch: {watch.query}")
    langs = ", ".join(language_name(c) for c in watch.langs) or "all languages"
    st.caption(f"{len(found)} matches ({len(new)} new) · {langs} · {watch.mode} · threshold {watch.threshold:g} · "
               f"saved {watch.created_at[:16].replace('T', ' ')} UTC")
    col_close, col_remove = st.columns([1, 1])
    if col_close.button("Close", key="watch_close"):
        st.session_state.pop(OPEN, None)
        st.rerun()
    if col_remove.button("Remove this watch", key="watch_remove"):
        store.remove(watch_id)
        st.session_state.pop(OPEN, None)
        st.rerun()
    rows = []
    for m in reversed(found):  # newest first
        badge = '<span class="ps-new">new</span> ' if m.match_id in new else ""
        rows.append(f'<div class="ps-match" data-lang="{escape(m.lang)}">{badge}<b>{escape(m.title)}</b> '
                    f'<span class="ps-badge">{escape(language_name(m.lang))} · {escape(m.lang)}</span> '
                    f'{m.z:.1f} sd · score {m.score:.3f} · found {escape(m.found_at[:16].replace("T", " "))}'
                    f'<div class="ps-text" lang="{escape(m.lang)}">{escape(m.text[:400])}</div></div>')
    st.html(STYLE + ("".join(rows) or "<p>No matches yet: they are recorded when a rebuild adds passages that match.</p>"))
    store.mark_seen(watch_id)
    st.divider()


def timeline_view(searcher: Searcher, query: str, langs: list[str], filters: dict) -> None:
    """Matching documents per day or week, one chart per language."""
    col_toggle, col_interval, col_threshold = st.columns([2, 2, 2], vertical_alignment="center")
    if not col_toggle.toggle("Timeline", key="timeline", help="When each language's press picked the subject up"):
        return
    interval = col_interval.segmented_control("Per", ["day", "week"], default="day", key="timeline_interval") or "day"
    threshold = col_threshold.number_input(
        "Stands out by (standard deviations)", min_value=-10.0, max_value=20.0, value=DEFAULT_THRESHOLD, step=0.5,
        key="timeline_threshold", help="A document counts when its best passage scores this many standard deviations "
        "above what its language typically scores for the search. In a small corpus about one subject, lower it.")
    try:
        found = timeline(searcher, query, langs or None, interval=interval, sources=filters.get("sources"),
                         since=filters.get("since"), until=filters.get("until"), threshold=threshold)
    except PolyseekError as exc:
        st.warning(str(exc))
        return
    shown = [lang for lang, counts in found.counts.items() if sum(counts)]
    undated = ", ".join(f"{language_name(c)} {n}" for c, n in found.undated.items() if n)
    if not shown:
        st.info("No dated document matches" + (f" (undated: {undated})." if undated else "."))
        return
    import pandas as pd

    frame = pd.DataFrame(found.rows()).set_index("period")  # ISO dates as labels: one bar per period
    columns = st.columns(min(len(shown), 3))
    for i, lang in enumerate(shown):
        with columns[i % len(columns)]:
            st.markdown(f"**{language_name(lang)}** · {sum(found.counts[lang])} documents")
            st.bar_chart(frame[[lang]], height=160, y_label="documents", x_label="")
    st.caption(f"Documents whose best passage stands out by {found.threshold:g} standard deviations from what its "
               f"language typically scores for this search, per "
               f"{interval} of publication." + (f" Undated: {undated}." if undated else ""))
