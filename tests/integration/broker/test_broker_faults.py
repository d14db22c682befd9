"""Tansu losing the race for its port: someone else binds it between pharmaflow's check and
Tansu's own bind. Tansu then logs `AddrInUse`, panics in a worker thread and exits 0, while the
port still answers (the other process holds it), so a connect alone would record a dead broker
as running. What must happen: one line saying the port is in use, no record, no process."""

from __future__ import annotations

from pathlib import Path

import pytest

from pharmaflow.broker import embedded
from pharmaflow.broker.embedded import EmbeddedBroker, PortInUseError

pytestmark = pytest.mark.slow


def test_tansu_failing_to_bind_is_one_line_and_leaves_nothing(
    tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race, made certain: the port is taken after pharmaflow's check has passed.
    monkeypatch.setattr(embedded, "check_port", lambda host, port: None)
    launched: list[int] = []
    popen = embedded.subprocess.Popen

    def recording_popen(*args, **kwargs):  # the real Popen; only the PID is noted
        proc = popen(*args, **kwargs)
        launched.append(proc.pid)
        return proc

    monkeypatch.setattr(embedded.subprocess, "Popen", recording_popen)
    broker = EmbeddedBroker(tmp_path / "broker")
    with pytest.raises(PortInUseError) as info:
        broker.start(port=busy_port)
    assert str(info.value) == (
        f"port {busy_port} on 127.0.0.1 is in use by another process; "
        "pick another --port or stop it"
    )
    assert len(launched) == 1  # Tansu really ran and really failed to bind
    assert "AddrInUse" in broker.log.read_text()
    assert not Path(f"/proc/{launched[0]}").exists()  # exited and reaped: no leftover
    assert not broker.record.exists()
    assert not list(broker.state_dir.glob(".broker.json.*"))  # no half-written record
    assert broker.info() is None
