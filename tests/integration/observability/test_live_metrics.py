"""The platform's metrics from the real long-running processes, scraped over HTTP, and a real
Prometheus scraping them with the shipped rules.

One set of processes for the module: an embedded broker holding a small faulty stream, an
ingest worker and a speed-layer worker consuming it (`--metrics-port`, as deployed), and the
API (uvicorn, `pharmaflow.serve.api.app:app_from_env`) over the same data dir, with a build
log in it. Every name the rules and the dashboard read must be among what these processes
export; Prometheus (`/usr/bin/prometheus`, loopback, a free port, a temporary storage dir,
1 s scrapes) must see every target up, answer a `pharmaflow_*` query and evaluate every
shipped rule without an error. Everything started is stopped by its PID.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pharmaflow.broker.embedded import free_port
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import generate
from pharmaflow.warehouse import build_log
from tests.conftest import TEST_KEYS
from tests.e2e.serve_servers import Server, data_dir_env, launch_process, start_api
from tests.kafka import embedded_broker, kafka_url, produce
from tests.unit.observability import deploy_files

pytestmark = pytest.mark.slow

PROMETHEUS = Path("/usr/bin/prometheus")
STREAM = SimConfig(seed=23, days=1, scale=0.05, duplicate_rate=0.03, malformed_rate=0.03)
WAIT_S = 90.0


def launch(name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> Server:
    """A process of ours (no URL of its own: a worker), stopped by its PID."""
    log = log_dir / f"{name}.log"
    return Server(name, "", launch_process(argv, env, log), log)


class Receiver:
    """A webhook receiver on loopback answering 503: the speed layer's notifications fail."""

    def __init__(self) -> None:
        self.posts = 0

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts += 1
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Platform:
    data_dir: Path
    work: Path
    expected_landed: int
    ingest_url: str
    realtime_url: str
    api: Server
    processes: list[Server] = field(default_factory=list)

    def scrape(self, url: str) -> str:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        return response.text

    def pages(self) -> dict[str, str]:
        return {
            "ingest": self.scrape(self.ingest_url),
            "realtime": self.scrape(self.realtime_url),
            "api": self.scrape(self.api.url + "/metrics"),
        }


def samples(page: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == name
    ]


def total(page: str, name: str) -> float:
    return sum(value for _, value in samples(page, name))


def wait_until(check: Callable[[], Any], what: str, processes: list[Server]) -> Any:
    """Poll `check` until it returns something truthy (errors count as not yet)."""
    deadline = time.monotonic() + WAIT_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        for p in processes:
            assert p.proc.poll() is None, f"{p.name} exited:\n{p.log_tail()}"
        try:
            got = check()
            if got:
                return got
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    tails = "\n".join(f"--- {p.name}\n{p.log_tail(1500)}" for p in processes)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})\n{tails}")


def write_build_log(warehouse_dir: Path) -> None:
    """Two builds as `pharmaflow build` records them: one passed, the newest failed 3 tests.
    (A real build takes half a minute; what the metrics read is this file.)"""
    now = datetime.now(UTC)
    for n, (outcome, failed) in enumerate((("success", 0), ("tests_failed", 3))):
        finished = now - timedelta(minutes=10 - 5 * n)
        build_log.append(
            warehouse_dir,
            build_log.BuildRecord(
                build_id=f"obs-{n}", trace_id="obs", target="duckdb",
                started_at=finished - timedelta(seconds=30), finished_at=finished,
                seconds=30.0 + n, outcome=outcome, tests_failed=failed,
                failed_tests=[f"test_{i}" for i in range(failed)],
            ),
        )  # fmt: skip


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    work = tmp_path_factory.mktemp("observability")
    data_dir = work / "data"
    output = generate(STREAM)
    receiver = Receiver()
    processes: list[Server] = []
    api: Server | None = None
    try:
        with embedded_broker(work / "broker", partitions=2) as broker:
            produce(broker.bootstrap, output)
            write_build_log(data_dir / "warehouse")
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("PHARMAFLOW_")},
                **TEST_KEYS,
                "PHARMAFLOW_INGEST_WORKERS": "0",
                "PHARMAFLOW_ALERTS_WEBHOOK_URL": receiver.url,
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            }
            ports = {}
            for command, group in (("ingest", "obs-ingest"), ("realtime", "obs-realtime")):
                ports[command] = free_port()
                argv = [
                    sys.executable, "-m", "pharmaflow", "--data-dir", str(data_dir), command,
                    "--source", kafka_url(broker.bootstrap, group), "--worker-slot", "0",
                    "--batch-size", "20000", "--metrics-port", str(ports[command]),
                ]  # fmt: skip
                processes.append(launch(command, argv, work, env))
            api_env = data_dir_env(data_dir, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
            api = start_api(api_env, work)
            platform = Platform(
                data_dir=data_dir,
                work=work,
                expected_landed=output.stats.valid_unique,
                ingest_url=f"http://127.0.0.1:{ports['ingest']}/metrics",
                realtime_url=f"http://127.0.0.1:{ports['realtime']}/metrics",
                api=api,
                processes=processes,
            )
            # A few requests, so the API's labelled series have samples (a 401 among them).
            with httpx.Client(base_url=api.url, timeout=10) as client:
                for path in ("/health", "/ready", "/v1/orders/stuck"):
                    client.get(path)

            def drained() -> bool:
                ingest = platform.scrape(platform.ingest_url)
                realtime = platform.scrape(platform.realtime_url)
                landed = total(ingest, "pharmaflow_ingest_events_landed_total")
                counted = total(realtime, "pharmaflow_realtime_events_total")
                return landed == counted == platform.expected_landed

            wait_until(drained, "both workers to consume the stream", processes)
            yield platform
    finally:
        for p in processes:
            p.stop()
        if api is not None:
            api.stop()
        receiver.close()


def test_every_name_the_rules_and_the_dashboard_read_is_exported(platform):
    exported: set[str] = set()
    for page in platform.pages().values():
        exported |= deploy_files.exported_names(page)
    assert deploy_files.unexported(exported) == []
    # and every name docs/observability.md lists is served by one of them
    assert sorted(deploy_files.documented_metrics() - exported) == []


def test_the_ingest_worker_reports_what_it_landed_its_lag_and_its_last_commit(platform):
    page = platform.scrape(platform.ingest_url)
    assert total(page, "pharmaflow_ingest_events_landed_total") == platform.expected_landed
    read = total(page, "pharmaflow_ingest_events_consumed_total")
    quarantined = total(page, "pharmaflow_ingest_events_quarantined_total")
    duplicates = total(page, "pharmaflow_ingest_events_duplicate_total")
    assert quarantined > 0 and duplicates > 0
    assert read == platform.expected_landed + quarantined + duplicates
    lag = samples(page, "pharmaflow_ingest_consumer_lag_records")
    assert lag and {labels["partition"] for labels, _ in lag} <= {"0", "1"}
    assert all(value == 0 for _, value in lag), "drained: no lag left"
    [(_, last)] = samples(page, "pharmaflow_ingest_last_batch_timestamp_seconds")
    assert time.time() - 300 < last <= time.time()


def test_the_speed_layer_worker_reports_its_lag_and_the_alert_routes(platform):
    page = platform.scrape(platform.realtime_url)
    assert total(page, "pharmaflow_realtime_events_total") == platform.expected_landed
    assert samples(page, "pharmaflow_realtime_consumer_lag_records")
    assert total(page, "pharmaflow_realtime_events_consumed_total") > platform.expected_landed
    routes = {
        (labels["route"], labels["outcome"])
        for labels, _ in samples(page, "pharmaflow_alerts_notifications_total")
    }
    for route in ("slack", "webhook"):  # slack is disabled (no URL): still exported, at 0
        assert {(route, "sent"), (route, "failed"), (route, "given_up")} <= routes
    assert samples(page, "pharmaflow_alerts_firing")


def test_the_api_exports_the_build_log_and_the_checks(platform):
    page = platform.scrape(platform.api.url + "/metrics")
    runs = {labels["outcome"]: v for labels, v in samples(page, "pharmaflow_build_runs_total")}
    assert runs == {"success": 1, "tests_failed": 1, "error": 0}
    assert total(page, "pharmaflow_build_tests_failed") == 3
    assert total(page, "pharmaflow_build_duration_seconds") == 31
    assert total(page, "pharmaflow_check_run_errors_total") == 0, "pharmaflow check raised"
    checks = {labels["check"] for labels, _ in samples(page, "pharmaflow_check_breached")}
    assert checks == {
        "freshness_source", "freshness_gold", "consumer_lag", "dead_letter_rate",
        "delivery_sla", "build_age", "failed_tests",
    }  # fmt: skip
    requests = samples(page, "pharmaflow_api_requests_total")
    assert {labels["status"] for labels, _ in requests} >= {"200", "401"}


def prometheus_config(platform: Platform, path: Path) -> None:
    def target(url: str) -> str:
        return url.split("//", 1)[1].split("/", 1)[0]

    jobs = {
        "pharmaflow-ingest": target(platform.ingest_url),
        "pharmaflow-realtime": target(platform.realtime_url),
        "pharmaflow-api": target(platform.api.url),
    }
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in deploy_files.RULE_FILES],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [address]}]}
            for job, address in jobs.items()
        ],
    }
    path.write_text(yaml.safe_dump(config))


def test_a_real_prometheus_scrapes_the_live_processes_and_evaluates_the_rules(platform):
    assert PROMETHEUS.exists(), f"{PROMETHEUS} is missing: `make prometheus` installs it"
    config = platform.work / "prometheus.yml"
    prometheus_config(platform, config)
    port = free_port()
    argv = [
        str(PROMETHEUS), f"--config.file={config}",
        f"--storage.tsdb.path={platform.work / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ]  # fmt: skip
    server = launch("prometheus", argv, platform.work, dict(os.environ))
    processes = [*platform.processes, server]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            def query(expr: str) -> list[dict[str, Any]]:
                body = client.get("/api/v1/query", params={"query": expr}).json()
                assert body["status"] == "success", body
                return body["data"]["result"]

            def all_up() -> bool:
                up = {r["metric"]["job"]: r["value"][1] for r in query("up")}
                return up == {"pharmaflow-ingest": "1", "pharmaflow-realtime": "1",
                              "pharmaflow-api": "1"}  # fmt: skip

            wait_until(all_up, "every target up", processes)
            landed = wait_until(
                lambda: query(
                    'sum(pharmaflow_ingest_events_landed_total{job="pharmaflow-ingest"})'
                ),
                "a pharmaflow_* query to answer",
                processes,
            )
            assert float(landed[0]["value"][1]) == platform.expected_landed
            assert wait_until(
                lambda: query("job_topic:pharmaflow_consumer_lag_records:sum"),
                "a recording rule to answer",
                processes,
            )

            def rules_evaluated() -> list[dict[str, Any]] | None:
                groups = client.get("/api/v1/rules").json()["data"]["groups"]
                rules = [r for g in groups for r in g["rules"]]
                if any(r["health"] == "unknown" for r in rules):
                    return None  # not every group evaluated yet
                return rules

            rules = wait_until(rules_evaluated, "every rule evaluated once", processes)
            assert len(rules) == len(deploy_files.rules())
            assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []

            # the newest build failed 3 tests: that alert goes pending (its `for` is 1 min)
            # once the API has been scraped before an evaluation
            def alert_states() -> dict[str, str] | None:
                groups = client.get("/api/v1/rules", params={"type": "alert"}).json()
                states = {
                    r["name"]: r["state"] for g in groups["data"]["groups"] for r in g["rules"]
                }
                return states if states["PharmaflowBuildFailingTests"] != "inactive" else None

            states = wait_until(alert_states, "the failing build's alert", processes)
            assert states["PharmaflowBuildFailingTests"] in ("pending", "firing")
            assert states["PharmaflowWorkerDown"] == "inactive"
    finally:
        server.stop()
    assert server.proc.returncode is not None
