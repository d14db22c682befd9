"""The file source reads with ordinary buffered reads: the same batches whatever the block
size, and a file that shrinks while it is read stops the run with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.sources import files
from pharmaflow.ingest.sources.files import CsvFileSource, JsonlFileSource


def write_lines(path: Path, n: int, *, trailing_newline: bool = True, bom: bool = False) -> None:
    text = "\n".join(f'{{"event_id":"e{i:05d}","pad":"{"x" * (i % 37)}"}}' for i in range(n))
    path.write_bytes(
        (b"\xef\xbb\xbf" if bom else b"") + text.encode() + (b"\n" if trailing_newline else b"")
    )


def blobs(path: Path, batch_size: int) -> list[tuple[bytes, int]]:
    return [(b.blob, b.first_offset) for b in JsonlFileSource(path).batches(batch_size)]


@pytest.mark.parametrize("block", [7, 100, 4096, 1 << 22])
@pytest.mark.parametrize("trailing", [True, False])
def test_batches_do_not_depend_on_the_read_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int, trailing: bool
) -> None:
    path = tmp_path / "e.jsonl"
    write_lines(path, 1_003, trailing_newline=trailing, bom=True)
    lines = path.read_bytes()[3:].rstrip(b"\n").split(b"\n")
    monkeypatch.setattr(files, "_BLOCK", block)
    for batch_size in (1, 64, 1_003, 5_000):
        got = blobs(path, batch_size)
        want = [
            (b"\n".join(lines[i : i + batch_size]), i + 1) for i in range(0, len(lines), batch_size)
        ]
        assert got == want, (block, batch_size)


def test_csv_header_is_skipped_with_small_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.csv"
    path.write_text("event_id,event_type\n" + "".join(f"e{i},t\n" for i in range(50)))
    monkeypatch.setattr(files, "_BLOCK", 16)
    batches = list(CsvFileSource(path).batches(20))
    assert [b.first_offset for b in batches] == [2, 22, 42]
    assert batches[0].blob.split(b"\n")[0] == b"e0,t" and batches[-1].blob.endswith(b"e49,t")


def test_a_file_truncated_while_read_stops_after_the_batches_handed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.jsonl"
    write_lines(path, 2_000)
    size = path.stat().st_size
    monkeypatch.setattr(files, "_BLOCK", 4096)
    source = JsonlFileSource(path).batches(10)
    first = next(source)
    assert first.first_offset == 1
    with open(path, "r+b") as fh:
        fh.truncate(size // 3)
    with pytest.raises(PharmaflowError) as caught:
        list(source)
    message = str(caught.value)
    assert "\n" not in message
    assert f"changed while it was read (truncated from {size:,} to {size // 3:,} bytes)" in message
    assert "re-run to resume" in message


def test_lines_appended_while_read_are_left_for_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.jsonl"
    write_lines(path, 500)
    monkeypatch.setattr(files, "_BLOCK", 1024)
    source = JsonlFileSource(path).batches(100)
    batches = [next(source)]
    with open(path, "ab") as fh:
        fh.write(b'{"event_id":"late"}\n')
    batches += list(source)
    assert sum(b.blob.count(b"\n") + 1 for b in batches) == 500


def test_a_file_that_vanished_before_it_was_read_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    write_lines(path, 5)
    source = JsonlFileSource(path)
    path.unlink()
    with pytest.raises(PharmaflowError, match="vanished before it was read"):
        list(source.batches(10))
