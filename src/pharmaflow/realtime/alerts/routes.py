"""Routes: how a queued notification becomes an HTTP POST.

* `slack`: a Slack incoming webhook. The body is Slack's message format: `text` (the
  fallback shown in notifications and by clients without blocks) plus `blocks` (a section
  with the severity and summary, a section of up to 10 detail fields, a context line with
  the incident id, key, times and labels). Values are escaped for Slack's mrkdwn (`&`, `<`,
  `>`), so an id can never become a link or a mention.
* `webhook`: the notification itself as JSON (docs/alerts.md documents every field), with a
  `X-Pharmaflow-Notification-Id` header equal to its `notification_id`: delivery is at least
  once (a crash between the POST and marking it sent resends it), so receivers dedupe on it.

A send never raises: it returns a `SendResult` the notifier records. What is retried: network
errors, timeouts, 408/425/429 and 5xx (429's `Retry-After` is honoured). Any other 4xx is
permanent (a revoked or mistyped webhook does not heal by retrying): given up at once. Error
texts never carry the URL or header values (a Slack URL is a credential).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pharmaflow.realtime.alerts.rules import RouteTarget
from pharmaflow.urls import redact

if TYPE_CHECKING:
    import httpx

USER_AGENT = "pharmaflow-alerts/1"
_RETRY_STATUS = {408, 425, 429}
_EMOJI = {
    "critical": ":red_circle:",
    "warning": ":large_orange_circle:",
    "info": ":information_source:",
}
_MAX_FIELDS = 10  # Slack's limit per section
_MAX_TEXT = 2900  # a section's text may hold 3000 characters


@dataclass(frozen=True)
class SendResult:
    ok: bool
    permanent: bool = False  # not worth retrying
    error: str | None = None  # one line, no secret
    retry_after: float | None = None  # seconds the receiver asked us to wait
    status: int | None = None


def _esc(value: Any) -> str:
    """Text safe in Slack mrkdwn: no `<…>` links or mentions, no entity tricks."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _title(n: dict[str, Any]) -> str:
    if n["event"] == "resolved":
        return "RESOLVED"
    return n["severity"].upper() + (" (still firing)" if n["event"] == "repeat" else "")


def slack_message(n: dict[str, Any]) -> dict[str, Any]:
    """A notification in Slack's incoming-webhook format (`text` + `blocks`)."""
    title = _title(n)
    emoji = ":white_check_mark:" if n["event"] == "resolved" else _EMOJI.get(n["severity"], "")
    text = f"[{title}] {n['summary']}"
    head = f"{emoji} *{_esc(title)}* · `{_esc(n['rule'])}`\n{_esc(n['summary'])}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(head, _MAX_TEXT)}}
    ]
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*{_esc(k)}*\n{_esc(_show(v))}", 1900)}
        for k, v in n.get("details", {}).items()
        if v is not None and v != ""
    ][:_MAX_FIELDS]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    context = [f"incident {n['incident_id']}", f"key `{_esc(n['key'])}`", f"fired {n['fired_at']}"]
    if n.get("resolved_at"):
        context.append(f"resolved {n['resolved_at']}")
        if n.get("resolution"):
            context.append(_esc(n["resolution"]))
    context += [f"{_esc(k)}={_esc(v)}" for k, v in sorted(n.get("labels", {}).items())]
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _clip(" · ".join(context), _MAX_TEXT)}],
        }
    )
    return {"text": _clip(text, _MAX_TEXT), "blocks": blocks}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def webhook_body(n: dict[str, Any]) -> dict[str, Any]:
    """The generic webhook's body: the notification as queued (docs/alerts.md)."""
    return n


def body_for(route: RouteTarget, n: dict[str, Any]) -> dict[str, Any]:
    return slack_message(n) if route.type == "slack" else webhook_body(n)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def send(client: httpx.Client, route: RouteTarget, n: dict[str, Any]) -> SendResult:
    """POST one notification to `route`; never raises."""
    import httpx

    if route.url is None:
        return SendResult(False, error=f"route disabled: {route.disabled}")
    headers = {"User-Agent": USER_AGENT, **route.headers}
    if route.type == "webhook":
        headers["X-Pharmaflow-Notification-Id"] = str(n.get("notification_id", ""))
    try:
        response = client.post(route.url, json=body_for(route, n), headers=headers)
    except httpx.TimeoutException as exc:
        return SendResult(False, error=_line(f"timeout ({type(exc).__name__})", route))
    except httpx.HTTPError as exc:
        return SendResult(False, error=_line(f"{type(exc).__name__}: {exc}", route))
    except Exception as exc:  # a send must never raise into the notifier
        return SendResult(False, error=_line(f"{type(exc).__name__}: {exc}", route))
    status = response.status_code
    if 200 <= status < 300:
        return SendResult(True, status=status)
    reply = response.text.strip().splitlines()[0][:120] if response.text.strip() else ""
    error = _line(f"HTTP {status}" + (f": {reply}" if reply else ""), route)
    retry = status >= 500 or status in _RETRY_STATUS
    return SendResult(
        False, permanent=not retry, error=error, retry_after=_retry_after(response), status=status
    )


def _line(text: str, route: RouteTarget) -> str:
    """One line, secrets of the route masked."""
    flat = " ".join(text.split())
    return redact(flat, route.secrets)[:300]
