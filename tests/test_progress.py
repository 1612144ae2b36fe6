from index.progress import describe


def test_one_bar_across_stages_never_goes_back():
    events = [("reading", 1, 0), ("reading", 4, 0), ("chunking", 2, 4), ("chunking", 4, 4),
              ("embedding", 0, 21), ("embedding", 10, 21), ("embedding", 21, 21), ("writing", 0, 1), ("writing", 1, 1)]
    fractions = [describe(*e)[0] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and fractions[0] >= 0
    assert describe("embedding", 10, 21)[1] == "Embedding passages 10/21"
    assert describe("reading", 4, 0)[1] == "Reading files: 4"
    assert describe("writing", 0, 1)[1] == "Writing the new index…"
    assert describe("embedding", 99, 21)[0] == describe("embedding", 21, 21)[0]  # clamped
