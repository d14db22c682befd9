"""Re-identification: the one path from a patient key back to the patient.

Only a `privacy_officer` key may take it, and only with a reason. The lookup goes through the
PHI vault (which logs the access in its own access log) and then into the audit trail: who
asked (the key's name and id), when, for which patient key, why, and whether the vault had
it; never the identifiers. The audit entry is committed before the identifiers are returned,
so nothing is disclosed that the trail does not show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.security.roles import Role

if TYPE_CHECKING:
    from pharmaflow.config import Settings
    from pharmaflow.serve.security.audit import AuditTrail
    from pharmaflow.serve.security.keys import Principal

MIN_REASON = 10
MAX_REASON = 1000
# What PhiVault.reidentify raises when it has no record (its only "not found" signal).
_VAULT_NOT_FOUND = "no vault record for patient key"


class PatientNotFound(PharmaflowError):
    """The vault holds no record for this patient key (the API answers 404)."""


def check_reason(reason: str) -> str:
    """The reason stripped, or one line saying what a reason needs."""
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON:
        raise PharmaflowError(
            f"a re-identification needs a reason of at least {MIN_REASON} characters "
            "(the request, ticket or investigation it serves)"
        )
    if len(reason) > MAX_REASON:
        raise PharmaflowError(f"the reason must be at most {MAX_REASON} characters")
    return reason


def reidentify(
    settings: Settings,
    audit: AuditTrail,
    principal: Principal,
    patient_key: str,
    reason: str,
) -> dict[str, Any]:
    """The patient's original identifiers (the vault's latest record) and the seq of the
    audit entry recording the access. A reason is pattern-scrubbed (e-mails, MRNs, dates,
    phone numbers) before it is logged anywhere, in case someone types an identifier in."""
    from pharmaflow.ingest.phi.keyring import load_keys
    from pharmaflow.ingest.phi.scrub import normalise, scrub_patterns
    from pharmaflow.ingest.phi.vault import PhiVault

    if principal.role is not Role.privacy_officer:
        raise PharmaflowError(
            f"only the privacy_officer role may re-identify a patient; API key "
            f"{principal.key_id} has the {principal.role} role"
        )
    reason = scrub_patterns(normalise(check_reason(reason)))
    patient_key = patient_key.strip()
    if not patient_key:
        raise PharmaflowError("a re-identification needs a patient key")
    keys = load_keys(settings)
    try:
        vault = PhiVault(settings.vault_dir, keys.vault.value)
        try:
            identifiers = vault.reidentify(patient_key, requested_by=principal.actor, reason=reason)
        except PharmaflowError as exc:
            if not str(exc).startswith(_VAULT_NOT_FOUND):
                raise
            identifiers = None
    finally:
        keys.release()
    found = identifiers is not None
    entry = audit.append(
        actor=principal.actor,
        action="reidentify",
        target=patient_key,
        reason=reason,
        details={"found": found, "role": principal.role.value},
    )
    if identifiers is None:
        raise PatientNotFound(
            f"no vault record for patient key {patient_key} (audit entry {entry.seq})"
        )
    return {"patient_key": patient_key, "identifiers": identifiers, "audit_seq": entry.seq}
