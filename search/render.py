"""HTML for results. Every piece of corpus text goes through :func:`html.escape`, so a document
holding ``<script>`` or Markdown tricks shows as the text it is; the markup here is our own."""

from __future__ import annotations

from html import escape

from polyseek.languages import direction, language_name
from search.highlight import Highlight
from search.searcher import Hit
from search.stories import Story, StoryDocument

#: A document view shows at most this many characters on each side of the passage.
DOCUMENT_CONTEXT_CHARS = 6000

CSS = """
<style>
.ps-hit { border: 1px solid rgba(128,128,128,.35); border-radius: .5rem; padding: .6rem .8rem; margin: .3rem 0 .2rem; }
.ps-head { display: flex; flex-wrap: wrap; gap: .5rem; align-items: baseline; font-size: .9rem; margin-bottom: .35rem; }
.ps-rank { font-weight: 700; }
.ps-badge { background: #e8eefc; color: #1d3a8a; border-radius: .8rem; padding: 0 .55rem; font-size: .8rem; }
.ps-badge.rtl { background: #fcefe3; color: #7a3a00; }
.ps-title { font-weight: 600; }
.ps-file, .ps-score { color: #777; font-size: .8rem; }
.ps-text { white-space: pre-wrap; line-height: 1.55; }
.ps-text[dir=rtl] { text-align: right; }
mark.ps-best { background: #ffe58a; padding: 0 .1rem; border-radius: .2rem; }
mark.ps-passage { background: #e6f4ea; }
.ps-doc { max-height: 26rem; overflow-y: auto; white-space: pre-wrap; line-height: 1.5; font-size: .92rem;
          border-left: 3px solid rgba(128,128,128,.35); padding-left: .7rem; }
.ps-doc[dir=rtl] { text-align: right; border-left: none; border-right: 3px solid rgba(128,128,128,.35);
                   padding-left: 0; padding-right: .7rem; }
.ps-gap { color: #999; }
.ps-summary { color: #555; margin: .2rem 0 .4rem; }
.ps-meta { color: #555; font-size: .8rem; }
.ps-also { margin-top: .45rem; font-size: .85rem; color: #444; }
.ps-also ul { margin: .2rem 0 0 1rem; padding: 0; }
.ps-story { border: 1px solid rgba(128,128,128,.35); border-radius: .5rem; padding: .5rem .8rem; margin: .3rem 0 .1rem; }
.ps-story .ps-badge { margin-right: .3rem; }
.ps-story-doc { margin: .5rem 0 .8rem; }
.ps-story-lang .ps-text { font-size: .9rem; }
table.ps-status { font-size: .85rem; border-collapse: collapse; width: 100%; }
table.ps-status th { text-align: left; vertical-align: top; padding: .15rem .5rem .15rem 0; white-space: nowrap; font-weight: 600; }
table.ps-status td { padding: .15rem 0; overflow-wrap: anywhere; }
</style>
"""


def hit_html(rank: int, hit: Hit, highlight: Highlight | None, also: list[Hit] | None = None) -> str:
    """One result card: rank, language badge, title and file, source, date and page, scores,
    the passage with its best sentence marked, and where else the story was reported."""
    dir_ = direction(hit.lang)
    where = " · ".join(escape(x) for x in (hit.source, hit.date[:10], f"page {hit.page}" if hit.page else "") if x)
    link = (f'<a class="ps-url" href="{escape(hit.url, quote=True)}" rel="noopener noreferrer" target="_blank">link</a>'
            if hit.url.lower().startswith(("http://", "https://")) else "")
    head = (
        f'<span class="ps-rank">{rank}.</span>'
        f'<span class="ps-badge {dir_}" title="{escape(language_name(hit.lang))}">'
        f"{escape(language_name(hit.lang))} · {escape(hit.lang)}</span>"
        f'<span class="ps-title" dir="auto">{escape(hit.title)}</span>'
        f'<span class="ps-file">{escape(hit.doc_id)}</span>'
        + (f'<span class="ps-meta">{where}</span>' if where else "") + link +
        f'<span class="ps-score">score {hit.score:.3f} · cosine {hit.cosine:.3f}</span>'
    )
    body = marked(hit.text, [(highlight.start, highlight.end, "ps-best")] if highlight else [])
    return (f'<div class="ps-hit"><div class="ps-head">{head}</div>'
            f'<div class="ps-text" dir="{dir_}" lang="{escape(hit.lang)}">{body}</div>{also_html(also)}</div>')


def also_html(also: list[Hit] | None) -> str:
    """"Also reported in: Română — …, العربية — …": the passage's links in its story (nothing
    when there is none)."""
    if not also:
        return ""
    items = "".join(
        f'<li><span class="ps-badge {direction(o.lang)}">{escape(language_name(o.lang))} · {escape(o.lang)}</span> '
        f'<span dir="auto">{escape(o.title)}</span> — <span dir="{direction(o.lang)}" lang="{escape(o.lang)}">'
        f"{escape(_snippet(o.text))}</span> <span class=\"ps-score\">margin {o.score:.2f} · cosine {o.cosine:.2f}</span></li>"
        for o in also)
    return f'<div class="ps-also">Also reported in:<ul>{items}</ul></div>'


def _snippet(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def document_html(text: str, hit: Hit, highlight: Highlight | None,
                  context: int = DOCUMENT_CONTEXT_CHARS) -> str:
    """The document around the passage: the passage marked, its best sentence marked within it;
    at most ``context`` characters either side, with the cut shown."""
    lo, hi = max(0, hit.start - context), min(len(text), hit.end + context)
    marks = [(hit.start - lo, hit.end - lo, "ps-passage")]
    if highlight:
        marks.append((hit.start - lo + highlight.start, hit.start - lo + highlight.end, "ps-best"))
    body = marked(text[lo:hi], marks)
    before = f'<span class="ps-gap">[… {lo:,} characters before …]</span>\n' if lo else ""
    after = f'\n<span class="ps-gap">[… {len(text) - hi:,} characters after …]</span>' if hi < len(text) else ""
    dir_ = direction(hit.lang)
    return f'<div class="ps-doc" dir="{dir_}" lang="{escape(hit.lang)}">{before}{body}{after}</div>'


def marked(text: str, marks: list[tuple[int, int, str]]) -> str:
    """Escaped ``text`` with ``<mark class=…>`` around each (start, end, class) span. Spans must
    nest or be disjoint (a sentence inside a passage)."""
    events: list[tuple[int, int, str]] = []  # (position, order, tag): closes before opens at a position
    for start, end, cls in marks:
        start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
        if end > start:
            events.append((start, 1, f'<mark class="{escape(cls)}">'))
            events.append((end, 0, "</mark>"))
    events.sort(key=lambda e: (e[0], e[1]))
    out, pos = [], 0
    for at, _, tag in events:
        out.append(escape(text[pos:at]))
        out.append(tag)
        pos = at
    out.append(escape(text[pos:]))
    return "".join(out)


def story_html(story: Story) -> str:
    """One line of the stories list: title, languages with document counts, first and last date,
    size, which language reported it first and which of the corpus's languages never did."""
    langs = " ".join(f'<span class="ps-badge {direction(code)}">{escape(language_name(code))} · {n}</span>'
                     for code, n in story.languages.items())
    dates = (escape(story.first_date) if story.first_date == story.last_date else
             f"{escape(story.first_date)} – {escape(story.last_date)}") if story.first_date else "undated"
    first = (f" · first in {escape(', '.join(language_name(c) for c in story.first_langs))}"
             if story.first_langs and len(story.languages) > 1 else "")
    missing = (f'<div class="ps-meta">Never covered in: {escape(", ".join(language_name(c) for c in story.missing_langs))}</div>'
               if story.missing_langs else "")
    return (f'<div class="ps-story" data-story="{escape(story.story_id, quote=True)}">'
            f'<div class="ps-head"><span class="ps-title" dir="auto">{escape(story.title)}</span>'
            f'<span class="ps-meta">{story.size} document{"s" if story.size != 1 else ""} · {dates}{first}</span></div>'
            f"<div>{langs}</div>{missing}</div>")


def story_column_html(lang: str, documents: list[StoryDocument]) -> str:
    """One language of an opened story: its documents, each with its date, title and best passage."""
    dir_ = direction(lang)
    items = "".join(
        f'<div class="ps-story-doc"><div class="ps-meta">{escape(d.date[:10] or "undated")}'
        + (f" · {escape(d.source)}" if d.source else "") + f' · <span class="ps-file">{escape(d.doc_id)}</span></div>'
        f'<div class="ps-title" dir="auto">{escape(d.title)}</div>'
        f'<div class="ps-text" dir="{dir_}" lang="{escape(lang)}">{escape(_snippet(d.passage, 600))}</div></div>'
        for d in documents)
    return (f'<div class="ps-story-lang" data-lang="{escape(lang, quote=True)}"><span class="ps-badge {dir_}">'
            f"{escape(language_name(lang))} · {escape(lang)}</span>{items}</div>")
