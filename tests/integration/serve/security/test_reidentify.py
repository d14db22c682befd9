"""Re-identification through a real PHI vault, built by the real ingest of a small simulated
file: only a privacy officer with a reason gets the identifiers; every lookup lands in the
audit trail (never the identifiers) and the vault's access log; the API route answers
200/401/403/404/422 and the audit routes page and verify the trail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pharmaflow.cli.ingest import run_ingest
from pharmaflow.config import Settings
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.serve.api.routes.security import router
from pharmaflow.serve.api.services import Services
from pharmaflow.serve.security.keys import KeyStore, Principal
from pharmaflow.serve.security.reidentify import PatientNotFound, reidentify
from pharmaflow.serve.security.roles import Role
from pharmaflow.serve.security.store import open_security
from pharmaflow.simulate.config import SimConfig
from pharmaflow.simulate.simulator import simulate
from tests.conftest import TEST_KEYS

UNKNOWN = "pk_" + "0" * 32
REASON = "recall RC-2026-014: notify the patient of lot L-4711"


@pytest.fixture(scope="module")
def vaulted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[str]]:
    root = tmp_path_factory.mktemp("reidentify")
    simulate(SimConfig(seed=5, days=1, scale=0.05), root / "events.jsonl")
    settings = Settings(
        data_dir=root / "data",
        hmac_key=TEST_KEYS["PHARMAFLOW_HMAC_KEY"],
        vault_key=TEST_KEYS["PHARMAFLOW_VAULT_KEY"],
        ingest_workers=0,
    )
    assert run_ingest(settings, str(root / "events.jsonl")).landed > 0
    patients = ds.dataset(settings.vault_dir / "patients", format="parquet").to_table()
    return settings, sorted(set(patients["patient_key"].to_pylist()))


@pytest.fixture
def security(vaulted, tmp_path: Path) -> Iterator[tuple[Settings, KeyStore, list[str]]]:
    settings, patient_keys = vaulted
    settings = settings.model_copy(update={"security_store": str(tmp_path / "security.db")})
    keys, _ = open_security(settings)
    yield settings, keys, patient_keys
    keys.close()


def access_log(settings: Settings) -> list[dict]:
    path = settings.vault_dir / "access_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def officer() -> Principal:
    return Principal("0123456789ab", "Dana Privacy", Role.privacy_officer)


def test_a_privacy_officer_gets_the_identifiers_and_the_trail_gets_no_phi(security):
    settings, keys, patient_keys = security
    before = len(access_log(settings))
    result = reidentify(settings, keys.audit, officer(), patient_keys[0], REASON)
    identifiers = result["identifiers"]
    # the right patient: its MRN tokenises to the key asked for
    tokenizer = Tokenizer(bytes.fromhex(TEST_KEYS["PHARMAFLOW_HMAC_KEY"]))
    assert tokenizer.patient_key(identifiers["patient_id"]) == patient_keys[0]
    assert identifiers["first_name"] and identifiers["date_of_birth"]

    (entry,) = keys.audit.entries()
    assert result["audit_seq"] == entry.seq
    assert (entry.actor, entry.action, entry.target, entry.reason) == (
        "Dana Privacy (API key 0123456789ab)",
        "reidentify",
        patient_keys[0],
        REASON,
    )
    assert entry.details == {"found": True, "role": "privacy_officer"}
    trail = json.dumps([e.to_dict() for e in keys.audit.entries()])
    for field in ("patient_id", "first_name", "last_name", "date_of_birth"):
        assert identifiers[field] not in trail, field

    log = access_log(settings)[before:]
    assert [(e["patient_key"], e["requested_by"], e["found"]) for e in log] == [
        (patient_keys[0], "Dana Privacy (API key 0123456789ab)", True)
    ]


def test_anyone_but_a_privacy_officer_or_a_short_reason_is_refused_before_the_vault(security):
    settings, keys, patient_keys = security
    before = len(access_log(settings))
    for role in (Role.analyst, Role.qa, Role.viewer):
        with pytest.raises(PharmaflowError, match="only the privacy_officer role may re-identify"):
            reidentify(settings, keys.audit, Principal("k", "n", role), patient_keys[0], REASON)
    with pytest.raises(PharmaflowError, match="a reason of at least 10 characters"):
        reidentify(settings, keys.audit, officer(), patient_keys[0], "   because ")
    assert keys.audit.entries() == [] and len(access_log(settings)) == before


def test_an_unknown_key_is_not_found_and_still_audited(security):
    settings, keys, _ = security
    with pytest.raises(PatientNotFound, match=f"no vault record for patient key {UNKNOWN}"):
        reidentify(settings, keys.audit, officer(), UNKNOWN, REASON)
    (entry,) = keys.audit.entries()
    assert entry.target == UNKNOWN and entry.details["found"] is False


def test_an_identifier_typed_into_the_reason_is_scrubbed_before_it_is_logged(security):
    settings, keys, patient_keys = security
    reason = "caller jane.doe@example.com asked about her refill, ticket 1234"
    reidentify(settings, keys.audit, officer(), patient_keys[1], reason)
    assert "jane.doe@example.com" not in keys.audit.entries()[0].reason
    assert "jane.doe@example.com" not in json.dumps(access_log(settings))


@pytest.fixture
def client(security) -> Iterator[tuple[TestClient, KeyStore, list[str]]]:
    settings, keys, patient_keys = security
    app = FastAPI()
    app.include_router(router)
    app.state.services = Services(settings=settings, queries=None, keys=keys, audit=keys.audit)
    with TestClient(app) as c:
        yield c, keys, patient_keys


def header(keys: KeyStore, role: Role) -> dict[str, str]:
    return {"X-API-Key": keys.create(f"{role} user", role, actor="test")[1]}


def test_the_reidentify_route(client):
    c, keys, patient_keys = client
    officer_key, analyst_key = header(keys, Role.privacy_officer), header(keys, Role.analyst)
    url = f"/v1/patients/{patient_keys[0]}/reidentify"

    ok = c.post(url, json={"reason": REASON}, headers=officer_key)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["patient_key"] == patient_keys[0] and body["identifiers"]["patient_id"]
    assert keys.audit.entries(after_seq=body["audit_seq"] - 1)[0].action == "reidentify"

    assert c.post(url, json={"reason": REASON}).status_code == 401
    denied = c.post(url, json={"reason": REASON}, headers=analyst_key)
    assert denied.status_code == 403 and "roles that may: privacy_officer" in denied.text
    short = c.post(url, json={"reason": "why not"}, headers=officer_key)
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "reason"]
    assert c.post(url, json={}, headers=officer_key).json()["detail"][0]["loc"] == [
        "body",
        "reason",
    ]
    bad_key = c.post("/v1/patients/alice/reidentify", json={"reason": REASON}, headers=officer_key)
    assert bad_key.status_code == 422 and bad_key.json()["detail"][0]["loc"] == [
        "path",
        "patient_key",
    ]
    missing = c.post(
        f"/v1/patients/{UNKNOWN}/reidentify", json={"reason": REASON}, headers=officer_key
    )
    assert missing.status_code == 404 and UNKNOWN in missing.json()["detail"]
    for response in (denied, short, missing):
        assert body["identifiers"]["patient_id"] not in response.text


def test_the_audit_routes_page_and_verify_for_qa_only(client):
    c, keys, _ = client
    qa = header(keys, Role.qa)  # creating keys writes entries 1..
    for _ in range(3):
        header(keys, Role.viewer)
    assert c.get("/v1/audit", headers=header(keys, Role.analyst)).status_code == 403

    first = c.get("/v1/audit", params={"limit": 2}, headers=qa).json()
    assert [e["seq"] for e in first["items"]] == [1, 2] and first["next_after_seq"] == 2
    rest = c.get("/v1/audit", params={"after_seq": 2, "limit": 10}, headers=qa).json()
    assert [e["seq"] for e in rest["items"]] == [3, 4, 5] and rest["next_after_seq"] is None
    assert rest["items"][0]["action"] == "apikey.create" and rest["items"][0]["actor"] == "test"

    verified = c.get("/v1/audit/verify", headers=qa).json()
    head = keys.audit.head()
    assert verified == {
        "ok": True,
        "entries": 5,
        "head_seq": 5,
        "head_hash": head.hash,
        "problems": [],
    }
    gone = c.get("/v1/audit/verify", params={"expected_head": "e" * 64}, headers=qa).json()
    assert gone["ok"] is False and "is not in the trail" in gone["problems"][0]
    assert c.get("/v1/audit/verify", params={"expected_head": "x"}, headers=qa).status_code == 422
