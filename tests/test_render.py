"""Result HTML: corpus text is always escaped; marks, direction and context are right."""

from search.highlight import Highlight
from search.render import document_html, hit_html, marked
from search.searcher import Hit

HOSTILE = '<script>alert("x")</script> **bold** [link](javascript:alert(1)) <img src=x onerror=alert(1)>'


def _hit(text, lang="en", title="Title", start=0, doc_id="a.txt"):
    return Hit(1, doc_id, title, lang, text, 0.25, start, start + len(text), 0.8)


def test_corpus_text_is_escaped_everywhere():
    hit = _hit(HOSTILE, title="<b>title</b>", doc_id="<i>x</i>.txt")
    html = hit_html(1, hit, Highlight(0, 10, 0.5)) + document_html(HOSTILE, hit, None)
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "**bold** [link](javascript:alert(1))" in html  # Markdown stays literal text (st.html renders no Markdown)


def test_best_sentence_is_marked():
    text = "First sentence. Second one here. Third."
    html = hit_html(3, _hit(text), Highlight(16, 32, 0.9))
    assert '<mark class="ps-best">Second one here.</mark>' in html
    assert 'class="ps-rank">3.<' in html and "English · en" in html


def test_right_to_left_languages_render_right_to_left():
    html = hit_html(1, _hit("مرحبا بالعالم", lang="ar"), None)
    assert 'dir="rtl"' in html and 'lang="ar"' in html and "Arabic · ar" in html
    assert 'dir="ltr"' in hit_html(1, _hit("Salut", lang="ro"), None)


def test_marks_nest_and_clip():
    assert marked("abcdef", [(1, 5, "p"), (2, 4, "b")]) == 'a<mark class="p">b<mark class="b">cd</mark>e</mark>f'
    assert marked("abc", [(0, 3, "p"), (0, 3, "b")]) == '<mark class="p"><mark class="b">abc</mark></mark>'
    assert marked("a<b", [(-5, 99, "p")]) == '<mark class="p">a&lt;b</mark>'
    assert marked("abc", [(2, 2, "p")]) == "abc"


def test_document_view_marks_the_passage_and_cuts_long_documents():
    doc = "x" * 10_000 + "The passage. Its best sentence." + "y" * 10_000
    start = 10_000
    hit = _hit("The passage. Its best sentence.", start=start)
    html = document_html(doc, hit, Highlight(13, 31, 0.7), context=100)
    assert '<mark class="ps-passage">The passage. <mark class="ps-best">Its best sentence.</mark></mark>' in html
    assert "[… 9,900 characters before …]" in html and "[… 9,900 characters after …]" in html
    assert "x" * 100 in html and "x" * 101 not in html
