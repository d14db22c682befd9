"""The embedded broker's state file and port checks, without starting Tansu.

A record is only a hint: whatever it holds (nothing, half a write, the wrong shape, a PID that
belongs to some other live process), pharmaflow says one line and never signals a process it
cannot confirm from /proc as this data dir's broker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from pharmaflow.broker.embedded import (
    STATE_ENV,
    EmbeddedBroker,
    PortInUseError,
    _parse,
    check_port,
)
from pharmaflow.errors import PharmaflowError

GOOD = {"pid": 12345, "host": "127.0.0.1", "port": 9092, "started_at": 1.5}

CORRUPT = {
    "empty": (b"", "empty file"),
    "blank": (b" \n", "empty file"),
    "truncated": (b'{"pid": 123, "host": "127.0', "not JSON"),
    "binary": (b"\x00\xff\xfe", "not JSON"),
    "a list": (b"[1, 2]", "expected a JSON object, found list"),
    "a number": (b"42", "expected a JSON object, found int"),
    "no pid": (orjson.dumps({k: v for k, v in GOOD.items() if k != "pid"}), "'pid'"),
    "pid as text": (orjson.dumps({**GOOD, "pid": "123"}), "'pid'"),
    "pid as bool": (orjson.dumps({**GOOD, "pid": True}), "'pid'"),
    "port as float": (orjson.dumps({**GOOD, "port": 9092.5}), "'port'"),
    "port out of range": (orjson.dumps({**GOOD, "port": 70000}), "out of range"),
    "pid zero": (orjson.dumps({**GOOD, "pid": 0}), "out of range"),
    "negative pid": (orjson.dumps({**GOOD, "pid": -1}), "out of range"),
    "no host": (orjson.dumps({**GOOD, "host": ""}), "out of range"),
}


def test_a_good_record_parses() -> None:
    info = _parse(orjson.dumps(GOOD))
    assert (info.pid, info.bootstrap, info.started_at) == (12345, "127.0.0.1:9092", 1.5)


@pytest.mark.parametrize("raw, reason", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_bad_record_says_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        _parse(raw)
    assert reason in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("raw, reason", CORRUPT.values(), ids=CORRUPT.keys())
def test_status_with_a_bad_record_is_not_running_with_one_warning(
    tmp_path: Path, raw: bytes, reason: str
) -> None:
    notes: list[str] = []
    broker = EmbeddedBroker(tmp_path, warn=notes.append)
    broker.record.write_bytes(raw)
    assert broker.info() is None
    assert len(notes) == 1 and "\n" not in notes[0], notes
    assert f"broker state {broker.record} is unreadable" in notes[0] and reason in notes[0]
    assert notes[0].endswith("no broker of this data dir is running, so the record was removed")
    assert not broker.record.exists()
    assert broker.info() is None and len(notes) == 1  # fixed: nothing more to say


def test_stop_with_a_bad_record_is_one_line(tmp_path: Path) -> None:
    notes: list[str] = []
    broker = EmbeddedBroker(tmp_path, warn=notes.append)
    broker.record.write_bytes(b'{"pid": 1')
    with pytest.raises(PharmaflowError) as info:
        broker.stop()
    message = str(info.value)
    assert message.startswith("no embedded broker is running for this data dir (broker state ")
    assert "is unreadable (not JSON" in message and "\n" not in message
    assert notes == []  # the note is inside the one error line, not printed as well
    assert not broker.record.exists()


def test_a_record_that_is_a_directory_is_reported_not_raised(tmp_path: Path) -> None:
    notes: list[str] = []
    broker = EmbeddedBroker(tmp_path, warn=notes.append)
    broker.record.mkdir()
    assert broker.info() is None
    assert len(notes) == 1 and "is unreadable (Is a directory)" in notes[0]
    assert notes[0].endswith(f"remove {broker.record}")


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A live process that looks like a Tansu broker by name (its argv[0] says `tansu`, it
    names a listener URL) but was not started for this data dir: the old check (`tansu` in
    the command line) would have killed it."""
    fake = tmp_path / "bin" / "tansu-impostor"
    fake.parent.mkdir()
    fake.symlink_to(sys.executable)
    proc = subprocess.Popen(
        [str(fake), "-c", "import time; time.sleep(60)", "--listener-url", "tcp://127.0.0.1:1"],
        env={**os.environ, STATE_ENV: str(tmp_path / "another-data-dir" / "broker")},
    )
    try:
        while not Path(f"/proc/{proc.pid}/cmdline").read_bytes():  # just exec'd: not yet set
            time.sleep(0.01)
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("whose", ["pid 1", "an impostor"])
def test_a_record_naming_another_live_process_never_stops_it(
    tmp_path: Path, impostor: subprocess.Popen[bytes], whose: str
) -> None:
    pid = 1 if whose == "pid 1" else impostor.pid
    notes: list[str] = []
    broker = EmbeddedBroker(tmp_path / "state", warn=notes.append)
    broker.state_dir.mkdir()
    broker.record.write_bytes(orjson.dumps({**GOOD, "pid": pid}))
    assert broker.info() is None
    assert notes == [
        f"broker state {broker.record} names pid {pid}, which is not this data dir's broker; "
        "that process was left alone; no broker of this data dir is running, so the record "
        "was removed"
    ]
    broker.record.write_bytes(orjson.dumps({**GOOD, "pid": pid}))
    with pytest.raises(PharmaflowError) as info:
        broker.stop()
    assert str(info.value).startswith("no embedded broker is running for this data dir (")
    assert f"names pid {pid}" in str(info.value)
    assert impostor.poll() is None  # still running: never signalled
    assert Path(f"/proc/{pid}/cmdline").read_bytes()


def test_a_record_of_an_exited_process_is_dropped_quietly(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    notes: list[str] = []
    broker = EmbeddedBroker(tmp_path, warn=notes.append)
    broker.record.write_bytes(orjson.dumps({**GOOD, "pid": gone.pid}))
    assert broker.info() is None
    assert notes == [] and not broker.record.exists()  # a broker that exited: normal


@pytest.mark.parametrize("port", [0, -5, 65536, 70000, True])
def test_a_port_out_of_range_is_one_line(tmp_path: Path, port: int) -> None:
    with pytest.raises(PharmaflowError) as info:
        EmbeddedBroker(tmp_path).start(port=port)
    assert str(info.value) == f"port {port} is out of range; pick a --port from 1 to 65535"
    assert not (tmp_path / "broker.json").exists()


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(PortInUseError) as info:
        check_port("127.0.0.1", busy_port)
    expected = (
        f"port {busy_port} on 127.0.0.1 is in use by another process; "
        "pick another --port or stop it"
    )
    assert str(info.value) == expected
    broker = EmbeddedBroker(tmp_path / "state")
    with pytest.raises(PortInUseError, match="is in use by another process"):
        broker.start(port=busy_port)
    assert sorted(p.name for p in broker.state_dir.iterdir()) == ["broker.lock"]  # no Tansu ran


def test_a_port_just_released_is_free_again() -> None:
    """TIME_WAIT after a broker restart must not count as in use: Tansu's listener (tokio)
    sets SO_REUSEADDR, as this one does, so a restart on the same port binds."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end goes to TIME_WAIT
        client.close()
    check_port("127.0.0.1", port)


def test_a_state_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    state = tmp_path / "broker"
    state.write_text("not a directory")
    broker = EmbeddedBroker(state)
    assert broker.info() is None
    with pytest.raises(PharmaflowError) as info:
        broker.start()
    assert str(info.value).startswith(f"cannot write the broker state in {state} (")
    assert "make the data dir writable or pass another --data-dir" in str(info.value)
    with pytest.raises(PharmaflowError, match="cannot write the broker state"):
        broker.stop()
