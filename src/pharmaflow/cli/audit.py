"""`pharmaflow audit list|verify|grant-app-role`: read and check the tamper-evident audit trail.

`verify` recomputes the hash chain and exits 1 naming each edited, deleted or moved entry, so
a scheduled job can alert on it. It prints the head hash: record that somewhere the store's
writers cannot reach and pass it back with `--expect-head` to detect a cut-off tail too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, err_console, print_json
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:
    from pharmaflow.config import Settings

audit_app = typer.Typer(
    help="The audit trail of key changes and re-identifications: list, verify, protect.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="JSON instead of text.")]
_HASH = re.compile(r"[0-9a-f]{64}")


@audit_app.command("list")
def list_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most this many.")] = 50,
    after_seq: Annotated[
        int | None,
        typer.Option("--after-seq", min=0, help="Entries after this seq (default: the newest)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Audit entries oldest first (by default the newest --limit of them): seq, time (UTC),
    actor, action, target and reason."""
    from pharmaflow.cli.tables import print_rows
    from pharmaflow.serve.security.store import open_security

    settings: Settings = ctx.obj
    keys, audit = open_security(settings, create=False)
    try:
        if after_seq is None:
            head = audit.head()
            after_seq = max(0, head.seq - limit) if head else 0
        entries = audit.entries(after_seq, limit)
    finally:
        keys.close()
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    rows = [
        [e.seq, f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, e.reason] for e in entries
    ]
    if rows:
        print_rows(console, ["seq", "at", "actor", "action", "target", "reason"], rows)
    console.print(f"{len(entries)} entries", highlight=False)


@audit_app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head", help="A head hash recorded earlier: fail if it is no longer there."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute the hash chain. Exit 0 and print the head hash if intact; exit 1 naming each
    edited, deleted or reordered entry otherwise."""
    from pharmaflow.serve.security.store import open_security

    if expect_head is not None and not _HASH.fullmatch(expect_head.strip().lower()):
        raise PharmaflowError("--expect-head takes a head hash: 64 hex characters")
    settings: Settings = ctx.obj
    keys, audit = open_security(settings, create=False)
    try:
        result = audit.verify(expect_head.strip().lower() if expect_head else None)
    finally:
        keys.close()
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "entries": result.entries,
                "head_seq": result.head_seq,
                "head_hash": result.head_hash,
                "problems": result.problems,
            }
        )
    elif result.ok:
        console.print(
            f"audit trail intact: {result.entries} entries, head seq {result.head_seq}",
            highlight=False,
        )
        console.print(f"head hash: {result.head_hash}", highlight=False)
    else:
        for problem in result.problems:
            console.print(f"TAMPERED: {problem}", highlight=False, soft_wrap=True)
        err_console.print(
            f"audit trail verification failed: {len(result.problems)} problems in "
            f"{result.entries} entries",
            highlight=False,
        )
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("grant-app-role")
def grant_cmd(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="The PostgreSQL role the API connects as.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "",
) -> None:
    """PostgreSQL only: let ROLE read the keys and append to (never change) the audit trail.
    Run as the tables' owner. Recorded in the audit trail with your operating-system user."""
    from pharmaflow.cli.apikey import os_actor
    from pharmaflow.serve.security.store import grant_app_role, open_security

    settings: Settings = ctx.obj
    if not settings.security_store_url.startswith(("postgresql://", "postgres://")):
        raise PharmaflowError(
            "grant-app-role is for a PostgreSQL security store (PHARMAFLOW_SECURITY_STORE="
            "postgresql://...); this one is a SQLite file: protect it with file permissions"
        )
    keys, audit = open_security(settings)
    try:
        statements = grant_app_role(audit.db, role)
        audit.append(
            actor=os_actor(),
            action="audit.grant_app_role",
            target=role,
            reason=reason.strip(),
            details={"granted": "SELECT, INSERT on the audit trail; SELECT on API keys"},
        )
    finally:
        keys.close()
    for statement in statements:
        console.print(statement, highlight=False)
    console.print(
        f"role {role} may now read keys and append audit entries; it cannot UPDATE, DELETE or "
        "TRUNCATE the audit trail",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
