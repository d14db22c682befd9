import pytest

from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.keys import load_key
from pharmaflow.ingest.phi.vault import PhiVault, Sealer
from pharmaflow.lake.files import write_parquet_atomic
from tests.unit.ingest.phi.test_protect import KEY, _protect


def _vault_with_one_patient(tmp_path):
    _, payload, out = _protect(
        {
            "patient_id": "MRN1",
            "first_name": "Ann",
            "last_name": "Bee",
            "date_of_birth": "1980-01-01",
            "phone": "x",
            "email": "y",
            "address": {"street": "s", "city": "c", "state": "MA", "zip": "02110"},
        }
    )
    vault = PhiVault(tmp_path / "vault", KEY)
    write_parquet_atomic(out.patients_table(), vault.patients_dir / "part-b1.parquet")
    return vault, payload["patient"]["patient_key"]


def test_reidentify_returns_the_original_and_logs_the_access(tmp_path):
    vault, key = _vault_with_one_patient(tmp_path)
    original = vault.reidentify(key, requested_by="qa.lead", reason="recall LOT-1")
    assert original["patient_id"] == "MRN1" and original["first_name"] == "Ann"
    log = vault.access_log.read_text()
    assert key in log and "recall LOT-1" in log and "MRN1" not in log and "Ann" not in log


def test_reidentify_needs_a_reason_and_the_right_key(tmp_path):
    vault, key = _vault_with_one_patient(tmp_path)
    with pytest.raises(PharmaflowError, match="who is asking"):
        vault.reidentify(key, requested_by="qa.lead", reason=" ")
    intruder = PhiVault(vault.root, b"w" * 32)
    with pytest.raises(PharmaflowError, match="does not decrypt"):
        intruder.reidentify(key, requested_by="x", reason="y")
    with pytest.raises(PharmaflowError, match="no vault record"):
        vault.reidentify("pk_unknown", requested_by="x", reason="y")


def test_sealed_data_is_bound_to_its_patient_key():
    sealer = Sealer(KEY)
    blob = sealer.seal(b"secret", b"pk_a")
    with pytest.raises(PharmaflowError):
        sealer.open(blob, b"pk_b")


def test_generated_keys_are_stable_and_private(tmp_path):
    path = tmp_path / "secrets" / "vault.key"
    first = load_key(None, path, "vault")
    assert load_key(None, path, "vault") == first and len(first) == 32
    assert path.stat().st_mode & 0o077 == 0
