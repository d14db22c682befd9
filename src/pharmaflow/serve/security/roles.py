"""Roles of API keys and the scopes each one grants.

A key carries one role; a route asks for one scope. Keeping the mapping in one table (rather
than role checks spread over the routes) is what makes "who may see what" reviewable: the
table below is the access policy, and docs/security.md prints it.
"""

from __future__ import annotations

from enum import StrEnum

from pharmaflow.errors import PharmaflowError


class Role(StrEnum):
    viewer = "viewer"  # aggregates only
    analyst = "analyst"  # row-level, pseudonymous
    qa = "qa"  # batches, deviations, the audit trail
    privacy_officer = "privacy_officer"  # everything read-only, and re-identification
    collector = "collector"  # the survey app: may only submit surveys


class Scope(StrEnum):
    aggregates = "aggregates"
    rows = "rows"
    quality = "quality"
    audit = "audit"
    reidentify = "reidentify"
    surveys_write = "surveys_write"


# What a scope lets a key do, worded to finish "the viewer role may not ...".
SCOPE_ALLOWS: dict[Scope, str] = {
    Scope.aggregates: "read aggregates (KPIs, analytics, facility metrics, counts)",
    Scope.rows: "read row-level data (orders, shipments, stuck orders, alerts, lot traces)",
    Scope.quality: "read quality records (batches, deviations, lab results, lot traces)",
    Scope.audit: "read the audit trail",
    Scope.reidentify: "re-identify patients",
    Scope.surveys_write: "submit surveys",
}

ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    Role.viewer: frozenset({Scope.aggregates}),
    Role.analyst: frozenset({Scope.aggregates, Scope.rows, Scope.surveys_write}),
    Role.qa: frozenset({Scope.aggregates, Scope.quality, Scope.audit}),
    Role.privacy_officer: frozenset(
        {Scope.aggregates, Scope.rows, Scope.quality, Scope.audit, Scope.reidentify}
    ),
    Role.collector: frozenset({Scope.surveys_write}),
}


def allows(role: Role, scope: Scope) -> bool:
    return scope in ROLE_SCOPES[role]


def roles_with(scope: Scope) -> list[Role]:
    """The roles granting `scope`, in declaration order (for "roles that may: ..." messages)."""
    return [role for role in Role if scope in ROLE_SCOPES[role]]


def parse_role(text: str) -> Role:
    """`text` as a Role, or one line listing the roles."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise PharmaflowError(f"unknown role {text!r}: pick one of {names}") from None
