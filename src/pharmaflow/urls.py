"""Checks and redaction shared by the `kafka://` and `postgresql://` source URLs.

Source URLs are printed: in the run log (`ingest start source=…`), in error lines, and in
`source_uri` of every bronze row. So a URL is checked before anything connects (a port that
is not 1-65535 made librdkafka connect to some other port), and whatever could print one
goes through `redact_url` / `redact` first: a Kafka URL may hold no credentials at all (they
come from settings), a PostgreSQL URL may (libpq's own form), but its password is never shown.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import SplitResult, unquote, urlsplit

from pharmaflow.errors import PharmaflowError

REDACTED = "***"
_BAD_HOST = re.compile(r"[\s/@?#]")


def check_port(text: str, what: str) -> int:
    """`text` as a TCP port (1-65535), or one line naming `what` has a bad port."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise PharmaflowError(f"bad port {text!r} in {what}: expected a number from 1 to 65535")
    return int(text)


def check_host(host: str, what: str) -> str:
    """A non-empty host name or address (`[v6]` kept as written)."""
    if not host or _BAD_HOST.search(host):
        raise PharmaflowError(f"bad or missing host in {what}: expected HOST:PORT")
    return host


def split_server(server: str, what: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[V6]:PORT`) checked: a non-empty host and a port 1-65535."""
    host, colon, port = server.strip().rpartition(":")
    if not colon or (host.startswith("[") != host.endswith("]")):
        raise PharmaflowError(f"bad server {server!r} in {what}: expected HOST:PORT")
    return check_host(host, what), check_port(port, what)


def split_url(url: str, what: str, expected: str) -> SplitResult:
    """`urlsplit`, with its failure as one line that never quotes the URL: the parser's own
    message quotes the netloc (an unclosed `[`, characters NFKC turns into separators), and a
    netloc may hold a password."""
    try:
        return urlsplit(url)
    except ValueError:
        raise PharmaflowError(
            f"bad {what} URL (an unclosed [ or characters no host name holds): expected {expected}"
        ) from None


def has_credentials(url: str) -> bool:
    """Whether the URL's authority holds a user (and maybe a password): `user[:pw]@host`."""
    return "@" in urlsplit(url).netloc


def url_password(url: str) -> str | None:
    """The password in the URL's authority, percent-decoded (None without one)."""
    netloc = urlsplit(url).netloc
    userinfo, at, _ = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return None
    return unquote(userinfo.split(":", 1)[1]) or None


def redact_url(url: str) -> str:
    """The URL with its password (and nothing else) replaced by `***`; the user name stays,
    since it says which account was used. Query parameters named like a password
    (`password=`, libpq's) are masked too."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.split('://', 1)[0]}://{REDACTED}" if "://" in url else REDACTED
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{hostport}"
    query = re.sub(r"(?i)(^|&)(password|sasl\.password)=[^&]*", rf"\1\2={REDACTED}", parts.query)
    text = f"{parts.scheme}://{netloc}{parts.path}"
    return f"{text}?{query}" if query else text


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every (non-trivial) secret replaced by `***`, also in percent-encoded form."""
    for secret in secrets:
        if secret and len(secret) >= 2:
            text = text.replace(secret, REDACTED)
            encoded = re.sub(r"[^A-Za-z0-9._~-]", lambda m: f"%{ord(m[0]):02X}", secret)
            if encoded != secret:
                text = re.sub(re.escape(encoded), REDACTED, text, flags=re.IGNORECASE)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in records of a logger whose text we do not write ourselves (librdkafka's
    log lines): the message is rendered, redacted, and frozen."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            clean = redact(message, self.secrets)
            if clean != message:
                record.msg, record.args = clean, ()
        return True
