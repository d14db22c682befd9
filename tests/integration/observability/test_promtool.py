"""The shipped Prometheus files as Prometheus's own tool reads them: the configuration and
the rule files are valid, and the rules' unit tests (deploy/prometheus/tests) pass.

promtool comes with Debian's `prometheus` package, which `make test` installs (`make
prometheus`); without it these tests fail, saying so, rather than skip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.unit.observability import deploy_files

PROMTOOL = Path("/usr/bin/promtool")


@pytest.fixture(scope="module")
def promtool() -> str:
    assert PROMTOOL.exists(), f"{PROMTOOL} is missing: `make prometheus` installs it"
    return str(PROMTOOL)


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, cwd=deploy_files.ROOT, check=False
    )


def test_the_rule_files_are_valid(promtool):
    assert deploy_files.RULE_FILES
    done = run(promtool, "check", "rules", *map(str, deploy_files.RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(deploy_files.RULE_FILES)


def test_the_configuration_is_valid_with_the_rule_files_it_names(promtool):
    done = run(promtool, "check", "config", str(deploy_files.PROMETHEUS_CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(deploy_files.RULE_FILES)} rule files found" in done.stdout


def test_the_rules_unit_tests_pass(promtool):
    assert deploy_files.RULE_TESTS
    done = run(promtool, "test", "rules", *map(str, deploy_files.RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_unit_tests_cover_the_main_alerts():
    tested = set()
    for path in deploy_files.RULE_TESTS:
        text = path.read_text()
        tested |= {
            a["alert"] for a in deploy_files.alerts() if f"alertname: {a['alert']}\n" in text
        }
    main = {
        "PharmaflowConsumerLagGrowing", "PharmaflowIngestStalled", "PharmaflowDeadLetterRateHigh",
        "PharmaflowGoldStale", "PharmaflowSourceStale", "PharmaflowBuildFailingTests",
        "PharmaflowBuildStale", "PharmaflowWebhookFailing", "PharmaflowNotificationsGivenUp",
        "PharmaflowApiErrorRateHigh", "PharmaflowApiLatencyHigh", "PharmaflowWorkerDown",
    }  # fmt: skip
    assert sorted(main - tested) == []
