"""`pharmaflow apikey create|revoke|list`: the API's keys, managed by an operator.

Changes are recorded in the audit trail with the operating-system user running the command as
the actor (on PostgreSQL, run these with the store owner's URL: the API's own role may only
read keys). The raw key is printed once, by `create`; the store keeps only its hash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, err_console, print_json
from pharmaflow.serve.security.roles import Role

if TYPE_CHECKING:
    from pharmaflow.config import Settings

apikey_app = typer.Typer(
    help="API keys with roles (viewer, analyst, qa, privacy_officer, collector). Changes are "
    "audited with your operating-system user name as the actor.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object instead of text.")]


def os_actor() -> str:
    """Who runs this command, as the audit trail records it: the operating-system user."""
    import getpass
    import os

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment nor in the passwd file
        return f"uid {os.getuid()}"


def _when(value: object) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


@apikey_app.command("create")
def create_cmd(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Option("--name", help="Who or what uses the key (a person, a system).")
    ],
    role: Annotated[Role, typer.Option("--role", help="What the key may do.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why the key is issued (kept in the audit trail).")
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Create a key and print it: it is shown only this once. The actor in the audit trail is
    your operating-system user."""
    from pharmaflow.serve.security.store import open_security

    settings: Settings = ctx.obj
    keys, _ = open_security(settings)
    try:
        info, raw = keys.create(name, role, actor=os_actor(), reason=reason)
    finally:
        keys.close()
    if as_json:
        print_json({**info.to_dict(), "key": raw})
        return
    err_console.print(
        f"created API key {info.key_id} for {info.name!r} (role {info.role})", highlight=False
    )
    print(raw, flush=True)
    err_console.print(
        "This key is shown only once: store it now (a secret manager). It cannot be recovered; "
        "if it is lost, revoke it and create another.",
        highlight=False,
        soft_wrap=True,
    )


@apikey_app.command("revoke")
def revoke_cmd(
    ctx: typer.Context,
    key_id: Annotated[str, typer.Argument(help="The key's id (`apikey list`).")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is revoked (kept in the audit trail).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Revoke a key for good. Running API servers stop accepting it within 5 seconds. The actor
    in the audit trail is your operating-system user."""
    from pharmaflow.serve.security.store import open_security

    settings: Settings = ctx.obj
    keys, _ = open_security(settings, create=False)
    try:
        info = keys.revoke(key_id, actor=os_actor(), reason=reason)
    finally:
        keys.close()
    if as_json:
        print_json(info.to_dict())
        return
    console.print(
        f"revoked API key {info.key_id} ({info.name!r}, role {info.role}); running API "
        "servers refuse it within 5 seconds",
        highlight=False,
        soft_wrap=True,
    )


@apikey_app.command("list")
def list_cmd(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option("--active", help="Only keys not revoked.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Keys oldest first: id, name, role, who created and revoked them, when (UTC). Never the
    key nor its hash."""
    from pharmaflow.cli.tables import print_rows
    from pharmaflow.serve.security.store import open_security

    settings: Settings = ctx.obj
    keys, _ = open_security(settings, create=False)
    try:
        infos = keys.list(include_revoked=not active)
    finally:
        keys.close()
    if as_json:
        print_json([i.to_dict() for i in infos])
        return
    rows = [
        [
            i.key_id,
            i.name,
            i.role.value,
            _when(i.created_at),
            i.created_by,
            _when(i.revoked_at),
            i.revoked_by,
        ]
        for i in infos
    ]
    if rows:
        columns = ["key_id", "name", "role", "created", "by", "revoked", "revoked by"]
        print_rows(console, columns, rows)
    live = sum(1 for i in infos if i.active)
    console.print(f"{len(infos)} keys ({live} active)", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(apikey_app, name="apikey")
