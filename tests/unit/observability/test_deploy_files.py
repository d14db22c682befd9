"""The shipped deploy/ files hang together: the dashboard names the provisioned datasource,
every alert links a runbook section that exists, every job Prometheus scrapes is one the
rules know, and the provisioning files point where the docs say."""

from __future__ import annotations

import re

import yaml

from tests.unit.observability import deploy_files

DATASOURCE_UID = "pharmaflow-prometheus"


def test_the_datasource_is_provisioned_under_the_uid_the_dashboard_names():
    config = yaml.safe_load(deploy_files.DATASOURCES.read_text())
    assert config["apiVersion"] == 1
    [source] = config["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == DATASOURCE_UID
    assert source["url"] == "${PHARMAFLOW_PROMETHEUS_URL}"


def test_the_dashboard_provider_loads_the_shipped_folder():
    config = yaml.safe_load(deploy_files.DASHBOARD_PROVIDERS.read_text())
    [provider] = config["providers"]
    assert provider["type"] == "file" and provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "${PHARMAFLOW_GRAFANA_DASHBOARDS}"
    assert deploy_files.DASHBOARD.parent.name == "dashboards"


def test_every_panel_queries_the_provisioned_datasource_and_fits_the_grid():
    board = deploy_files.dashboard()
    assert board["uid"] == "pharmaflow-health" and board["schemaVersion"] >= 36
    panels = deploy_files.panels()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID
            assert target["expr"].strip() and target["refId"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["description"], f"{panel['title']}: say what it shows"


def test_the_dashboard_has_the_panels_the_runbook_points_to():
    titles = {p["title"] for p in deploy_files.panels()}
    runbook = deploy_files.RUNBOOK.read_text()
    for found in re.findall(r"\*([A-Z][^*]+)\*", runbook):
        named = " ".join(found.split())
        if named in ("Dashboard", "Alert", "Alerts", "Check", "Do"):
            continue
        assert any(t.startswith(named) for t in titles), f"runbook names a panel {named!r}"
    needed_panels = (
        "Throughput", "Consumer lag", "Dead-letter rate", "Build duration", "Source freshness",
        "Gold freshness", "API latency p95", "Notifications",
    )  # fmt: skip
    for needed in needed_panels:
        assert any(t.startswith(needed) for t in titles), needed


def test_every_alert_links_a_runbook_section_that_exists():
    anchors = deploy_files.runbook_anchors()
    alerts = deploy_files.alerts()
    assert len(alerts) >= 10
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        page, _, section = url.partition("#")
        assert page == "docs/runbook.md", alert["alert"]
        assert section in anchors, f"{alert['alert']}: no section #{section} in runbook.md"
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert alert["annotations"]["summary"]
    brief = {"consumer-lag-growing", "dead-letters-growing", "gold-stale",
             "a-build-failing-its-tests", "a-webhook-failing", "a-worker-down"}  # fmt: skip
    assert brief <= anchors


def test_the_alert_table_of_the_docs_lists_every_alert():
    doc = deploy_files.OBSERVABILITY_DOC.read_text()
    documented = set(re.findall(r"^\| `(Pharmaflow\w+)` \|", doc, flags=re.M))
    assert documented == {a["alert"] for a in deploy_files.alerts()}


def test_prometheus_scrapes_the_jobs_the_rules_select():
    config = yaml.safe_load(deploy_files.PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {"pharmaflow-ingest", "pharmaflow-realtime", "pharmaflow-api"}
    worker_down = next(a for a in deploy_files.alerts() if a["alert"] == "PharmaflowWorkerDown")
    selector = re.search(r'job=~"([^"]+)"', worker_down["expr"]).group(1)  # type: ignore[union-attr]
    assert all(re.fullmatch(selector, job) for job in jobs)
    assert config["rule_files"] == [
        f"rules/{p.name}" for p in sorted(deploy_files.RULE_FILES, key=lambda p: "alerts" in p.name)
    ]


def test_names_in_finds_metrics_and_recording_rules_but_not_labels_or_strings():
    metrics, records = deploy_files.names_in(
        'sum by (event_type) (rate(pharmaflow_ingest_events_landed_total{job="pharmaflow_x"}[5m]))'
        " / on (job) event_type:pharmaflow_ingest_events_landed:rate5m"
        ' and up{job=~"pharmaflow-.+"} and ALERTS'
    )
    assert metrics == {"pharmaflow_ingest_events_landed_total"}
    assert records == {"event_type:pharmaflow_ingest_events_landed:rate5m"}
    assert deploy_files.base_name("pharmaflow_api_request_seconds_bucket") == (
        "pharmaflow_api_request_seconds"
    )
