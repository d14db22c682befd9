"""`pharmaflow keys status|rotate`: where this data dir's keys come from, and vault key rotation."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from pharmaflow.cli.output import console, err_console, print_json
from pharmaflow.errors import PharmaflowError

if TYPE_CHECKING:
    from pharmaflow.config import Settings

keys_app = typer.Typer(
    help="The data dir's vault and HMAC keys: status and vault key rotation.",
    no_args_is_help=True,
)

LOCAL_ONLY = (
    "warning: key files sit inside the data dir ({key_dir}): for local use only, since a copy "
    "of the data dir then decrypts the vault without reidentify() and without an access-log "
    "entry; pass the keys from a secret manager or set PHARMAFLOW_SECRETS_DIR outside it "
    "(docs/keys.md)"
)


@keys_app.command("status")
def status_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Where each key comes from, its fingerprint, and whether it is the data dir's key.
    Creates nothing; exits 1 when a key does not match or cannot be used."""
    from pharmaflow.ingest.phi.keyring import key_status

    settings: Settings = ctx.obj
    status = key_status(settings)
    bad = [n for n in ("vault", "hmac") if status[n]["state"] in ("mismatch", "unusable")]
    if as_json:
        print_json(status)
    else:
        for name, label in (("vault", "vault key"), ("hmac", "HMAC key")):
            entry = status[name]
            line = f"{label}: {entry['source'] or 'unusable'}"
            if entry["fingerprint"]:
                line += f", fingerprint {entry['fingerprint']}"
            if entry["state"] == "mismatch":
                line += f" [red]MISMATCH[/red]: the data dir uses {entry['recorded_fingerprint']}"
            elif entry["state"] == "unusable":
                line += f": {entry['problem']}"
            elif entry["recorded_fingerprint"] is None:
                line += " (not recorded yet: recorded by the first ingest)"
            console.print(line, highlight=False, soft_wrap=True)
        if status["rotation_pending"]:
            console.print(
                f"an interrupted rotation is {status['rotation_pending']}: the next "
                "`pharmaflow keys rotate` or ingest "
                + ("finishes it" if status["rotation_pending"] == "committed" else "undoes it"),
                highlight=False,
                soft_wrap=True,
            )
        if status["keys_inside_data_dir"]:
            err_console.print(
                LOCAL_ONLY.format(key_dir=settings.key_dir), highlight=False, soft_wrap=True
            )
    if bad:
        raise typer.Exit(1)


@keys_app.command("rotate")
def rotate_cmd(
    ctx: typer.Context,
    requested_by: Annotated[
        str | None,
        typer.Option("--requested-by", help="Who asks for the rotation (kept in the access log)."),
    ] = None,
    hmac: Annotated[
        bool, typer.Option("--hmac", help="Rotate the HMAC key (refused: see docs/keys.md).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-seal the vault and the quarantine under a new vault key, crash-safe. With generated
    keys the new key replaces the key file; with PHARMAFLOW_VAULT_KEY set, give the new key in
    PHARMAFLOW_NEW_VAULT_KEY and update the secret afterwards. No ingest may run meanwhile."""
    from pharmaflow.ingest.phi.rotate import HMAC_REFUSAL, NEW_KEY_ENV

    if hmac:
        raise PharmaflowError(HMAC_REFUSAL)
    if requested_by is None or not requested_by.strip():
        raise PharmaflowError("a key rotation needs who is asking: pass --requested-by NAME")
    from pharmaflow.ingest.phi.rotate import rotate_vault_key

    settings: Settings = ctx.obj
    done = rotate_vault_key(
        settings, requested_by=requested_by, new_key_hex=os.environ.get(NEW_KEY_ENV)
    )
    if as_json:
        print_json(
            {
                "rotation_id": done.rotation_id,
                "old_fingerprint": done.old_fingerprint,
                "new_fingerprint": done.new_fingerprint,
                "files": done.files,
                "records": done.records,
                "key_file": done.key_file,
                "resumed": done.resumed,
            }
        )
        return
    what = "finished an interrupted rotation" if done.resumed else "rotated the vault key"
    console.print(
        f"{what}: {done.old_fingerprint} -> {done.new_fingerprint}; {done.records:,} sealed "
        f"records in {done.files:,} files re-sealed",
        highlight=False,
        soft_wrap=True,
    )
    if done.key_file:
        console.print(f"the new key is in {done.key_file}", highlight=False, soft_wrap=True)
    else:
        console.print(
            "update PHARMAFLOW_VAULT_KEY in your secret manager to the new key (the value of "
            f"{NEW_KEY_ENV}, fingerprint {done.new_fingerprint}) now: runs with the old key "
            "are refused",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        "dead letters already sent to Kafka stay sealed under the old key "
        f"({done.old_fingerprint})",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
