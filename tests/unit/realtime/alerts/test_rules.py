"""Rules files: the shipped default loads, routes resolve `${ENV}`, and every mistake is one
line naming the rule (or route) and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.realtime.alerts.rules import (
    AlertRules,
    CarrierRule,
    ColdChainRule,
    LabFailureRule,
    OrderStuckRule,
    QuarantineRule,
    SensorRule,
    format_duration,
    parse_duration,
)

ROUTES = """
routes:
  - name: ops
    type: slack
    url: https://hooks.example.com/services/T0/B0/abc
"""


def load(text: str) -> AlertRules:
    return AlertRules.parse(text, origin="rules.yaml")


def error(text: str) -> str:
    with pytest.raises(PharmaflowError) as info:
        load(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("alert rules rules.yaml: ")
    return message


def test_the_shipped_default_has_one_rule_of_each_kind_and_two_disabled_routes(monkeypatch):
    monkeypatch.delenv("PHARMAFLOW_ALERTS_SLACK_URL", raising=False)
    monkeypatch.delenv("PHARMAFLOW_ALERTS_WEBHOOK_URL", raising=False)
    rules = AlertRules.load(None)
    assert rules.origin == "default"
    assert [type(r) for r in rules.rules] == [
        ColdChainRule,
        SensorRule,
        OrderStuckRule,
        LabFailureRule,
        QuarantineRule,
        CarrierRule,
    ]
    by_id = rules.by_id
    assert by_id["coldchain_excursion"].severity == "critical"
    assert by_id["coldchain_excursion"].repeat_interval == timedelta(hours=2)
    assert by_id["sensor_out_of_spec"].thresholds.consecutive_readings == 3
    assert by_id["order_stuck"].thresholds.hours == {
        "placed": 2,
        "insurance_validated": 24,
        "filled": 24,
        "shipped": 72,
    }
    assert by_id["order_stuck"].repeat_interval == timedelta(hours=4)  # from defaults
    assert by_id["lab_failure"].repeat_interval is None  # never
    assert by_id["carrier_exception_rate"].thresholds.windows == 12  # 1h of 5 min
    assert all(r.routes == ["slack", "webhook"] for r in rules.rules)
    assert {n: r.disabled for n, r in rules.routes.items()} == {
        "slack": "environment variable PHARMAFLOW_ALERTS_SLACK_URL is not set",
        "webhook": "environment variable PHARMAFLOW_ALERTS_WEBHOOK_URL is not set",
    }
    assert rules.enabled_routes(rules.rules[0]) == []
    assert rules.window_widths() == {300}
    assert rules.window_lookback() == timedelta(seconds=300 * 13)


def test_env_vars_fill_urls_and_headers(monkeypatch):
    monkeypatch.setenv("PHARMAFLOW_ALERTS_SLACK_URL", "https://hooks.slack.com/services/T/B/s3cr3t")
    monkeypatch.setenv("HOOK_TOKEN", "tok-123")
    rules = load(
        """
routes:
  - {name: slack, type: slack, url: "${PHARMAFLOW_ALERTS_SLACK_URL}"}
  - name: hook
    type: webhook
    url: https://ops.example.com/${HOOK_TOKEN}/in
    headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
rules:
  - {id: cold, kind: coldchain_excursion, severity: critical, route: hook}
"""
    )
    slack, hook = rules.routes["slack"], rules.routes["hook"]
    assert slack.url == "https://hooks.slack.com/services/T/B/s3cr3t" and slack.disabled is None
    assert slack.host == "hooks.slack.com"
    assert "s3cr3t" not in repr(slack)  # the credential is kept out of reprs
    assert hook.url == "https://ops.example.com/tok-123/in"
    assert hook.headers == {"Authorization": "Bearer tok-123"}
    assert rules.by_id["cold"].routes == ["hook"]
    assert [r.name for r in rules.enabled_routes(rules.by_id["cold"])] == ["hook"]


def test_a_missing_variable_disables_a_route_unless_it_is_required(monkeypatch):
    monkeypatch.delenv("NOPE_URL", raising=False)
    text = "routes:\n  - {name: pager, type: webhook, url: '${NOPE_URL}'%s}\n"
    assert load(text % "").routes["pager"].disabled == "environment variable NOPE_URL is not set"
    assert error(text % ", required: true") == (
        "alert rules rules.yaml: route 'pager' field url: environment variable NOPE_URL is not set"
    )
    monkeypatch.setenv("NOPE_URL", "")  # set but empty: the same as unset
    assert load(text % "").routes["pager"].disabled is not None


def test_a_url_that_is_not_http_is_refused_without_echoing_it(monkeypatch):
    monkeypatch.setenv("SECRET_URL", "hooks.slack.com/services/T/B/s3cr3t")
    message = error("routes:\n  - {name: s, type: slack, url: '${SECRET_URL}'}\n")
    assert "route 's' field url: expected an http:// or https:// URL" in message
    assert "s3cr3t" not in message


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{id: cold, kind: cold_chain, severity: critical}",
            "rule 'cold' field kind: 'cold_chain' is unknown; expected one of coldchain_excursion,",
        ),
        ("{id: cold, severity: critical}", "rule 'cold' field kind: missing"),
        (
            "{id: cold, kind: coldchain_excursion, severity: high}",
            "rule 'cold' field severity: Input should be 'info', 'warning' or 'critical'",
        ),
        (
            "{id: cold, kind: coldchain_excursion, severity: info, "
            "thresholds: {minutes_out_of_range: lots}}",
            "rule 'cold' field thresholds.minutes_out_of_range: Input should be a valid number",
        ),
        (
            "{id: cold, kind: coldchain_excursion, severity: info, "
            "thresholds: {in_excursion: false, minutes_out_of_range: null}}",
            "rule 'cold' field thresholds: set in_excursion: true or a minutes_out_of_range",
        ),
        (
            "{id: s, kind: sensor_out_of_spec, severity: info, "
            "thresholds: {consecutive_reading: 3}}",
            "rule 's' field thresholds.consecutive_reading: Extra inputs are not permitted",
        ),
        (
            "{id: s, kind: sensor_out_of_spec, severity: info, "
            "thresholds: {consecutive_readings: 0}}",
            "rule 's' field thresholds.consecutive_readings: Input should be greater than or",
        ),
        (
            "{id: stuck, kind: order_stuck, severity: info, thresholds: {hours: {pending: 2}}}",
            "rule 'stuck' field thresholds.hours.pending.[key]: Input should be 'placed',",
        ),
        (
            "{id: stuck, kind: order_stuck, severity: info, repeat_interval: 4 hours}",
            "rule 'stuck' field repeat_interval: '4 hours' is not a duration",
        ),
        (
            "{id: q, kind: quarantine_rate, severity: info, thresholds: {percent: 150}}",
            "rule 'q' field thresholds.percent: Input should be less than or equal to 100",
        ),
        (
            "{id: q, kind: quarantine_rate, severity: info, thresholds: {width: 300s, over: 450s}}",
            "rule 'q' field thresholds: over must be a whole multiple of width",
        ),
        (
            "{id: q, kind: quarantine_rate, severity: info, thresholds: {width: never}}",
            "rule 'q' field thresholds.width: must be a positive duration",
        ),
        (
            "{id: c, kind: carrier_exception_rate, severity: info, for_each: pharmacy}",
            "rule 'c' field for_each: Input should be 'carrier' or 'all'",
        ),
        (
            "{id: c, kind: lab_failure, severity: info, routes: [pager]}",
            "rule 'c' field routes: no route named 'pager' (routes: ops)",
        ),
        (
            "{id: c, kind: lab_failure, severity: info, route: ops, routes: [ops]}",
            "rule 'c' field (top level): give either route or routes, not both",
        ),
        (
            "{id: Bad Id, kind: lab_failure, severity: info}",
            "rule 'Bad Id' field id: String should match pattern",
        ),
        ("{kind: lab_failure, severity: info}", "rule #1 field id: Field required"),
        ("just-a-string", "rule #1 field kind: missing"),
    ],
)
def test_a_bad_rule_is_one_line_naming_the_rule_and_the_field(rule, expected):
    if rule == "just-a-string":
        assert "field rules.0: Input should be a valid dictionary" in error(
            ROUTES + "rules:\n  - just-a-string\n"
        )
        return
    message = error(f"{ROUTES}rules:\n  - {rule}\n")
    assert expected in message, message


def test_file_level_mistakes_are_one_line(tmp_path):
    assert "rule 'x' is defined twice" in error(
        "rules:\n  - {id: x, kind: lab_failure, severity: info}\n"
        "  - {id: x, kind: lab_failure, severity: info}\n"
    )
    assert "route 'ops' is defined twice" in error(ROUTES + ROUTES.split("routes:\n")[1])
    assert "route 'r' field type: Input should be 'slack' or 'webhook'" in error(
        "routes:\n  - {name: r, type: email, url: 'https://x.example'}\n"
    )
    assert "route #1 field name: Field required" in error(
        "routes:\n  - {type: slack, url: 'https://x.example'}\n"
    )
    assert "field defaults.routes: no route named 'nope'" in error("defaults: {routes: [nope]}\n")
    assert "field version: Input should be 1" in error("version: 2\n")
    assert "route #1 field name: Input should be a valid string (YAML reads yes/no/on/off" in (
        error("routes:\n  - {name: off, type: slack, url: 'https://x.example'}\n")
    )
    assert "field rulez: Extra inputs are not permitted" in error("rulez: []\n")
    assert "not valid YAML (line 3)" in error("rules:\n  - {id: x\n  kind: y\n")
    assert "expected a mapping with rules: and routes:" in error("- a\n- b\n")
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PharmaflowError, match=r"^alert rules file .*nope.yaml not found$"):
        AlertRules.load(missing)


def test_an_empty_file_loads_no_rules_and_a_file_path_is_its_origin(tmp_path):
    assert load("").rules == []
    path = tmp_path / "r.yaml"
    path.write_text(ROUTES + "rules:\n  - {id: lab, kind: lab_failure, severity: info}\n")
    rules = AlertRules.load(path)
    assert rules.origin == str(path) and [r.id for r in rules.rules] == ["lab"]
    assert rules.by_id["lab"].routes == []  # no defaults.routes: recorded, not sent


def test_disabled_rules_are_kept_but_not_evaluated():
    rules = load("rules:\n  - {id: lab, kind: lab_failure, severity: info, enabled: false}\n")
    assert rules.rules == [] and [r.id for r in rules.all_rules] == ["lab"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("4h", 14400),
        ("1d", 86400),
        ("1h30m", 5400),
        ("250ms", 0.25),
        (90, 90),
        (1.5, 1.5),
        ("never", None),
        ("0", None),
        (0, None),
        (None, None),
    ],
)
def test_durations(text, seconds):
    parsed = parse_duration(text)
    assert (None if parsed is None else parsed.total_seconds()) == seconds
    if parsed is not None:
        assert parse_duration(format_duration(parsed)) == parsed


@pytest.mark.parametrize("text", ["4 hours", "h", "5x", "-3", True, "1h garbage"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_the_shipped_file_is_packaged_beside_the_module():
    import pharmaflow.realtime.alerts as package

    assert (Path(package.__file__).parent / "default_rules.yaml").is_file()
