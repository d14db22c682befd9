"""The run log: one JSON object per line, bound fields (nested, per thread and task), the
stderr fallback, and hostile text that must never split or forge a line."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydantic
import pytest

from pharmaflow import logs, tracing
from pharmaflow.config import Settings

HOSTILE = [
    "line one\nline two",
    'crlf\r\n{"level":"CRITICAL","msg":"forged"}',
    "separators \u2028 and \u2029 and NEL \x85 and VT \x0b FF \x0c FS \x1c",
    "a lone surrogate \ud800 and NUL \x00 and DEL \x7f",
    "emoji 🧪, RTL \u202e override, combining e\u0301",
]


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The run log configured into a temporary folder (JSON), undone afterwards."""
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    path = logs.configure(tmp_path / "logs", "DEBUG")
    assert path == tmp_path / "logs" / "pharmaflow.log"
    yield path
    logs.reset()
    root.setLevel(level)


def lines(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    text = raw.decode("utf-8")
    # one record, one line, whichever way a reader splits
    assert text.splitlines() == raw.rstrip(b"\n").decode().split("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_a_line_is_one_json_object_with_the_standard_keys(log_file):
    log = logging.getLogger("pharmaflow.test.shape")
    logs.event(log, "batch_committed", batch_id="b-1", counts={"landed": 3})
    log.warning("plain %s of %d", "text", 2, extra={"fields": {"reason": "x"}})
    first, second = lines(log_file)
    assert list(first)[:4] == ["ts", "level", "logger", "msg"]
    assert first["msg"] == "batch_committed" and first["level"] == "INFO"
    assert first["logger"] == "pharmaflow.test.shape"
    assert first["batch_id"] == "b-1" and first["counts"] == {"landed": 3}
    assert "trace_id" not in first  # nothing bound
    stamp = datetime.fromisoformat(first["ts"].replace("Z", "+00:00"))
    assert first["ts"].endswith("Z") and stamp.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
    assert second["msg"] == "plain text of 2" and second["level"] == "WARNING"
    assert second["reason"] == "x"


def test_fields_nest_and_are_undone_on_exit(log_file):
    log = logging.getLogger("pharmaflow.test.bind")
    with logs.bind(trace_id="outer", run="r1") as bound:
        assert bound == {"trace_id": "outer", "run": "r1"}
        logs.event(log, "a")
        with logs.bind(trace_id="inner", step="s"):
            assert logs.current_trace_id() == "inner"
            logs.event(log, "b", step="override")
        logs.event(log, "c")
        with logs.bind(extra="only"):  # no trace_id given: the outer one stays
            logs.event(log, "d")
    logs.event(log, "e")
    assert logs.current_trace_id() is None and logs.bound() == {}
    a, b, c, d, e = lines(log_file)
    assert (a["trace_id"], a["run"]) == ("outer", "r1") and "step" not in a
    assert (b["trace_id"], b["run"], b["step"]) == ("inner", "r1", "override")
    assert c["trace_id"] == "outer" and "step" not in c
    assert (d["trace_id"], d["extra"]) == ("outer", "only")
    assert "trace_id" not in e and "run" not in e
    assert list(a)[4] == "trace_id"  # right after the record's own keys


def test_the_bound_trace_is_written_even_when_an_exception_unwinds(log_file):
    log = logging.getLogger("pharmaflow.test.bind")
    with pytest.raises(RuntimeError), logs.bind(trace_id="t"):
        raise RuntimeError("boom")
    assert logs.current_trace_id() is None
    try:
        with logs.bind(trace_id="t2"):
            raise ValueError("value that must stay one line\nsecond")
    except ValueError:
        log.exception("failed")
    [line] = lines(log_file)
    assert "trace_id" not in line  # logged after the block
    assert "ValueError" in line["exc"] and "\n" in line["exc"]


def test_threads_each_log_their_own_trace(log_file):
    log = logging.getLogger("pharmaflow.test.threads")
    barrier = threading.Barrier(8)

    def work(n: int) -> None:
        with logs.bind(trace_id=f"trace-{n}", worker=n):
            barrier.wait()
            for i in range(50):
                logs.event(log, "tick", i=i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = lines(log_file)
    assert len(got) == 8 * 50
    assert all(line["trace_id"] == f"trace-{line['worker']}" for line in got)


def test_a_new_thread_does_not_inherit_but_carry_hands_the_fields_over(log_file):
    log = logging.getLogger("pharmaflow.test.carry")
    with logs.bind(trace_id="run-1"):
        plain = threading.Thread(target=lambda: logs.event(log, "plain"))
        carried = threading.Thread(target=logs.carry(lambda: logs.event(log, "carried")))
        plain.start(), plain.join()
        carried.start(), carried.join()
    shared = logs.carry(lambda n: logs.event(log, "shared", n=n))
    with logs.bind(trace_id="caller"):
        shared(0)  # the fields where carry was called, not the caller's: none
    threads = [threading.Thread(target=shared, args=(n,)) for n in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_msg = {}
    for line in lines(log_file):
        by_msg.setdefault(line["msg"], []).append(line)
    assert "trace_id" not in by_msg["plain"][0]
    assert by_msg["carried"][0]["trace_id"] == "run-1"
    assert len(by_msg["shared"]) == 5 and all("trace_id" not in s for s in by_msg["shared"])


def test_asyncio_tasks_each_log_their_own_trace(log_file):
    log = logging.getLogger("pharmaflow.test.tasks")

    async def request(n: int) -> None:
        with logs.bind(trace_id=f"req-{n}", n=n):
            for i in range(5):
                await asyncio.sleep(0)
                logs.event(log, "step", i=i)

    async def main() -> None:
        await asyncio.gather(*(request(n) for n in range(10)))

    asyncio.run(main())
    got = lines(log_file)
    assert len(got) == 50
    assert all(line["trace_id"] == f"req-{line['n']}" for line in got)


@pytest.mark.parametrize("text", HOSTILE)
def test_a_hostile_message_or_field_stays_one_line(log_file, text):
    log = logging.getLogger("pharmaflow.test.hostile")
    log.error(text)
    log.error("with %s arg", text)
    logs.event(log, "field", value=text, nested={"k\nkey": [text]})
    with logs.bind(trace_id=text):
        log.info("bound")
    got = lines(log_file)
    assert len(got) == 4
    assert got[0]["msg"] == text and got[1]["msg"] == f"with {text} arg"
    assert got[2]["value"] == text and got[2]["nested"] == {"k\nkey": [text]}
    assert got[3]["trace_id"] == text
    assert all(line["level"] in {"ERROR", "INFO"} for line in got)  # nothing forged


def test_a_hostile_header_never_reaches_the_log(log_file):
    log = logging.getLogger("pharmaflow.test.header")
    for header in ('abc\r\n{"msg":"forged"}', "x" * 10_240):
        trace_id, origin = tracing.inbound_trace(None, header)
        assert origin == "replaced"
        with logs.bind(trace_id=trace_id):
            logs.event(log, "http_request")
    text = log_file.read_text()
    assert "forged" not in text and "x" * 129 not in text
    assert all(tracing.is_trace_id(line["trace_id"]) for line in lines(log_file))


def test_values_json_cannot_hold_are_written_anyway(log_file):
    log = logging.getLogger("pharmaflow.test.values")
    logs.event(
        log,
        "odd",
        nan=math.nan,
        inf=-math.inf,
        tags={"b", "a"},
        path=Path("/x/y"),
        when=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        n=np.int64(7),
        f=np.float32(0.5),
        obj=object(),
        tuple_key={(1, 2): 3},
        deep=[[[[[[[[[[["bottom"]]]]]]]]]]],
    )
    [line] = lines(log_file)
    assert (line["nan"], line["inf"], line["tags"]) == ("nan", "-inf", ["a", "b"])
    assert (line["path"], line["when"]) == ("/x/y", "2026-01-02T03:04:05.000Z")
    assert (line["n"], line["f"]) == (7, 0.5)
    assert line["obj"].startswith("<object") and line["tuple_key"] == {"(1, 2)": 3}


def test_a_field_named_like_a_record_key_does_not_overwrite_it(log_file):
    log = logging.getLogger("pharmaflow.test.reserved")
    log.info("real", extra={"fields": {"msg": "fake", "ts": "then", "logger": "x"}})
    [line] = lines(log_file)
    assert (line["msg"], line["logger"]) == ("real", "pharmaflow.test.reserved")
    assert (line["field_msg"], line["field_ts"], line["field_logger"]) == ("fake", "then", "x")


def test_a_bad_percent_format_still_logs_a_line(log_file, monkeypatch):
    # pytest's own capture handler (on the root logger) would raise on it: keep it out
    monkeypatch.setattr(logging.getLogger(logs.ROOT_LOGGER), "propagate", False)
    logging.getLogger("pharmaflow.test.bad").info("%d items", "not a number")
    [line] = lines(log_file)
    assert line["msg"] == "%d items"


def test_the_level_filters(tmp_path):
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    try:
        path = logs.configure(tmp_path / "logs", "warning")
        log = logging.getLogger("pharmaflow.test.level")
        logs.event(log, "quiet")
        logs.event(log, "loud", level=logging.WARNING)
        assert [line["msg"] for line in lines(path)] == ["loud"]
    finally:
        logs.reset()
        root.setLevel(level)


def test_the_text_format_is_one_escaped_line_with_fields(tmp_path):
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    try:
        path = logs.configure(tmp_path / "logs", "INFO", log_format="text")
        log = logging.getLogger("pharmaflow.test.text")
        with logs.bind(trace_id="t-1"):
            logs.event(log, "batch_committed", batch_id="b-1", counts={"landed": 2})
            for text in HOSTILE:
                log.error(text, extra={"fields": {"value": text}})
            try:
                raise ValueError("two\nlines")
            except ValueError:
                log.exception("failed")
        raw = path.read_text()
        got = raw.splitlines()
        assert len(got) == 2 + len(HOSTILE) and raw.count("\n") == len(got)
        assert " INFO pharmaflow.test.text batch_committed trace_id=t-1 batch_id=b-1 " in got[0]
        assert got[0].endswith('counts={"landed":2}')
        assert all(" ERROR pharmaflow.test.text " in line for line in got[1:])
        assert "exc=" in got[-1] and "ValueError" in got[-1]
    finally:
        logs.reset()
        root.setLevel(level)


def test_an_unwritable_log_falls_back_to_warnings_on_stderr(tmp_path, capsys):
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the logs folder should be")
    try:
        for target, writable in ((tmp_path / "ro", False), (blocked, True)):
            assert logs.configure(target, "INFO", writable=writable) is None
            log = logging.getLogger("pharmaflow.test.fallback")
            with logs.bind(trace_id="t-ro"):
                logs.event(log, "info_is_not_shown")
                logs.event(log, "warning_is_shown", level=logging.WARNING, n=1)
            err = capsys.readouterr().err.splitlines()
            assert len(err) == 1  # one handler, even after configuring twice
            line = json.loads(err[0])
            assert (line["msg"], line["trace_id"], line["n"]) == ("warning_is_shown", "t-ro", 1)
        assert not (tmp_path / "ro").exists()
    finally:
        logs.reset()
        root.setLevel(level)


def test_configuring_again_moves_the_log_instead_of_doubling_it(tmp_path):
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    log = logging.getLogger("pharmaflow.test.move")
    try:
        first = logs.configure(tmp_path / "a", "INFO")
        assert logs.configure(tmp_path / "a", "INFO") == first  # same place: nothing changes
        logs.event(log, "one")
        second = logs.configure(tmp_path / "b", "INFO")
        logs.event(log, "two")
        assert [line["msg"] for line in lines(first)] == ["one"]
        assert [line["msg"] for line in lines(second)] == ["two"]
    finally:
        logs.reset()
        root.setLevel(level)
    logs.event(log, "three")  # after reset: nowhere of ours
    assert [line["msg"] for line in lines(second)] == ["two"]


def test_a_bad_format_is_refused():
    with pytest.raises(ValueError, match="json or text"):
        logs.configure(Path("/nonexistent"), "INFO", log_format="xml")  # type: ignore[arg-type]


def test_the_log_format_setting(monkeypatch):
    assert Settings().log_format == "json"
    monkeypatch.setenv("PHARMAFLOW_LOG_FORMAT", "TEXT")
    assert Settings().log_format == "text"
    monkeypatch.setenv("PHARMAFLOW_LOG_FORMAT", "xml")
    with pytest.raises(pydantic.ValidationError, match="log_format"):
        Settings()
