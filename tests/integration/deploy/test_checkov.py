"""checkov's static scan of deploy/terraform: no failed check, and every skipped one justified.

checkov runs from its own environment (`.tools/checkov`, made by `make terraform-check`): its
pinned fork of hcl2 clashes with the python-hcl2 the project's environment has. It runs offline
(`--skip-download`, no API key, `BC_SKIP_MAPPING`, no package update check), so the result
depends on the checks bundled with checkov 3.3.30 alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
TF = REPO / "deploy" / "terraform"
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)$", re.M)


@pytest.fixture(scope="module")
def scan() -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make terraform-check`")
    # no platform key: nothing is sent anywhere, and no mapping or package check is fetched
    env = {k: v for k, v in os.environ.items() if k not in {"BC_API_KEY", "PRISMA_API_URL"}}
    env |= {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(TF),
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    assert result.returncode in (0, 1), f"checkov did not run:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    # one report per framework; with --framework terraform there is exactly one
    if isinstance(report, list):
        (report,) = report
    return report


def test_checkov_scanned_everything_without_parse_errors(scan: dict[str, Any]) -> None:
    summary = scan["summary"]
    assert summary["parsing_errors"] == 0, summary
    # every module's resources reached the scan (through the environments' module calls)
    assert summary["resource_count"] >= 60, summary
    assert summary["passed"] >= 20, summary
    scanned = {
        Path(c["file_path"]).parts[2]
        for kind in ("passed_checks", "skipped_checks")
        for c in scan["results"][kind]
        if c["file_path"].startswith("/modules/")
    }
    assert {"bigquery", "storage", "pubsub", "iam"} <= scanned, scanned


def test_no_failed_checks(scan: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for c in scan["results"]["failed_checks"]
    ]
    assert not failed, "checkov findings (fix them, or justify with #checkov:skip=...):\n" + (
        "\n".join(failed)
    )


def test_every_skip_is_justified_in_the_code(scan: dict[str, Any]) -> None:
    """A skip is a `#checkov:skip=CKV_...:reason` comment in the resource, with a real reason,
    and no skip comment is left in the code that matches no check checkov ran (a stale
    excuse). (A comment that silences a check which would pass is not caught here: checkov
    reports it as skipped like any other; the reviewer reads the three reasons.)"""
    comments: dict[str, list[str]] = {}
    for path in TF.rglob("*.tf"):
        for check, reason in SKIP_COMMENT.findall(path.read_text()):
            comments.setdefault(check, []).append(reason.strip())
    skipped = scan["results"]["skipped_checks"]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) >= 30, f"{check['check_id']} on {check['resource']}: reason {reason!r}"
        assert check["check_id"] in comments, check["check_id"]
    assert {c["check_id"] for c in skipped} == set(comments), "a skip comment matches no check"
    for check, reasons in comments.items():
        assert all(len(r) >= 30 for r in reasons), (check, reasons)
