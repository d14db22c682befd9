"""Alert rules: a YAML file (the shipped default or the user's) loaded into pydantic models.

Why a file and not settings: rules are operational policy that the people on call tune
(thresholds, severities, who gets paged), reviewed like code, and replaced wholesale; the
shipped `default_rules.yaml` is a working starting point. Why pydantic: a typo in a threshold
must stop the speed layer at start with one line naming the rule and the field, not fire a
storm or stay silent at 3 a.m.

Secrets stay out of the file: a route's `url` (a Slack webhook URL is itself a credential) and
header values may be written as `${ENV_VAR}`. A route whose variable is unset is DISABLED, not
an error (so the shipped default loads on a laptop with no Slack): its notifications are not
queued, the incident is still recorded, and `pharmaflow alerts rules` says why. A route with
`required: true` makes a missing variable a load error instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from pharmaflow.errors import PharmaflowError

Severity = Literal["info", "warning", "critical"]
Stage = Literal["placed", "insurance_validated", "filled", "shipped"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NEVER = ("never", "none", "off")


def parse_duration(value: Any) -> timedelta | None:
    """`90`, `"90s"`, `"5m"`, `"4h"`, `"1d"`, `"1h30m"` → timedelta; `"never"`/`0`/null →
    None (meaning "no limit" / "no repeats" where the field allows it)."""
    if value is None or isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 5m, 4h or 1d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value) if value else None
    text = str(value).strip().lower()
    if text in _NEVER or text == "0":
        return None
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if text[pos : match.start()].strip():
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2).lower()]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"{value!r} is not a duration such as 90s, 5m, 4h, 1d or never")
    return timedelta(seconds=total) if total else None


def _required_duration(value: Any) -> timedelta:
    parsed = parse_duration(value)
    if parsed is None:
        raise ValueError("must be a positive duration such as 60s or 5m (not 0/never)")
    return parsed


def format_duration(value: timedelta | None) -> str:
    """The inverse of `parse_duration` for display: 4h, 1h30m, 90s → 1m30s, None → never."""
    if value is None:
        return "never"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            whole = int(seconds // size)
            parts.append(f"{whole}{unit}")
            seconds -= whole * size
    if seconds:
        parts.append(f"{seconds:g}s")
    return "".join(parts)


Duration = Annotated[timedelta, BeforeValidator(_required_duration)]
OptionalDuration = Annotated[timedelta | None, BeforeValidator(parse_duration)]
Percent = Annotated[float, Field(gt=0, le=100)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- routes and delivery ----------------------------------------------------------------


class Route(_Strict):
    """Where notifications go. `url`/`headers` may use `${ENV_VAR}` (resolved at load)."""

    name: Name
    type: Literal["slack", "webhook"]
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    required: bool = False  # a missing ${VAR} is a load error instead of a disabled route


@dataclass(frozen=True)
class RouteTarget:
    """A route with its environment variables resolved. `url` is a credential (a Slack
    webhook URL carries its token): it is never logged or shown; `host` is."""

    name: str
    type: Literal["slack", "webhook"]
    url: str | None = field(repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    disabled: str | None = None  # why it is disabled (an unset variable), None: enabled

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "" if self.url else ""

    @property
    def secrets(self) -> list[str]:
        """Values that must be masked in any error text about this route."""
        if not self.url:
            return []
        parts = urlsplit(self.url)
        return [self.url, parts.path, parts.query, *self.headers.values()]


class Delivery(_Strict):
    """How the notifier retries: exponential backoff from `backoff_initial`, doubled per
    attempt up to `backoff_max`, with jitter; given up after `give_up_after` since the
    notification was queued or `max_attempts` attempts, whichever comes first."""

    timeout: Duration = timedelta(seconds=10)
    backoff_initial: Duration = timedelta(seconds=2)
    backoff_max: Duration = timedelta(minutes=5)
    give_up_after: Duration = timedelta(hours=24)
    max_attempts: int = Field(1000, ge=1)
    poll_interval: Duration = timedelta(seconds=1)


class Defaults(_Strict):
    routes: list[Name] = Field(default_factory=list)
    repeat_interval: OptionalDuration = timedelta(hours=4)


# ---- rules ------------------------------------------------------------------------------


class _Rule(_Strict):
    id: Name
    severity: Severity
    routes: list[Name] = Field(default_factory=list)
    repeat_interval: OptionalDuration = timedelta(hours=4)  # None: never repeat
    labels: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _route_alias(cls, data: Any) -> Any:
        """`route: slack` is accepted for `routes: [slack]`."""
        if isinstance(data, dict) and "route" in data:
            data = dict(data)
            if "routes" in data:
                raise ValueError("give either route or routes, not both")
            route = data.pop("route")
            data["routes"] = route if isinstance(route, list) else [route]
        return data


class ColdChainThresholds(_Strict):
    in_excursion: bool = True  # fire while the latest reading is outside spec
    minutes_out_of_range: Annotated[float, Field(ge=0)] | None = 30  # fire above this total
    include_delivered: bool = False

    @model_validator(mode="after")
    def _some_condition(self) -> ColdChainThresholds:
        if not self.in_excursion and self.minutes_out_of_range is None:
            raise ValueError("set in_excursion: true or a minutes_out_of_range threshold")
        return self


class ColdChainRule(_Rule):
    kind: Literal["coldchain_excursion"]
    thresholds: ColdChainThresholds = ColdChainThresholds()


class SensorThresholds(_Strict):
    consecutive_readings: int = Field(3, ge=1)


class SensorRule(_Rule):
    kind: Literal["sensor_out_of_spec"]
    thresholds: SensorThresholds = SensorThresholds()


class OrderStuckThresholds(_Strict):
    hours: dict[Stage, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: {
            "placed": 2.0,
            "insurance_validated": 24.0,
            "filled": 24.0,
            "shipped": 72.0,
        },
        min_length=1,
    )


class OrderStuckRule(_Rule):
    kind: Literal["order_stuck"]
    thresholds: OrderStuckThresholds = OrderStuckThresholds()


class LabFailureThresholds(_Strict):
    within: OptionalDuration = timedelta(hours=24)  # None: any failure still in the store


class LabFailureRule(_Rule):
    kind: Literal["lab_failure"]
    thresholds: LabFailureThresholds = LabFailureThresholds()


class _RateThresholds(_Strict):
    percent: Percent
    width: Duration = timedelta(seconds=300)  # which window series (a configured width)
    over: OptionalDuration = None  # lookback summed, a multiple of width; None: one window

    @model_validator(mode="after")
    def _over_multiple_of_width(self) -> _RateThresholds:
        width = self.width.total_seconds()
        if width != int(width):
            raise ValueError("width must be whole seconds")
        if self.over is not None:
            ratio = self.over.total_seconds() / width
            if ratio < 1 or ratio != int(ratio):
                raise ValueError("over must be a whole multiple of width")
        return self

    @property
    def windows(self) -> int:
        """How many consecutive windows of `width` the rate sums."""
        return 1 if self.over is None else int(self.over / self.width)


class QuarantineThresholds(_RateThresholds):
    percent: Percent = 5.0
    min_records: int = Field(100, ge=1)


class QuarantineRule(_Rule):
    kind: Literal["quarantine_rate"]
    thresholds: QuarantineThresholds = QuarantineThresholds()
    for_each: Literal["topic", "all"] = "topic"


class CarrierThresholds(_RateThresholds):
    percent: Percent = 10.0
    min_shipments: int = Field(20, ge=1)
    over: OptionalDuration = timedelta(hours=1)


class CarrierRule(_Rule):
    kind: Literal["carrier_exception_rate"]
    thresholds: CarrierThresholds = CarrierThresholds()
    for_each: Literal["carrier", "all"] = "carrier"


class ModelDriftThresholds(_Strict):
    """Nothing to set: the drift check tests at PHARMAFLOW_ML_DRIFT_ALPHA (the rule routes)."""


class ModelDriftRule(_Rule):
    """A model's inputs drifted from its training data. Raised by the ML drift check
    (ml/drift.py `raise_drift_alert`), never evaluated over the speed layer's snapshot. A file
    without one still gets drift alerts: `AlertRules.drift_rule` is then a warning on the
    default routes."""

    kind: Literal["model_drift"]
    thresholds: ModelDriftThresholds = ModelDriftThresholds()


class PipelineFailureThresholds(_Strict):
    """Nothing to set: a scheduled task failed (the rule routes)."""


class PipelineFailureRule(_Rule):
    """A scheduled pipeline task failed (an Airflow DAG's task; orchestrate/notify.py): fired
    by the task's failure callback, resolved when its DAG next succeeds. Never evaluated over
    the speed layer's snapshot. A file without one still gets these alerts: critical on the
    default routes (`AlertRules.pipeline_rule`)."""

    kind: Literal["pipeline_failure"]
    thresholds: PipelineFailureThresholds = PipelineFailureThresholds()


# Rules raised from outside the speed layer (realtime/alerts/external.py): the evaluator skips
# them and never resolves their incidents.
ExternalRule = ModelDriftRule | PipelineFailureRule
_ExternalT = TypeVar("_ExternalT", ModelDriftRule, PipelineFailureRule)

Rule = (
    ColdChainRule
    | SensorRule
    | OrderStuckRule
    | LabFailureRule
    | QuarantineRule
    | CarrierRule
    | ModelDriftRule
    | PipelineFailureRule
)
DRIFT_RULE_ID = "model_drift"  # the id of the drift rule a file that has none gets
PIPELINE_RULE_ID = "pipeline_failure"  # the same for pipeline failures
RULE_KINDS: dict[str, type[_Rule]] = {
    "coldchain_excursion": ColdChainRule,
    "sensor_out_of_spec": SensorRule,
    "order_stuck": OrderStuckRule,
    "lab_failure": LabFailureRule,
    "quarantine_rate": QuarantineRule,
    "carrier_exception_rate": CarrierRule,
    "model_drift": ModelDriftRule,
    "pipeline_failure": PipelineFailureRule,
}


class _File(_Strict):
    version: Literal[1] = 1
    routes: list[Route] = Field(default_factory=list)
    defaults: Defaults = Defaults()
    delivery: Delivery = Delivery()
    rules: list[dict[str, Any]] = Field(default_factory=list)


# ---- loading ----------------------------------------------------------------------------


def _first_error(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "string_type" and isinstance(first.get("input"), bool):
        message += " (YAML reads yes/no/on/off as true/false: quote it)"
    return where, message


def _substitute(text: str, missing: list[str]) -> str:
    """`${VAR}` replaced by its value; unset or empty variables are appended to `missing`."""

    def one(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1), "")
        if not value:
            missing.append(match.group(1))
        return value

    return _ENV.sub(one, text)


def _resolve(route: Route, origin: str) -> RouteTarget:
    missing: list[str] = []
    url = _substitute(route.url, missing)
    headers = {k: _substitute(v, missing) for k, v in route.headers.items()}
    if missing:
        why = f"environment variable {', '.join(sorted(set(missing)))} is not set"
        if route.required:
            raise PharmaflowError(f"alert rules {origin}: route '{route.name}' field url: {why}")
        return RouteTarget(route.name, route.type, None, {}, disabled=why)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # the URL is not echoed: it may hold the webhook's token
        raise PharmaflowError(
            f"alert rules {origin}: route '{route.name}' field url: expected an http:// or "
            "https:// URL" + (" (after substituting ${...})" if "${" in route.url else "")
        )
    return RouteTarget(route.name, route.type, url, headers)


class AlertRules:
    """The loaded rules: `rules` (enabled ones, in file order), `routes` by name (resolved),
    `delivery` (retry policy), `origin` (the file, or 'default' for the shipped one)."""

    def __init__(
        self,
        rules: list[Rule],
        routes: dict[str, RouteTarget],
        delivery: Delivery,
        origin: str,
        defaults: Defaults | None = None,
    ) -> None:
        self.all_rules = rules
        self.rules = [r for r in rules if r.enabled]
        self.routes = routes
        self.delivery = delivery
        self.origin = origin
        self.defaults = defaults or Defaults()
        self.by_id = {r.id: r for r in rules}
        # model drift and pipeline failure alerts follow the file's first rule of their kind,
        # else a rule on the default routes (in by_id too, so incidents find its routes and
        # repeat interval)
        self.drift_rule = self._external(rules, ModelDriftRule, DRIFT_RULE_ID, "warning")
        self.pipeline_rule = self._external(
            rules, PipelineFailureRule, PIPELINE_RULE_ID, "critical"
        )
        self.external_rule_ids = {self.drift_rule.id, self.pipeline_rule.id}

    def _external(
        self, rules: list[Rule], kind: type[_ExternalT], rule_id: str, severity: str
    ) -> _ExternalT:
        rule = next((r for r in rules if isinstance(r, kind)), None)
        if rule is None:
            rule = kind(
                id=rule_id,
                kind=rule_id,
                severity=severity,
                routes=list(self.defaults.routes),
                repeat_interval=self.defaults.repeat_interval,
            )
        self.by_id.setdefault(rule.id, rule)
        return rule

    @classmethod
    def load(cls, path: Path | None = None) -> AlertRules:
        """The rules in `path`, or the shipped default (None). Raises one-line
        PharmaflowError naming the rule and field on any problem."""
        if path is None:
            text = resources.files(__package__).joinpath("default_rules.yaml").read_text("utf-8")
            return cls.parse(text, origin="default")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PharmaflowError(f"alert rules file {path} not found") from None
        except IsADirectoryError:
            raise PharmaflowError(f"alert rules file {path} is a directory") from None
        except UnicodeDecodeError:
            raise PharmaflowError(f"alert rules {path}: not UTF-8 text") from None
        return cls.parse(text, origin=str(path))

    @classmethod
    def parse(cls, text: str, origin: str = "<text>") -> AlertRules:
        import yaml

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise PharmaflowError(
                f"alert rules {origin}: not valid YAML{where}: {problem}"
            ) from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise PharmaflowError(
                f"alert rules {origin}: expected a mapping with rules: and routes:"
            )
        try:
            top = _File.model_validate(raw)
        except ValidationError as exc:
            where, message = _first_error(exc)
            if where.startswith("routes.") and where.split(".")[1].isdigit():
                index = int(where.split(".")[1])
                item = raw.get("routes")[index]
                name = item.get("name") if isinstance(item, dict) else None
                rest = ".".join(where.split(".")[2:]) or "(the route)"
                label = f"route '{name}'" if name else f"route #{index + 1}"
                raise PharmaflowError(
                    f"alert rules {origin}: {label} field {rest}: {message}"
                ) from None
            raise PharmaflowError(f"alert rules {origin}: field {where}: {message}") from None

        names = [r.name for r in top.routes]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise PharmaflowError(f"alert rules {origin}: route '{duplicate}' is defined twice")
        routes = {r.name: _resolve(r, origin) for r in top.routes}
        for name in top.defaults.routes:
            if name not in routes:
                raise PharmaflowError(
                    f"alert rules {origin}: field defaults.routes: no route named '{name}'"
                )

        rules: list[Rule] = []
        seen: set[str] = set()
        for index, item in enumerate(top.rules):
            rule_id = item.get("id")
            label = f"rule '{rule_id}'" if isinstance(rule_id, str) else f"rule #{index + 1}"
            kind = item.get("kind")
            if kind not in RULE_KINDS:
                got = "missing" if kind is None else f"{kind!r} is unknown"
                raise PharmaflowError(
                    f"alert rules {origin}: {label} field kind: {got}; expected one of "
                    + ", ".join(RULE_KINDS)
                )
            data = dict(item)
            if "routes" not in data and "route" not in data:
                data["routes"] = list(top.defaults.routes)
            data.setdefault("repeat_interval", top.defaults.repeat_interval)
            try:
                rule = RULE_KINDS[kind].model_validate(data)
            except ValidationError as exc:
                where, message = _first_error(exc)
                raise PharmaflowError(
                    f"alert rules {origin}: {label} field {where}: {message}"
                ) from None
            if rule.id in seen:
                raise PharmaflowError(f"alert rules {origin}: rule '{rule.id}' is defined twice")
            seen.add(rule.id)
            for name in rule.routes:
                if name not in routes:
                    known = ", ".join(routes) or "none defined"
                    raise PharmaflowError(
                        f"alert rules {origin}: {label} field routes: no route named "
                        f"'{name}' (routes: {known})"
                    )
            rules.append(rule)  # type: ignore[arg-type]
        for kind, rule_id, what in (
            (ModelDriftRule, DRIFT_RULE_ID, "drift"),
            (PipelineFailureRule, PIPELINE_RULE_ID, "pipeline failure"),
        ):
            if not any(isinstance(r, kind) for r in rules) and rule_id in seen:
                raise PharmaflowError(
                    f"alert rules {origin}: rule '{rule_id}': that id is kept for the {what} "
                    f"alerts of a file without a {rule_id} rule: rename it, or add one"
                )
        return cls(rules, routes, top.delivery, origin, top.defaults)

    def with_stuck_hours(self, hours: dict[str, float]) -> AlertRules:
        """These rules, where an `order_stuck` rule names no hours of its own taking the speed
        layer's thresholds (`PHARMAFLOW_REALTIME_STUCK_HOURS`): `kpis live`, the API and the
        alerts then call the same orders stuck. Hours written in a rule win."""
        rules = [
            r.model_copy(update={"thresholds": OrderStuckThresholds(hours=dict(hours))})
            if isinstance(r, OrderStuckRule) and "hours" not in r.thresholds.model_fields_set
            else r
            for r in self.all_rules
        ]
        return AlertRules(rules, self.routes, self.delivery, self.origin, self.defaults)

    def window_widths(self) -> set[int]:
        """Window widths (s) the rate rules read: the engine checks they are configured."""
        return {
            int(r.thresholds.width.total_seconds())
            for r in self.rules
            if isinstance(r, QuarantineRule | CarrierRule)
        }

    def window_lookback(self) -> timedelta:
        """How far back rate rules read windows, before their reference time (the wall clock
        for `records`/`quarantined`, the stream clock for the event-time KPIs): pass
        `min(now, clock) - window_lookback()` (or earlier) as the snapshot's `window_since`,
        since the stream clock lags the wall clock when replaying old data."""
        spans = [
            r.thresholds.width * (r.thresholds.windows + 1)
            for r in self.rules
            if isinstance(r, QuarantineRule | CarrierRule)
        ]
        return max(spans, default=timedelta(0))

    def enabled_routes(self, rule: Rule) -> list[RouteTarget]:
        return [self.routes[n] for n in rule.routes if self.routes[n].disabled is None]
