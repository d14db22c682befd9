"""Operating-system failures become one line of advice, wherever in a chain they sit."""

from __future__ import annotations

import errno

import pytest

from pharmaflow.errors import os_error_line


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "disk is full"),
        (errno.EDQUOT, "quota"),
        (errno.EROFS, "read-only"),
        (errno.EACCES, "permission denied"),
        (errno.ENOTDIR, "folder is a file"),
    ],
)
def test_errno_gets_its_advice_and_the_path(code, words):
    line = os_error_line(OSError(code, "x", "/data/lake/part.parquet"))
    assert line is not None and words in line and "/data/lake/part.parquet" in line
    assert "\n" not in line


def test_a_full_disk_deep_in_a_chain_is_found():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/d/x")
        except OSError as inner:
            raise RuntimeError("writer thread failed") from inner
    except RuntimeError as outer:
        assert "disk is full" in (os_error_line(outer) or "")


def test_libraries_without_errno_are_matched_on_their_text():
    # DuckDB and Arrow raise their own types with the C library's message
    assert "disk is full" in (
        os_error_line(RuntimeError("IO Error: No space left on device")) or ""
    )


def test_other_errors_are_not_dressed_up():
    assert os_error_line(ValueError("bad")) is None
    assert os_error_line(OSError(errno.EINVAL, "Invalid argument")) is None
