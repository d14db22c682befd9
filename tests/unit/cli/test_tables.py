"""Result layouts for a terminal: aligned rows when they fit, one record per block when not."""

from __future__ import annotations

import io
from decimal import Decimal

from rich.cells import cell_len
from rich.console import Console

from pharmaflow.cli.tables import print_rows, record_lines, table_lines, table_width

WIDE_COLUMNS = [
    "scope",
    "site_id",
    "batches",
    "finished_batches",
    "releasable_batches",
    "rejected_batches",
    "review_batches",
    "batch_pass_rate",
]
WIDE_ROWS = [
    ("ALL", None, 91, 81, 49, 26, 13, Decimal("0.6049")),
    ("SITE", "PL-01", 28, 22, 13, 11, 4, Decimal("0.5909")),
]


def printed(columns, rows, width: int = 80, layout="auto") -> tuple[str, str]:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    used = print_rows(console, columns, rows, layout)
    return used, console.file.getvalue()


def test_a_result_wider_than_80_columns_prints_one_record_per_block():
    assert table_width(WIDE_COLUMNS, WIDE_ROWS) > 80
    used, out = printed(WIDE_COLUMNS, WIDE_ROWS)
    assert used == "vertical"
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("-[ RECORD 1 ]") and "+" in lines[0]
    assert lines[9].startswith("-[ RECORD 2 ]")
    # every column name whole, then its value; null prints as nothing
    assert lines[1:9] == [
        "scope              | ALL",
        "site_id            |",
        "batches            | 91",
        "finished_batches   | 81",
        "releasable_batches | 49",
        "rejected_batches   | 26",
        "review_batches     | 13",
        "batch_pass_rate    | 0.6049",
    ]
    assert lines[10:12] == ["scope              | SITE", "site_id            | PL-01"]


def test_a_result_that_fits_is_an_aligned_table_with_numbers_on_the_right():
    used, out = printed(["status", "n", "rate"], [("COMPLETED", 70, 0.5), ("FAILED", 11, None)])
    assert used == "table"
    assert out.splitlines() == [
        " status    | n  | rate",
        "-----------+----+------",
        " COMPLETED | 70 |  0.5",
        " FAILED    | 11 |",
    ]


def test_layout_can_be_forced_either_way():
    used, out = printed(WIDE_COLUMNS, WIDE_ROWS, layout="table")
    assert used == "table"
    header, _rule, *rows = out.splitlines()
    assert header.split(" | ")[3].strip() == "finished_batches"  # whole, never "finish…"
    assert len(rows) == 2 and max(len(line) for line in out.splitlines()) > 80
    used, out = printed(["a"], [(1,)], layout="vertical")
    assert used == "vertical" and out.splitlines()[1] == "a | 1"


def test_a_single_column_stays_a_table_however_long_its_values():
    used, out = printed(["note"], [("x" * 200,)])
    assert used == "table" and "x" * 200 in out


def test_control_characters_cannot_break_the_layout_or_reach_the_terminal():
    hostile = ("line one\nline two", "\x1b[2J\x1b[31mred", "tab\there", "nul\x00")
    lines = table_lines(["a", "b", "c", "d"], [hostile])
    assert len(lines) == 3
    assert lines[2] == r" line one\nline two | \x1b[2J\x1b[31mred | tab\there | nul\x00"
    assert not any(ch in "\n".join(lines) for ch in "\x1b\t\x00")
    records = record_lines(["a", "b"], [hostile[:2]])
    assert records[1:] == [r"a | line one\nline two", r"b | \x1b[2J\x1b[31mred"]


def test_wide_unicode_aligns_by_terminal_cells():
    header, rule, tokyo, ab = table_lines(["name", "n"], [("東京", 1), ("ab", 22)])
    # 東京 takes four terminal cells, like "name": the separators line up on screen
    assert [
        cell_len(line[: line.index(sep)])
        for line, sep in ((header, "|"), (rule, "+"), (tokyo, "|"), (ab, "|"))
    ] == [6, 6, 6, 6]
    assert tokyo == " 東京 |  1"


def test_no_rows_prints_the_header_or_nothing():
    assert printed(["a", "b"], [])[1].splitlines() == [" a | b", "---+---"]
    assert printed(["a"], [], layout="vertical")[1] == ""
