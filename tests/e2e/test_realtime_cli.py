"""`pharmaflow realtime`, `kpis live` and `alerts list` as users run them, on a real broker.

The defect this guards against, known from other engines: a key that goes quiet never gets its
window closed, so a stuck order stays hidden. Here one order is placed and nothing else ever
arrives; with short windows and a short "placed" threshold the speed layer must still close its
window, flag the order stuck and tell Slack (a local HTTP server standing in for it) — by wall
clock alone — and say nothing about the patient.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from pharmaflow.broker.topics import topic_for
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import generate
from tests.conftest import env_with_keys
from tests.kafka import embedded_broker, kafka_url

pytestmark = pytest.mark.slow


class Slack:
    """Records every POST body; answers 200 like Slack's incoming webhooks."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length", 0))
                owner.bodies.append(json.loads(self.rfile.read(size)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/T/B/x"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Slack:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack() -> Iterator[Slack]:
    with Slack() as server:
        yield server


def _placed_now() -> tuple[bytes, dict]:
    """A valid `pharmacy.order.placed` event from the simulator, happening now."""
    output = generate(SimConfig(seed=5, days=1, scale=0.02))
    for line in output.lines:
        event = orjson.loads(line)
        if event.get("event_type") == "pharmacy.order.placed":
            break
    else:
        raise AssertionError("no order placed")
    now = datetime.now(UTC).replace(microsecond=0)
    event["event_time"] = now.isoformat().replace("+00:00", "Z")
    return orjson.dumps(event), event


def _cli(data_dir: Path, env: dict[str, str], *args: str, timeout: float = 120):
    return subprocess.run(
        [sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env=env_with_keys(**env),
        timeout=timeout,
    )


def test_a_quiet_order_still_closes_its_window_gets_flagged_and_reaches_slack(
    tmp_path: Path, slack: Slack
) -> None:
    line, event = _placed_now()
    order_id = event["payload"]["order_id"]
    patient = event["payload"]["patient"]
    env = {
        "PHARMAFLOW_REALTIME_WINDOWS": "[1, 300]",
        "PHARMAFLOW_REALTIME_ALLOWED_LATENESS_S": "1",
        "PHARMAFLOW_REALTIME_RETENTION_S": "3600",
        "PHARMAFLOW_REALTIME_STUCK_HOURS": '{"placed": 0.001}',  # 3.6 seconds
        "PHARMAFLOW_ALERTS_SLACK_URL": slack.url,
    }
    data_dir = tmp_path / "data"
    with embedded_broker(tmp_path / "broker") as broker:
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        producer.produce(topic_for(event["event_type"]), key=order_id.encode(), value=line)
        assert producer.flush(30) == 0
        run = _cli(
            data_dir,
            env,
            "realtime",
            "--source",
            kafka_url(broker.bootstrap, "quiet"),
            "--idle-exit",
            "10",
            "--json",
            timeout=180,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["landed"] == 1 and result["on_time"] == 1 and result["conserved"]

    live = _cli(data_dir, env, "kpis", "live", "--json")
    assert live.returncode == 0, live.stderr
    snapshot = json.loads(live.stdout.strip().splitlines()[-1])
    narrow = [w for w in snapshot["windows"] if w["width_s"] == 1 and w["kpi"] == "events"]
    assert narrow and all(w["final"] for w in narrow)  # closed with no later event
    assert sum(w["value"] for w in narrow) == 1
    (order,) = snapshot["orders"]
    assert order["order_id"] == order_id and order["stage"] == "placed"
    assert order["waiting_s"] > 3.6

    listed = _cli(data_dir, env, "alerts", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    incidents = json.loads(listed.stdout.strip().splitlines()[-1])
    stuck = [i for i in incidents if i["key"] == f"order_stuck:{order_id}"]
    assert len(stuck) == 1 and stuck[0]["state"] == "firing"

    fired = [b for b in slack.bodies if order_id in b["text"]]
    assert len(fired) == 1, slack.bodies  # one notification, however many ticks saw it
    assert "stuck" in fired[0]["text"] and "blocks" in fired[0]

    # Nothing about the patient: not in Slack, the CLI's output, the store or the run log.
    identifiers = [patient["patient_id"], patient["first_name"], patient["last_name"]]
    identifiers += [patient["phone"], patient["email"], patient["address"]["street"]]
    texts = [json.dumps(slack.bodies), live.stdout, listed.stdout, run.stdout, run.stderr]
    texts.append((data_dir / "realtime" / "state.db").read_bytes().decode("latin-1"))
    texts += [p.read_text() for p in (data_dir / "logs").glob("*.log")]
    for text in texts:
        for value in identifiers:
            assert value not in text


def test_kpis_live_before_any_run_says_what_to_do(tmp_path: Path) -> None:
    out = _cli(tmp_path / "data", {}, "kpis", "live")
    assert out.returncode == 1
    assert "run `pharmaflow realtime` first" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_realtime_bad_arguments_are_one_line(tmp_path: Path) -> None:
    for args, says in [
        (["--source", "kafka://127.0.0.1:0"], "bad port"),
        (["--source", str(tmp_path / "missing.jsonl")], "source not found"),
        (["--source", str(tmp_path), "--idle-exit", "3"], "apply to kafka://"),
    ]:
        out = _cli(tmp_path / "data", {}, "realtime", *args)
        assert out.returncode != 0, args
        assert says in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_rules_reading_windows_the_speed_layer_does_not_keep_are_refused(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_bytes(_placed_now()[0] + b"\n")
    env = {"PHARMAFLOW_REALTIME_WINDOWS": "[60]"}  # the default rules read 300-s windows
    out = _cli(tmp_path / "data", env, "realtime", "--source", str(events))
    assert out.returncode == 1
    assert "300-second windows" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_store_that_is_not_a_database_or_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_bytes(_placed_now()[0] + b"\n")
    store = tmp_path / "data" / "realtime" / "state.db"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"\x00garbage, not SQLite" * 200)
    for args in (["realtime", "--source", str(events)], ["kpis", "live"], ["alerts", "list"]):
        out = _cli(tmp_path / "data", {}, *args)
        assert out.returncode == 1, args
        assert "not a database" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert store.read_bytes().startswith(b"\x00garbage")  # left as it was, for a look
    env = {"PHARMAFLOW_REALTIME_STORE": "postgresql://postgres:s3cret@127.0.0.1:1/test"}
    out = _cli(tmp_path / "other", env, "realtime", "--source", str(events))
    assert out.returncode == 1
    assert "cannot reach the realtime store" in out.stderr and "s3cret" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_bad_realtime_settings_are_one_line(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_bytes(_placed_now()[0] + b"\n")
    for env, says in [
        ({"PHARMAFLOW_REALTIME_WINDOWS": "[7]"}, "realtime_windows"),
        ({"PHARMAFLOW_REALTIME_WINDOWS": "[]"}, "realtime_windows"),
        ({"PHARMAFLOW_REALTIME_STUCK_HOURS": '{"teleported": 1}'}, "unknown order stage"),
        ({"PHARMAFLOW_REALTIME_RETENTION_S": "60"}, "retention"),
    ]:
        out = _cli(tmp_path / "data", env, "realtime", "--source", str(events))
        assert out.returncode in (1, 2), env  # 2: a setting that does not parse at all
        assert says in out.stderr and "Traceback" not in out.stderr, (env, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
