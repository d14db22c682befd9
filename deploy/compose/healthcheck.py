#!/usr/bin/env python3
"""Container health check: exit 0 when an HTTP endpoint answers 2xx, 1 otherwise.

Installed in the image as `pharmaflow-healthcheck`. The slim base image has neither curl nor
wget, and one stdlib script serves every entry point of the image: the API (`/health`), the
dashboard (Streamlit's `/_stcore/health`), the ingest and speed-layer workers (their
Prometheus `/metrics`), Airflow's API server and scheduler. With no argument it checks the
API on `PHARMAFLOW_API_PORT` (the image's default command).

Proxies are ignored on purpose: a check of 127.0.0.1 must never be sent to an HTTP_PROXY a
container inherited. The reason for a failure goes to stderr, which Docker keeps in the
container's health log (`docker inspect`).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

USAGE = "usage: pharmaflow-healthcheck [http://HOST:PORT/PATH]"


def default_url() -> str:
    """The API's liveness route on its configured port (the image's default command)."""
    return f"http://127.0.0.1:{os.environ.get('PHARMAFLOW_API_PORT', '8000')}/health"


def check(url: str, timeout: float) -> str | None:
    """None when `url` answers 2xx within `timeout` seconds, else why not (one line)."""
    if not url.startswith(("http://", "https://")):
        return f"not an http(s) URL: {url}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:  # a 4xx/5xx answer
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url} did not answer: {reason}"
    if not 200 <= status < 300:
        return f"{url} answered {status}"
    return None


def main(argv: list[str]) -> int:
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(USAGE, file=sys.stderr)
        return 2
    url = argv[1] if len(argv) == 2 else default_url()
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT_SECONDS", "4"))
    problem = check(url, timeout)
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
