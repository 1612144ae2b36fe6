from index.corpus import Document, Skipped, read_corpus


def read(root, **kw):
    return {item.doc_id: item for item in read_corpus(root, **kw)}


def test_every_file_is_indexed_or_skipped_with_its_reason(tmp_path):
    (tmp_path / "good.txt").write_text("Hello world. A real article.", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("   \n\t\n")
    (tmp_path / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 10)
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "huge.txt").write_text("x" * 2000)
    items = read(tmp_path, max_bytes=1000)
    assert isinstance(items["good.txt"], Document)
    reasons = {k: v.reason for k, v in items.items() if isinstance(v, Skipped)}
    assert reasons["empty.txt"].startswith("empty")
    assert reasons["blank.md"].startswith("empty")
    assert reasons["binary.txt"].startswith("binary")
    assert reasons["photo.jpg"].startswith("unsupported format '.jpg'")
    assert reasons["huge.txt"].startswith("too large: 2,000 bytes")
    assert len(items) == 6


def test_encodings_bom_and_legacy_bytes_are_decoded(tmp_path):
    (tmp_path / "bom.txt").write_bytes("\ufeffȘtiri din România".encode("utf-8"))
    french = ("Le ministre a déclaré mercredi que les négociations sur la sécurité européenne "
              "étaient arrivées à une étape décisive. Selon lui, les garanties exigées par Moscou "
              "ne pourront être discutées qu'après le retrait des troupes. La réunion, prévue à "
              "Genève, a été reportée à la fin du mois, a précisé le porte-parole du ministère.")
    (tmp_path / "latin1.txt").write_bytes(french.encode("latin-1"))
    (tmp_path / "utf16.txt").write_bytes("مرحبا بالعالم".encode("utf-16"))
    (tmp_path / "nul.txt").write_bytes(b"line one\r\nline two\rline three\x00\x07")
    items = read(tmp_path)
    assert items["bom.txt"].text == "Știri din România"
    assert items["latin1.txt"].text == french
    assert items["utf16.txt"].text == "مرحبا بالعالم"
    # A NUL byte (within the first 8 KiB that are sniffed) marks a file as binary.
    assert isinstance(items["nul.txt"], Skipped)


def test_control_characters_and_newlines_are_normalized(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"first line\r\nsecond\rthird\x07 line")
    assert read(tmp_path)["a.txt"].text == "first line\nsecond\nthird line"


def test_titles_ids_and_ignored_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "note.md").write_text("Intro text\n\n## The Real Title ##\n\nBody.")
    (tmp_path / "long.txt").write_text("word " * 100)
    (tmp_path / ".hidden.txt").write_text("secret")
    (tmp_path / "README.md").write_text("# About this corpus")
    (tmp_path / ".polyseekignore").write_text("# comment\nREADME.md\n")
    items = read(tmp_path)
    assert set(items) == {"sub/note.md", "long.txt"}
    assert items["sub/note.md"].title == "The Real Title"
    assert items["sub/note.md"].format == "md"
    assert items["long.txt"].title.endswith("…") and len(items["long.txt"].title) <= 121
    assert len(items["long.txt"].content_hash) == 64


def test_corpus_stats_lists_what_corpus_paths_lists_in_the_same_order(tmp_path):
    """The update's one-pass listing (os.scandir, with sizes and times) and the walk agree on
    every rule: dot files and folders, links to folders (listed, never followed), broken links,
    ignore patterns, files before subfolders."""
    import os

    from index.corpus import corpus_paths, corpus_stats

    for rel in ["b.txt", "a-b/x.txt", "a/z.txt", "a/y/w.txt", "a.b/v.txt", ".hidden/h.txt", "a/.dot.txt",
                "ä/ü.txt", "A/q.txt", "skip/me.txt", "a/keep.log"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel, encoding="utf-8")
    os.symlink(tmp_path / "a", tmp_path / "link-to-a")
    os.symlink(tmp_path / "missing", tmp_path / "broken")
    for ignore in ([], ["skip/*", "*.log"]):
        listed = corpus_stats(tmp_path, ignore)
        assert [rel for rel, _, _ in listed] == corpus_paths(tmp_path, ignore)
        sizes = {rel: size for rel, size, _ in listed}
        assert sizes["b.txt"] == 5 and sizes["broken"] == -1 and "link-to-a/z.txt" not in sizes
