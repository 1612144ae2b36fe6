"""A corpus folder holding every hostile file and record found so far, and what each must
become. Add a case: write a function that creates its files under ``root`` (and, for links,
``outside``) and returns its expected outcomes, and decorate it with ``@case``.

Each outcome is ``(doc_id, None)`` for "indexed" or ``(doc_id, pattern)`` for "skipped with a
reason matching the regular expression". Outcomes may depend on the limits the build runs with
(``limits``): the test builds once with small limits and once with the defaults.
``defaults=False`` leaves a case out of the build with the default limits (one that would only
prove its point after the default minute of reading time).
"""

from __future__ import annotations

import json
import os
import random
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from index.limits import Limits

Outcome = tuple[str, "str | None"]


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path, Path, Limits], list[Outcome]]
    defaults: bool = True


CASES: list[Case] = []


def case(fn=None, *, defaults: bool = True):
    def register(f):
        CASES.append(Case(f.__name__, f, defaults))
        return f
    return register(fn) if fn else register


#: A secret outside the corpus that no link may make searchable.
SECRET = "hunter2-polyseek-secret"
WORDS = ("missile shield guarantees treaty ministers talks security europe sanctions negotiators summit "
         "agreement defence border energy pipeline election parliament coalition budget").split()


def sentences(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(f"Report {i} says the {' '.join(rng.choice(WORDS) for _ in range(9))}." for i in range(n))


def pdf_sharing_one_stream(pages: int, content: bytes) -> bytes:
    """A PDF of ``pages`` pages whose /Contents are all the same compressed stream: a few KB on
    disk that make the reader decompress and parse ``content`` once per page."""
    stream = zlib.compress(content, 9)
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                b"/Contents 4 0 R >>"] * pages
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def jsonl(path: Path, records: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")


# --- the cases ---------------------------------------------------------------------------------

@case
def plain_articles(root, outside, limits):
    (root / "en.txt").write_text("Missile defense in Europe. " + sentences(5, 1), encoding="utf-8")
    (root / "ro.txt").write_text("Scutul antirachetă de la Deveselu. România și NATO au semnat acordul de securitate "
                                 "privind scutul antirachetă, iar Rusia cere garanții.", encoding="utf-8")
    return [("en.txt", None), ("ro.txt", None)]


@case
def fifo(root, outside, limits):
    os.mkfifo(root / "pipe.txt")  # open() for reading would block until a writer comes
    os.mkfifo(root / ".polyseekignore")  # the ignore file too: hidden, so not a document
    return [("pipe.txt", "not a regular file: a FIFO")]


@case
def links_out_of_the_folder(root, outside, limits):
    (outside / "secret.txt").write_text(f"The password is {SECRET}. " + sentences(3, 2), encoding="utf-8")
    (root / "secret.txt").symlink_to(outside / "secret.txt")
    (root / "zero.txt").symlink_to("/dev/zero")  # its size reads 0; reading never ends
    (root / "etc").symlink_to(outside)  # a folder outside
    (root / "up.txt").symlink_to("../outside/secret.txt")  # relative
    return [("secret.txt", "outside the corpus folder"), ("zero.txt", "outside the corpus folder"),
            ("etc", "outside the corpus folder"), ("up.txt", "outside the corpus folder")]


@case
def links_inside_the_folder(root, outside, limits):
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_text("Energy pipeline talks. " + sentences(3, 3), encoding="utf-8")
    (root / "alias").symlink_to(root / "sub")  # a folder inside: not followed (its files are read where they are)
    (root / "inner-link.txt").symlink_to(root / "sub" / "inner.txt")  # a file inside: read, same text
    return [("inner-link.txt", None), ("alias", "links to folders are not followed"),
            ("sub/inner.txt", "duplicate of inner-link.txt")]


@case
def duplicate_and_generated_ids(root, outside, limits):
    jsonl(root / "wire.jsonl", [
        {"id": "a", "text": "First record a. " + sentences(2, 4)},
        {"id": "a", "text": "Second record with the same id. " + sentences(2, 5)},
        {"text": "Record three has no id, so its number is its id. " + sentences(2, 6)},
        {"id": "3", "text": "Record four claims the id 3. " + sentences(2, 7)},
        {"id": 7, "text": "Record five has a numeric id. " + sentences(2, 8)},
        {"id": "x.txt", "text": "Record six has an id like a file name. " + sentences(2, 9)},
    ])
    # A file whose name equals record x.txt's document id.
    (root / "wire.jsonl#x.txt").write_text("A file named like a record. " + sentences(2, 10), encoding="utf-8")
    return [("wire.jsonl#a", None), ("wire.jsonl#a", "already the id of record 1"), ("wire.jsonl#3", None),
            ("wire.jsonl#3", "record 4 has id '3', already the id of record 3"), ("wire.jsonl#7", None),
            ("wire.jsonl#x.txt", None),
            ("wire.jsonl#x.txt", "unsupported format|another document has the same id")]


@case
def lone_surrogates(root, outside, limits):
    # JSON escapes of half a UTF-16 pair: json.loads gives strings SQLite and UTF-8 refuse.
    (root / "surrogates.jsonl").write_text(
        '{"id": "s1", "title": "Broken \\ud83d title", "text": "Emoji cut in half \\ud83d here. Security talks '
        'in Geneva went on for hours."}\n'
        '{"id": "s2\\udc00", "text": "Id with half a pair. The pipeline agreement was signed on Monday."}\n'
        '{"id": "s3", "text": "A real pair \\ud83d\\ude00 stays. The summit ended without agreement."}\n',
        encoding="utf-8")
    return [("surrogates.jsonl#s1", None), ("surrogates.jsonl#s2\ufffd", None), ("surrogates.jsonl#s3", None)]


@case
def regional_language_tags(root, outside, limits):
    jsonl(root / "langs.jsonl", [
        {"id": "br", "lang": "pt-BR", "text": "O governo brasileiro anunciou novas medidas de segurança na fronteira."},
        {"id": "en", "lang": " EN ", "text": "The government announced new border security measures on Monday."},
        {"id": "zh", "lang": "zh_Hant_TW", "text": "政府週一宣布了新的邊境安全措施。"},
        {"id": "de", "lang": "deu", "text": "Die Regierung kündigte am Montag neue Maßnahmen zur Grenzsicherheit an."},
        {"id": "bad", "lang": "xx-YY", "text": "A record with no real language tag."},
        {"id": "num", "lang": 5, "text": "A record whose language is a number."},
        {"id": "und", "lang": "und", "text": "Un record dont la langue est à identifier automatiquement par le système."},
    ])
    return [("langs.jsonl#br", None), ("langs.jsonl#en", None), ("langs.jsonl#zh", None), ("langs.jsonl#de", None),
            ("langs.jsonl#bad", "not an ISO 639 language"), ("langs.jsonl#num", "not an ISO 639 language"),
            ("langs.jsonl#und", None)]


@case
def csv_giant_field_in_the_middle(root, outside, limits):
    giant = sentences(1400, 11)  # about 140,000 characters: over the csv module's 131,072
    assert len(giant) > 131_072
    rows = [("1", "Row one is short. The ministers met in Brussels."), ("2", giant),
            ("3", "Row three comes after the giant field. Talks resume next week."),
            ("4", "Row four too. The treaty was extended.")]
    with open(root / "table.csv", "w", encoding="utf-8", newline="") as f:
        import csv

        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows(rows)
    big = None if len(giant) <= limits.max_chars else "too much text"
    return [("table.csv#1", None), ("table.csv#2", big), ("table.csv#3", None), ("table.csv#4", None)]


@case
def jsonl_hostile_lines(root, outside, limits):
    jsonl(root / "lines.jsonl", [
        "[" * 100_000 + "]" * 100_000,  # nested past the recursion limit
        "{not json",
        '["an", "array"]',
        {"id": "ok", "text": "A good record after the bad lines. The coalition agreed on the budget.",
         "title": "\x1b]0;retitled\x07\x1b[2J", "url": "https://example.org/\x1b[31mred", "source": "Wire\rService"},
    ])
    return [("lines.jsonl#1", "nested too deeply|not JSON"), ("lines.jsonl#2", "not JSON"),
            ("lines.jsonl#3", "not a JSON object"), ("lines.jsonl#ok", None)]


@case
def file_names_with_control_bytes(root, outside, limits):
    name = os.fsdecode(b"bad\xff\x1b[2J name.txt")  # not UTF-8, with an escape sequence
    (root / name).write_text("A file whose name is not UTF-8. The border talks went on.", encoding="utf-8")
    return [("bad\ufffd\x1b[2J name.txt", None)]


@case
def stream_bomb_pdf_text(root, outside, limits):
    # 200 pages share one stream of about 300,000 characters of text: 60 M characters from 33 KB.
    line = b"(Lorem ipsum dolor sit amet, the shared stream says it again.) '\n"
    (root / "bomb-text.pdf").write_bytes(pdf_sharing_one_stream(200, b"BT /F1 10 Tf 50 750 Td 12 TL\n" + line * 5000 + b"ET\n"))
    return [("bomb-text.pdf", "too much text: more than [0-9,]+ characters in the first [0-9,]+ of 200 pages")]


@case(defaults=False)
def stream_bomb_pdf_time(root, outside, limits):
    # 100 pages share one stream of 450,000 empty text operators: seconds per page, no text.
    (root / "bomb-time.pdf").write_bytes(pdf_sharing_one_stream(100, b"BT /F1 10 Tf\n" + b"() Tj\n" * 450_000 + b"ET\n"))
    return [("bomb-time.pdf", "reading took too long")]


@case
def huge_html_page(root, outside, limits):
    rng = random.Random(12)
    paragraphs = "".join(f"<p>Paragraph {i}. {' '.join(rng.choice(WORDS) for _ in range(60))}.</p>\n" for i in range(6_000))
    html = f"<html><head><title>Huge</title></head><body><article>{paragraphs}</article></body></html>"
    (root / "huge.html").write_text(html, encoding="utf-8")
    return [("huge.html", "too much text|reading took too long|too large")]


@case
def deeply_nested_html(root, outside, limits):
    inner = "<p>The ministers met in Brussels on Monday to discuss the treaty and the border talks.</p>"
    (root / "nested.html").write_text("<html><body>" + "<div>" * 100_000 + inner + "</div>" * 100_000 + "</body></html>",
                                      encoding="utf-8")
    return [("nested.html", "no article text|unreadable HTML|nested too deeply")]


@case
def too_many_passages(root, outside, limits):
    text = sentences(900, 13)  # about 90,000 characters in many sentences
    (root / "long.txt").write_text(text, encoding="utf-8")
    return [("long.txt", None if len(text) <= limits.max_chars and limits.max_passages >= 1000
             else "too many passages|too much text")]


@case
def larger_than_the_byte_limit(root, outside, limits):
    size = 3 * 1024 * 1024
    (root / "big.txt").write_text(("The summit ended. " * (size // 18 + 1))[:size], encoding="utf-8")
    return [("big.txt", "too large" if size > limits.max_bytes else "too much text")]


@case
def binary_and_empty(root, outside, limits):
    (root / "blob.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" * 100)
    (root / "empty.md").write_bytes(b"  \n")
    return [("blob.txt", "binary"), ("empty.md", "empty")]


def make_corpus(root: Path, outside: Path, limits: Limits, defaults_only: bool = False) -> list[Outcome]:
    """Create every case's files; return every expected outcome."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    expected = []
    for c in CASES:
        if defaults_only and not c.defaults:
            continue
        expected += c.make(root, outside, limits)
    return expected
