"""The role -> scope table is the access policy: it must be exactly the one in the design."""

from __future__ import annotations

import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.serve.security.roles import (
    ROLE_SCOPES,
    SCOPE_ALLOWS,
    Role,
    Scope,
    allows,
    parse_role,
    roles_with,
)

# design12.md, "Roles -> scopes", written out by scope.
POLICY = {
    Scope.aggregates: {Role.viewer, Role.analyst, Role.qa, Role.privacy_officer},
    Scope.rows: {Role.analyst, Role.privacy_officer},
    Scope.quality: {Role.qa, Role.privacy_officer},
    Scope.audit: {Role.qa, Role.privacy_officer},
    Scope.reidentify: {Role.privacy_officer},
    Scope.surveys_write: {Role.collector, Role.analyst},
}


def test_role_scopes_are_exactly_the_design_table():
    assert set(ROLE_SCOPES) == set(Role)
    for scope, roles in POLICY.items():
        assert set(roles_with(scope)) == roles, scope
        assert {r for r in Role if allows(r, scope)} == roles


def test_only_the_privacy_officer_may_reidentify_and_the_collector_only_submits_surveys():
    assert roles_with(Scope.reidentify) == [Role.privacy_officer]
    assert ROLE_SCOPES[Role.collector] == {Scope.surveys_write}
    assert ROLE_SCOPES[Role.viewer] == {Scope.aggregates}


def test_every_scope_says_what_it_allows():
    assert set(SCOPE_ALLOWS) == set(Scope)
    assert all(text and not text.endswith(".") for text in SCOPE_ALLOWS.values())


def test_parse_role_accepts_names_and_refuses_others_in_one_line():
    assert parse_role(" QA ") is Role.qa
    with pytest.raises(PharmaflowError, match="unknown role 'admin': pick one of viewer, analyst"):
        parse_role("admin")
