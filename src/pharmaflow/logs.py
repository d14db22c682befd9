"""Run logs: one file per data dir, written by every command, one JSON object per line.

Log lines carry counts, ids of batches and reason codes — never payload values — so the log can
be shared with support without exposing a patient. Where the log file cannot be written (a
read-only copy of a data dir, a full disk), warnings go to stderr instead: reading a data dir
must never need write access, and a run must not die for want of a log.

Why JSON: a line is found by its fields (`jq 'select(.trace_id == "…")'`, a log shipper's
query), not by grepping prose, and a hostile value (a newline, U+2028, a lone surrogate) is
escaped, so one record is always exactly one line (other non-ASCII text is written as is).
`PHARMAFLOW_LOG_FORMAT=text` keeps the old human form (`<time> <LEVEL> <logger> <message>
key=value …`), escaped the same way.

A line (see docs/logging.md)::

    {"ts":"2026-11-02T10:00:00.123Z","level":"INFO","logger":"pharmaflow.ingest.lake_commit",
     "msg":"batch_committed","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","batch_id":"…", …}

The API, for every module::

    log = logging.getLogger(__name__)

    logs.event(log, "batch_committed", batch_id=batch_id, counts=counts)   # msg + fields
    log.info("plain message %s", n, extra={"fields": {"batch_id": batch_id}})  # the same

    with logs.bind(trace_id=tracing.new_trace_id(), command="build"):
        ...   # every line logged in here (any module) carries trace_id and command

`bind` nests (inner fields add to and override outer ones, and are undone on exit) and is
kept in a `contextvars.ContextVar`, so concurrent threads and asyncio tasks each see their
own. A thread started inside a `bind` does *not* inherit it (Python threads start with an
empty context): hand work to a thread pool as `pool.submit(logs.carry(fn), ...)`.
`logs.current_trace_id()` reads the bound trace id, so a callee can reuse a caller's trace
(`logs.current_trace_id() or tracing.new_trace_id()`). The keys `ts`, `level`, `logger`,
`msg`, `exc` and `stack` are the record's own; a field by one of those names is written as
`field_<name>`.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from enum import Enum
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any, Literal, ParamSpec, TypeVar

ROOT_LOGGER = "pharmaflow"
LOG_FILE = "pharmaflow.log"
LogFormat = Literal["json", "text"]

RESERVED = frozenset({"ts", "level", "logger", "msg", "exc", "stack"})
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_STDERR_TEXT_FORMAT = "%(levelname)s %(message)s"
_CONTEXT_ATTR = "pharmaflow_context"
_MAX_DEPTH = 8

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_bound: ContextVar[Mapping[str, Any]] = ContextVar("pharmaflow_log_fields", default=_EMPTY)

P = ParamSpec("P")
R = TypeVar("R")


# -- binding fields to everything logged in a block ---------------------------------------------


@contextmanager
def bind(trace_id: str | None = None, **fields: Any) -> Iterator[Mapping[str, Any]]:
    """Every line logged inside the block (this thread or task) carries `trace_id` (when not
    None) and `fields`, on top of whatever an outer `bind` holds. Yields the fields now bound."""
    merged = dict(_bound.get())
    merged.update(fields)
    if trace_id is not None:
        merged["trace_id"] = trace_id
    token = _bound.set(MappingProxyType(merged))
    try:
        yield _bound.get()
    finally:
        _bound.reset(token)


def bound() -> Mapping[str, Any]:
    """The fields bound here now (read-only)."""
    return _bound.get()


def current_trace_id() -> str | None:
    """The trace id bound here now, if any."""
    value = _bound.get().get("trace_id")
    return value if isinstance(value, str) else None


def carry(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn`, run with the fields bound where `carry` was called — for work handed to another
    thread (`pool.submit(logs.carry(fn), ...)`). Safe to call from several threads at once."""
    snapshot = _bound.get()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        token = _bound.set(snapshot)
        try:
            return fn(*args, **kwargs)
        finally:
            _bound.reset(token)

    return run


def event(
    logger: logging.Logger, name: str, /, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log one structured line: `msg` is the event's `name` (a stable snake_case word, e.g.
    `batch_committed`), `fields` go beside it. Values must be counts, ids and codes — never a
    payload value."""
    if logger.isEnabledFor(level):
        logger.log(level, name, extra={"fields": fields}, stacklevel=2)


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """A record's structured fields: those bound when it was logged, then its own."""
    context = getattr(record, _CONTEXT_ATTR, None)
    merged = dict(_bound.get() if context is None else context)
    own = getattr(record, "fields", None)
    if isinstance(own, Mapping):
        merged.update(own)
    return merged


class ContextFilter(logging.Filter):
    """Stamps a record with the fields bound in the thread that logs it, before any handler
    formats it (a handler that formats later, elsewhere, still writes the right trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _CONTEXT_ATTR):
            setattr(record, _CONTEXT_ATTR, _bound.get())
        return True


# -- formats ------------------------------------------------------------------------------------


def _plain(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-safe data: containers become lists/objects, floats that JSON cannot
    hold (nan, inf) and anything unknown become strings. Never raises."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v, depth + 1) for v in value), key=str)
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return _plain(value.value, depth + 1)
    if isinstance(value, PurePath):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return _plain(item(), depth + 1)
        except Exception:
            pass
    return str(value)


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad %-format must not lose the line
        return str(record.msg)


# What json.dumps leaves raw but a reader may split a line on (U+0085, U+2028, U+2029; C0
# controls it escapes itself), and lone surrogates (no UTF-8 form: the write would fail).
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _dumps(value: Any) -> str:
    """One-line JSON. Not ASCII-escaped: text stays greppable as written (a leak scanner looks
    for a name as it is spelled, `José` not `Jos\\u00e9`); only characters that could break
    the line or the file's encoding are escaped (they occur only inside strings, so the escape
    decodes back to the same text)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, trace_id (when bound), the bound
    and per-record fields, and exc/stack when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _iso(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname,
            "logger": record.name,
            "msg": _message(record),
        }
        fields = record_fields(record)
        if "trace_id" in fields:
            line["trace_id"] = fields.pop("trace_id")
        for key, value in fields.items():
            name = str(key)
            line[f"field_{name}" if name in RESERVED else name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return _dumps(_plain(line))


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_BARE = re.compile(r"[A-Za-z0-9._:/@+-]+")


def one_line(text: str) -> str:
    """`text` with control characters, line separators and lone surrogates escaped (`\\n`
    becomes the two characters backslash and n): it can never start a forged line."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <message> key=value …`, escaped to one line per record."""

    def __init__(self, fmt: str = _TEXT_FORMAT) -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        saved = record.msg, record.args, record.exc_info, record.exc_text, record.stack_info
        try:
            record.msg, record.args = _message(record), ()
            record.exc_info = record.exc_text = record.stack_info = None
            head = super().format(record)
        finally:
            record.msg, record.args, record.exc_info, record.exc_text, record.stack_info = saved
        parts = [head]
        for key, value in record_fields(record).items():
            plain = _plain(value)
            text = plain if isinstance(plain, str) and _BARE.fullmatch(plain) else _dumps(plain)
            parts.append(f"{key}={text}")
        if record.exc_info:
            parts.append("exc=" + _dumps(self.formatException(record.exc_info)))
        if record.stack_info:
            parts.append("stack=" + _dumps(self.formatStack(record.stack_info)))
        return one_line(" ".join(parts))


def formatter(log_format: LogFormat, *, stderr: bool = False) -> logging.Formatter:
    """The formatter of `log_format` (the stderr fallback's text form is shorter)."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter(_STDERR_TEXT_FORMAT if stderr else _TEXT_FORMAT)
    raise ValueError(f"unknown log format {log_format!r}: use json or text")


# -- where lines go -----------------------------------------------------------------------------

_lock = threading.Lock()
_installed: list[logging.Handler] = []
_installed_key: tuple[Path, str] | None = None


def configure(
    logs_dir: Path,
    level: str = "INFO",
    *,
    writable: bool = True,
    log_format: LogFormat = "json",
) -> Path | None:
    """Log to `<logs_dir>/pharmaflow.log` in `log_format`; returns that path, or None when it
    could not be opened and warnings go to stderr (same format).

    One destination per process: configuring again for another data dir or format replaces
    the handler installed before (a handler someone else added is left alone)."""
    global _installed_key
    chosen = formatter(log_format)  # a bad format fails before anything changes
    root = logging.getLogger(ROOT_LOGGER)
    root.setLevel(level.upper())
    path = logs_dir / LOG_FILE
    with _lock:
        if _installed_key == (path, log_format):
            return path
        _remove_installed()
        handler: logging.Handler
        try:
            if not writable:
                raise PermissionError(f"{logs_dir} is read-only")
            logs_dir.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError:
            handler = logging.StreamHandler(sys.stderr)
            handler.setLevel(logging.WARNING)
            handler.setFormatter(formatter(log_format, stderr=True))
            _install(root, handler)
            return None
        handler.setFormatter(chosen)
        _install(root, handler)
        _installed_key = (path, log_format)
        return path


def configure_from(settings: Any, *, writable: bool = True) -> Path | None:
    """`configure` with a `Settings`' log dir, level and format: what every entry point (the
    CLI, the API started by uvicorn's factory) does once it knows its data dir."""
    return configure(
        settings.logs_dir, settings.log_level, writable=writable, log_format=settings.log_format
    )


def reset() -> None:
    """Remove (and close) what `configure` installed: tests, and a process that re-homes."""
    with _lock:
        _remove_installed()


def _install(root: logging.Logger, handler: logging.Handler) -> None:
    handler.addFilter(ContextFilter())
    root.addHandler(handler)
    _installed.append(handler)


def _remove_installed() -> None:
    global _installed_key
    root = logging.getLogger(ROOT_LOGGER)
    while _installed:
        handler = _installed.pop()
        root.removeHandler(handler)
        handler.close()
    _installed_key = None
