"""SQL statements over long lists of values, run in batches that stay within SQLite's limit on
the parameters of one statement (32,766 by default; far fewer in older builds)."""

from __future__ import annotations

#: Values in one ``IN (...)`` list.
BATCH = 900


def select_in(con, sql: str, values: list, tail: tuple | list = ()) -> list[tuple]:
    """The rows of ``sql`` (its ``{}`` is filled with one ``?`` per value) for every value, on one
    connection; ``tail``: parameters that follow the list in each batch."""
    out = []
    for start in range(0, len(values), BATCH):
        part = list(values[start : start + BATCH])
        out += con.execute(sql.format(",".join("?" * len(part))), [*part, *tail]).fetchall()
    return out


def execute_in(con, sql: str, values: list) -> None:
    """``sql`` (its ``{}`` filled with one ``?`` per value) for every value, in batches."""
    for start in range(0, len(values), BATCH):
        part = list(values[start : start + BATCH])
        con.execute(sql.format(",".join("?" * len(part))), part)
