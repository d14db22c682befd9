"""Result tables for a terminal: psql-style aligned rows, or one record per block when wide.

Rich's `Table` measures and wraps every cell: on a 900-row trace it took most of a second and
squeezed wide results into `finish…` headers on an 80-column terminal. These layouts are plain
text built in one pass (cell widths from `rich.cells.cell_len`, so wide Unicode aligns):

* table: ` a | b ` rows under a header and a `---+---` rule; numbers right-aligned; nothing is
  cut (a forced table wider than the terminal wraps, or pipe it to `less -S`);
* vertical: `-[ RECORD n ]-` blocks of `column | value` lines, like psql's `\\x`: what `auto`
  picks when the table would not fit the console width.

Control characters in values (a newline or an ESC that would repaint the terminal) are shown
escaped, so a hostile value can neither break the alignment nor reach the terminal as a command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from rich.cells import cell_len
from rich.console import Console

Layout = Literal["auto", "table", "vertical"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_CHUNK = 10_000  # lines per write


def text(value: Any) -> str:
    """One value as one printable line ('' for null)."""
    if value is None:
        return ""
    s = value if isinstance(value, str) else str(value)
    if _CONTROL.search(s):
        s = _CONTROL.sub(lambda m: _ESCAPES.get(m[0], f"\\x{ord(m[0]):02x}"), s)
    return s


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _pad(s: str, width: int, right: bool) -> str:
    gap = " " * (width - cell_len(s))
    return gap + s if right else s + gap


@dataclass(frozen=True)
class _Grid:
    """A result as printable cells, measured once (a wide query can return 100,000 rows)."""

    names: list[str]
    cells: list[list[str]]
    widths: list[int]  # terminal cells of each column's widest value or name
    right: list[bool]  # numeric column: every non-null value is a number

    @classmethod
    def of(cls, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> _Grid:
        names = [text(c) for c in columns]
        cells = [[text(v) for v in row] for row in rows]
        widths = [cell_len(n) for n in names]
        right = [bool(rows) for _ in names]
        for row, raw in zip(cells, rows, strict=True):
            for i, (s, v) in enumerate(zip(row, raw, strict=True)):
                widths[i] = max(widths[i], cell_len(s))
                if v is not None and not _is_number(v):
                    right[i] = False
        return cls(names, cells, widths, right)

    @property
    def table_width(self) -> int:
        return sum(self.widths) + 3 * max(len(self.widths) - 1, 0) + 2

    def table(self) -> list[str]:
        widths = self.widths
        lines = [
            " " + " | ".join(_pad(n, w, False) for n, w in zip(self.names, widths, strict=True)),
            "-" + "-+-".join("-" * w for w in widths) + "-",
        ]
        for row in self.cells:
            line = " | ".join(
                _pad(s, w, r) for s, w, r in zip(row, widths, self.right, strict=True)
            )
            lines.append(" " + line)
        return [line.rstrip() for line in lines]

    def records(self, width: int) -> list[str]:
        name_width = max((cell_len(n) for n in self.names), default=0)
        lines: list[str] = []
        for n, values in enumerate(self.cells, start=1):
            value_width = max((cell_len(v) for v in values), default=0)
            label = f"-[ RECORD {n} ]"
            full = min(name_width + 3 + value_width, width)
            if cell_len(label) <= name_width:  # the `+` sits above the ` | ` below
                rule = label + "-" * (name_width + 1 - cell_len(label)) + "+"
            else:
                rule = label
            lines.append(rule + "-" * max(full - cell_len(rule), 0))
            for name, value in zip(self.names, values, strict=True):
                lines.append(f"{_pad(name, name_width, False)} | {value}".rstrip())
        return lines


def table_lines(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """psql's aligned format: header, rule, one line per row."""
    return _Grid.of(columns, rows).table()


def table_width(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Terminal cells the aligned table needs (its widest line)."""
    return _Grid.of(columns, rows).table_width


def record_lines(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int = 80
) -> list[str]:
    """psql's expanded format: a `-[ RECORD n ]-` rule, then `column | value` per line."""
    return _Grid.of(columns, rows).records(width)


def print_rows(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    layout: Layout = "auto",
) -> Layout:
    """Print rows in `layout`; `auto` is a table if it fits the console, else records.
    Returns the layout used."""
    grid = _Grid.of(columns, rows)
    if layout == "auto":
        fits = len(columns) <= 1 or grid.table_width <= console.width
        layout = "table" if fits else "vertical"
    lines = grid.table() if layout == "table" else grid.records(console.width)
    # Straight to the console's file: the values are data, not Rich markup, and need no
    # wrapping (Rich's own pipeline took seconds per 10,000 records).
    out = console.file
    for start in range(0, len(lines), _CHUNK):
        out.write("".join(f"{line}\n" for line in lines[start : start + _CHUNK]))
    out.flush()
    return layout
