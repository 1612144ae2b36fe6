"""Polyseek's page: search news in any language, see why each passage matched, rebuild the index;
and the stories across languages (``stories_page.py``), each view a page of Streamlit's navigation.

Run it with ``make run`` or ``streamlit run app.py``. Settings come from the environment:
``POLYSEEK_INDEX`` (index folder), ``POLYSEEK_CORPUS`` (articles folder, default ``data``) and
``POLYSEEK_MODEL`` (model for a first build; a rebuild keeps the index's own model).
"""

from __future__ import annotations

import os
import re
import time
from contextlib import contextmanager
from html import escape
from pathlib import Path

import streamlit as st

from index.builder import update_index
from index.corpus import EXTENSIONS
from index.manifest import read_manifest
from index.progress import describe
from index.uploads import UPLOAD_MAX_BYTES, existing, save_uploads
from index.versions import current_version
from polyseek import settings
from polyseek.embedder import load_embedder
from polyseek.errors import IndexNotFoundError, PolyseekError, QueryError
from polyseek.languages import label, language_name
from app_monitor import save_watch, timeline_view, watch_matches, watches_sidebar
from search.highlight import SentenceHighlighter
from search.render import CSS, document_html, hit_html
from search.searcher import DEFAULT_MODE, MAX_QUERY_CHARS, MODES, Searcher, clean_query
from stories_page import STORY_PARAM, stories_view

MAX_RESULTS = 100
EXAMPLES = ["missile defense guarantees", "extinderea tratatului New START", "ضمانات الدفاع الصاروخي"]


# --- resources: loaded once per process ------------------------------------------------------

@st.cache_resource(show_spinner="Loading the model…")
def embedder_for(model: str):
    embedder = load_embedder(model)
    share_cores(embedder)
    embedder.embed(["warm-up"], "query")  # the first call pays one-off costs: not the first search
    return embedder


@st.cache_resource(show_spinner="Opening the index…", max_entries=4)
def searcher_for(version_folder: str) -> Searcher:
    """One open index per version folder: a rebuild makes a new folder, so the page moves to it."""
    manifest = read_manifest(Path(version_folder))
    return Searcher.open_version(Path(version_folder), embedder_for(manifest.model))


@st.cache_resource
def highlighter_for(model: str) -> SentenceHighlighter:
    return SentenceHighlighter(embedder_for(model))


def share_cores(embedder) -> None:
    """Leave half the cores to the browser and Streamlit: on a 2-core machine the page answers
    about twice as fast with one model thread as with two (BENCHMARKS.md). OMP_NUM_THREADS or
    POLYSEEK_THREADS, when set, decide instead."""
    embedder.set_threads(page_threads())


def page_threads() -> int:
    """Model threads while the page serves searches: POLYSEEK_THREADS, else OMP_NUM_THREADS,
    else half the cores."""
    for var in ("POLYSEEK_THREADS", "OMP_NUM_THREADS"):
        wanted = os.environ.get(var, "")
        if wanted.isdigit() and int(wanted) > 0:
            return int(wanted)
    return max(1, (os.cpu_count() or 2) // 2)


@contextmanager
def all_cores(embedder):
    """A build is worth every core while it runs; searches go back to their share after."""
    embedder.set_threads(os.cpu_count() or 1)
    try:
        yield
    finally:
        embedder.set_threads(page_threads())


# --- building -----------------------------------------------------------------------------------

def run_build(index_dir: Path, corpus_dir: Path, model: str, what: str) -> None:
    """Build with a progress bar and stage messages; on success, show the summary and switch the
    page to the new index. A failure leaves the index in service untouched and says why."""
    bar = st.progress(0.0, text=f"{what}: starting…")
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1 or stage == "writing" or done == total:
            last[0] = now
            fraction, message = describe(stage, done, total)
            bar.progress(fraction, text=f"{what}: {message}")

    try:
        embedder = embedder_for(model)
        with all_cores(embedder):
            # An index in service is updated: unchanged passages keep their vectors.
            summary = update_index(corpus_dir, index_dir, embedder=embedder, progress=progress)
    except Exception as exc:  # PolyseekError says what to do; disk full, permissions… must not crash the page
        reason = str(exc) if isinstance(exc, PolyseekError) else f"{type(exc).__name__}: {exc}"
        kept = " The previous index is still in service." if had_index(index_dir) else ""
        flash("error", f"{what} failed: {reason.rstrip('.')}.{kept}")
    else:
        flash("success", summary.to_text())
    st.rerun()


def had_index(index_dir: Path) -> bool:
    try:
        current_version(index_dir)
        return True
    except PolyseekError:
        return False


def flash(kind: str, message: str) -> None:
    """A message shown once, at the top of the next run of the page."""
    st.session_state.setdefault("flash", []).append((kind, message))


def show_flash() -> None:
    for kind, message in st.session_state.pop("flash", []):
        {"error": st.error, "warning": st.warning, "success": st.success}[kind](md(message))


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def md(value) -> str:
    """Text as Streamlit's Markdown shows it literally: file names and messages may hold
    ``*``, ``[x](javascript:…)`` or ``<b>``; line breaks are kept."""
    return _MARKDOWN.sub(r"\\\1", str(value)).replace("\n", "  \n")


# --- sidebar ------------------------------------------------------------------------------------

def sidebar(index_dir: Path, corpus_dir: Path, searcher: Searcher | None, model: str) -> None:
    with st.sidebar:
        st.header("Index")
        if searcher is None:
            st.caption(f"No index in service at {md(index_dir)}.")
        else:
            m = searcher.manifest
            langs = ", ".join(label(code, n) for code, n in m.languages.items())
            rows = [("Model", m.model), ("Documents", f"{m.documents:,}"), ("Passages", f"{m.passages:,}"),
                    ("Languages", langs), ("Built", m.built_at.replace("T", " ").replace("+00:00", " UTC")),
                    ("Index folder", str(index_dir)), ("Version", searcher.folder.name), ("Corpus", m.corpus)]
            st.html('<table class="ps-status">' + "".join(
                f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>")
        if st.button("Rebuild index", key="rebuild", help=f"Bring the index up to date with {md(corpus_dir)}: new and changed articles are embedded, "
                          f"deleted ones dropped, unchanged passages keep their vectors",
                     disabled=searcher is None, width="stretch"):
            run_build(index_dir, corpus_dir, model, "Rebuild")

        st.header("Add articles")
        kinds = [ext.lstrip(".") for ext in EXTENSIONS]
        # A new key after each addition empties the uploader.
        files = st.file_uploader(f"Articles ({', '.join(kinds)}), up to {UPLOAD_MAX_BYTES // 2**20} MB each",
                                 type=kinds, accept_multiple_files=True,
                                 key=f"upload-{st.session_state.get('upload_round', 0)}")
        if files:
            taken = existing(corpus_dir, [f.name for f in files])
            replace = False
            if taken:
                replace = st.checkbox(f"Replace {len(taken)} existing file(s): {md(', '.join(taken))}", key="replace")
            if st.button(f"Add {len(files)} file(s) to {md(corpus_dir)} and rebuild", key="add_files",
                         width="stretch"):
                add_files(index_dir, corpus_dir, model, [(f.name, f.getvalue()) for f in files], replace)


def add_files(index_dir: Path, corpus_dir: Path, model: str, files: list[tuple[str, bytes]], replace: bool) -> None:
    try:
        result = save_uploads(corpus_dir, files, overwrite=replace)
    except Exception as exc:  # PolyseekError says what to do; an OSError must not crash the page either
        flash("error", str(exc) if isinstance(exc, PolyseekError) else f"Not added: {type(exc).__name__}: {exc}")
        st.rerun()
    for name, reason in result.rejected:
        flash("error", f"Not added: {name}: {reason}")
    if result.conflicts:
        flash("warning", f"Not added, the name is taken in {corpus_dir}: {', '.join(result.conflicts)}. "
                         "Tick “Replace” to overwrite.")
    if not result.written:
        st.rerun()
    st.session_state["upload_round"] = st.session_state.get("upload_round", 0) + 1
    flash("success", f"Added to {corpus_dir}: {', '.join(result.written)}")
    run_build(index_dir, corpus_dir, model, "Rebuild")


# --- results ------------------------------------------------------------------------------------

def results(searcher: Searcher, query: str, k: int, langs: list[str], per_document: bool, mode: str,
            filters: dict | None = None) -> None:
    """Results appear as soon as the search is done; each card's best sentence is marked as soon
    as its sentences are embedded (a fraction of a second per passage on a CPU)."""
    started = time.perf_counter()
    try:
        query = clean_query(query)  # the limit of every path, the echo below included
        qvec = searcher.encode_query(query)
        mode = searcher.resolve_mode(mode, query, langs or None)
        hits = searcher.search_vector(qvec, k, langs or None, per_document=per_document, mode=mode, query=query,
                                      **(filters or {}))
        also = {h.passage_id: searcher.same_story(h) for h in hits}
        stories = searcher.stories_by_id({h.story_id for h in hits if h.story_id})
    except QueryError as exc:
        st.warning(md(exc))
        return
    except PolyseekError as exc:  # e.g. an index damaged after it was opened
        st.error(md(exc))
        return
    search_ms = (time.perf_counter() - started) * 1000
    if not hits:
        st.info("No passage matched" + (f" in {', '.join(language_name(c) for c in langs)}." if langs else "."))
        return

    counts: dict[str, int] = {}
    for hit in hits:
        counts[hit.lang] = counts.get(hit.lang, 0) + 1
    spread = ", ".join(f"{language_name(c)} {n}" for c, n in counts.items())
    summary = (f'{len(hits)} {"documents" if per_document else "passages"} in {len(counts)} '
               f'language{"s" if len(counts) != 1 else ""} ({escape(spread)}) · {mode} · search {search_ms:.0f} ms')
    summary_slot = st.empty()
    tag = f'<p class="ps-summary" data-query="{escape(query.strip(), quote=True)}"'
    summary_slot.html(f'{tag} data-state="marking">{summary} · marking the best sentences…</p>')

    # Cards whose sentences are cached are drawn marked at once; the others are drawn plain,
    # then marked one by one as their sentences are embedded.
    highlighter = highlighter_for(searcher.manifest.model)
    started = time.perf_counter()
    ready = highlighter.known(qvec, [(hit.text, hit.lang) for hit in hits])
    pending = []
    for rank, hit in enumerate(hits, 1):
        best = ready.get(rank - 1)
        card = st.empty()
        card.html(hit_html(rank, hit, best, also[hit.passage_id]))
        story = stories.get(hit.story_id)
        if story is not None and story.size > 1:  # "also reported in" opens the story
            langs_of = ", ".join(language_name(code) for code in story.languages)
            if st.button(f"Open the story: {story.size} documents in {langs_of}", key=f"story-{rank}",
                         type="tertiary", icon=":material/article:"):
                st.switch_page(PAGES["stories"], query_params={STORY_PARAM: story.story_id})
        with st.expander(f"Whole document: {md(hit.doc_id)}"):
            text = searcher.document_text(hit.doc_id)
            doc = st.empty()
            if text is None:
                doc.caption("The document is no longer in the index.")
            else:
                doc.html(document_html(text, hit, best))
        if rank - 1 not in ready:
            pending.append((rank, hit, card, doc, text))

    for rank, hit, card, doc, text in pending:
        best = highlighter.best_sentences(qvec, [(hit.text, hit.lang)])[0]
        card.html(hit_html(rank, hit, best, also[hit.passage_id]))
        if text is not None:
            doc.html(document_html(text, hit, best))
    highlight_ms = (time.perf_counter() - started) * 1000
    summary_slot.html(f'{tag} data-state="done">{summary} · best sentences {highlight_ms:.0f} ms</p>')


def more_filters(searcher: Searcher) -> dict:
    """Source, publication dates and order, when the index has such metadata."""
    sources, dates = searcher.sources, searcher.date_range
    if not sources and not dates:
        return {}
    with st.expander("Sources, dates and order", expanded=False):
        col_src, col_from, col_to, col_sort = st.columns([3, 2, 2, 2])
        chosen = col_src.multiselect("Sources", options=list(sources), key="sources", placeholder="All sources",
                                     format_func=lambda name: f"{name} · {sources[name]}")
        since = col_from.date_input("Published from", value=None, key="since", format="YYYY-MM-DD")
        until = col_to.date_input("Published until", value=None, key="until", format="YYYY-MM-DD")
        sort = col_sort.selectbox("Order", ["relevance", "date"], key="sort",
                                  format_func=lambda v: {"relevance": "Most relevant", "date": "Newest first"}[v])
    return {"sources": chosen or None, "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None, "sort": sort}


# --- pages --------------------------------------------------------------------------------------

#: The views of the navigation (set by main()): the search page opens a story on the stories page.
PAGES: dict = {}


def main() -> None:
    st.set_page_config(page_title="Polyseek", page_icon="🔎", layout="wide")
    st.html(CSS)
    PAGES["search"] = st.Page(search_page, title="Search", icon="🔎", url_path="search", default=True)
    PAGES["stories"] = st.Page(stories_page, title="Stories", icon=":material/article:", url_path="stories")
    st.navigation(list(PAGES.values())).run()


def stories_page() -> None:
    """The Stories view (stories_page.py) over the index in service."""
    index_dir = settings.index_dir()
    try:
        searcher = searcher_for(str(current_version(index_dir).resolve()))
    except IndexNotFoundError:
        st.info(f"There is no index yet at {md(index_dir)}: build one on the Search page.")
        return
    except PolyseekError as exc:
        st.error(f"The index at {md(index_dir)} cannot be used: {md(exc)}")
        return
    stories_view(searcher, md)


def search_page() -> None:
    index_dir, corpus_dir = settings.index_dir(), settings.corpus_dir()

    searcher, problem = None, None
    try:
        searcher = searcher_for(str(current_version(index_dir).resolve()))
    except IndexNotFoundError:
        pass
    except PolyseekError as exc:  # a damaged index, or a model that cannot be loaded
        problem = str(exc)
    except Exception as exc:  # whatever else a damaged index folder raises: a message, not a traceback
        problem = f"{type(exc).__name__}: {exc}"
    model = searcher.manifest.model if searcher else settings.model_name()

    st.title("Polyseek")
    st.caption("Search news in any language: a question in one language finds passages in all of them.")
    show_flash()
    sidebar(index_dir, corpus_dir, searcher, model)
    watches_sidebar(index_dir)

    if searcher is None:
        if problem:
            st.error(f"The index at {md(index_dir)} cannot be used: {md(problem)}")
        else:
            st.info(f"There is no index yet at {md(index_dir)}. Build one from the articles in {md(corpus_dir)} "
                    f"with the model {md(model)}.")
        if st.button("Build the index", key="build_first", type="primary"):
            run_build(index_dir, corpus_dir, model, "Build")
        return
    watch_matches(index_dir)  # a watch opened in the sidebar, above the search

    query = st.text_input("Search", key="query", placeholder="Ask in any language, then press Enter",
                          label_visibility="collapsed", max_chars=MAX_QUERY_CHARS)
    col_k, col_langs, col_mode, col_group = st.columns([1, 3, 3, 2], vertical_alignment="bottom")
    k = col_k.number_input("Results", min_value=1, max_value=MAX_RESULTS, value=10, step=1, key="k")
    counts = searcher.languages
    langs = col_langs.multiselect("Languages", options=list(counts), key="langs", placeholder="All languages",
                                  format_func=lambda code: label(code, counts.get(code)))
    modes = list(MODES) if searcher.has_lexical else ["dense"]
    mode = col_mode.segmented_control(
        "Ranking", modes, default=DEFAULT_MODE if DEFAULT_MODE in modes else "dense", key="mode",
        format_func=lambda m: {"auto": "Auto", "dense": "Meaning", "hybrid": "Meaning + words"}[m],
        help="Meaning: the multilingual model alone. Meaning + words: also BM25 word matches in the "
             "query's own language, fused by rank. Auto: words too when the language filter is the "
             "query's own language." + ("" if searcher.has_lexical else " (Rebuild the index to enable words.)"))
    per_document = col_group.checkbox("One passage per document", key="per_document")
    filters = more_filters(searcher)

    if not query.strip():
        st.caption("Type a question and press Enter. Try: " + " · ".join(f"“{e}”" for e in EXAMPLES))
        return
    save_watch(index_dir, query, langs, filters, mode or DEFAULT_MODE)
    timeline_view(searcher, query, langs, filters)
    results(searcher, query, int(k), langs, per_document, mode or DEFAULT_MODE, filters)


def guarded(view) -> None:
    """Run a view; an error that escapes it is shown as a message, never as an exception panel."""
    try:
        view()
    except Exception as exc:
        st.error(f"Something went wrong: {md(type(exc).__name__)}: {md(exc)}. "
                 "Reload the page; if it happens again, rebuild the index.")


guarded(main)
