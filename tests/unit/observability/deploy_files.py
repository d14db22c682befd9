"""The shipped deploy/ files read as data, and the metric names their expressions use.

Shared by the unit tests (names against in-process registries) and the live tests (names
against what running workers and the API really export). Metric names in PromQL are found by
tokenising: string literals are dropped first (a label value such as "pharmaflow-ingest" is
no name), a token with a colon is a recording rule's name, a token starting `pharmaflow_` is a
metric. Label names never start with `pharmaflow_`, and the Prometheus-made series (`up`,
`ALERTS`) are neither.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pharmaflow-health.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "pharmaflow.yml"
OBSERVABILITY_DOC = ROOT / "docs" / "observability.md"
RUNBOOK = ROOT / "docs" / "runbook.md"

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_TOKEN = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def rules() -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of the shipped rule files."""
    out: list[dict[str, Any]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(group["rules"])
    return out


def alerts() -> list[dict[str, Any]]:
    return [r for r in rules() if "alert" in r]


def recorded() -> set[str]:
    return {r["record"] for r in rules() if "record" in r}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels() -> list[dict[str, Any]]:
    """Every panel of the dashboard, those inside collapsed rows too (rows themselves not)."""
    out = []
    for panel in dashboard()["panels"]:
        if panel["type"] == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every rule and every dashboard target."""
    found = [(r.get("record") or r["alert"], r["expr"]) for r in rules()]
    for panel in panels():
        found.extend((f"panel {panel['title']!r}", t["expr"]) for t in panel["targets"])
    return found


def names_in(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, recording-rule names) an expression reads."""
    tokens = set(_TOKEN.findall(_STRING.sub(" ", expr)))
    return (
        {t for t in tokens if t.startswith("pharmaflow_") and ":" not in t},
        {t for t in tokens if ":" in t},
    )


def base_name(name: str) -> str:
    """A sample or family name without the suffixes a histogram's series add."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def exported_names(exposition: str) -> set[str]:
    """The metric names of a /metrics page (text format): families as their TYPE lines name
    them (a counter with `_total`), and every sample's name, all as `base_name`s."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return {base_name(n) for n in names}


def unexported(exported: set[str]) -> list[str]:
    """Each name an expression uses that `exported` (base names) lacks, with where: `[]` is
    the pass."""
    known_records = recorded()
    missing = []
    for where, expr in expressions():
        metrics, records = names_in(expr)
        missing += [f"{where}: {m}" for m in sorted(metrics) if base_name(m) not in exported]
        missing += [
            f"{where}: {r} (no such recording rule)" for r in sorted(records - known_records)
        ]
    return missing


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {
        anchor(line.lstrip("#"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ") or line.startswith("### ")
    }


def documented_metrics() -> set[str]:
    """The names in the first column of docs/observability.md's metric tables (those headed
    `| name | type |`; the rename table's old names are not metrics)."""
    found = set()
    in_table = False
    for line in OBSERVABILITY_DOC.read_text().splitlines():
        if not line.startswith("|"):
            in_table = False
        elif line.startswith("| name | type |"):
            in_table = True
        elif in_table and (m := re.match(r"\|\s*`(pharmaflow_[a-z0-9_]+)`", line)):
            found.add(m.group(1))
    return found
