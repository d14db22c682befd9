import copy
from datetime import UTC, date, datetime

import orjson

from pharmaflow.ingest.phi.protect import ProtectedBatch, Protector, age_at, generalise_zip
from pharmaflow.ingest.phi.tokens import Tokenizer
from pharmaflow.ingest.phi.vault import Sealer
from tests.factories import PATIENT

KEY = b"v" * 32


def _protect(patient, when=datetime(2026, 11, 2, tzinfo=UTC)):
    protector = Protector(Tokenizer(b"h" * 32), Sealer(KEY), {})
    payload = {"order_id": "ORD-9", "patient": copy.deepcopy(patient)}
    out = ProtectedBatch()
    protector.protect_patients([payload], ["evt-1"], [when], out)
    return protector, payload, out


def test_patient_becomes_a_pseudonymous_profile():
    _, payload, out = _protect(PATIENT)
    assert set(payload["patient"]) == {"patient_key", "birth_year", "age_90_plus", "state", "zip3"}
    assert payload["patient"]["birth_year"] == 1950
    assert payload["patient"]["zip3"] == "011"
    assert payload["patient"]["state"] == "MA"
    text = orjson.dumps(payload).decode()
    for value in (
        "MRN00123456",
        "Zuleika",
        "Okonkwo",
        "1950-05-02",
        "555-0134",
        "example.com",
        "Quillfeather",
        "Springfield",
        "01103",
    ):
        assert value not in text
    sealed = out.patients[0]["sealed"]
    assert (
        orjson.loads(Sealer(KEY).open(sealed, payload["patient"]["patient_key"].encode()))
        == PATIENT
    )


def test_over_89_is_reported_as_90_plus_without_a_birth_year():
    ninety = {**PATIENT, "date_of_birth": "1936-11-02"}  # 90th birthday is the event day
    _, payload, _ = _protect(ninety)
    assert payload["patient"]["birth_year"] is None and payload["patient"]["age_90_plus"]
    # 89 until tomorrow, but the birth year alone would say "89 or 90": withheld as well.
    assert age_at(date(1936, 11, 3), datetime(2026, 11, 2)) == 89
    assert _protect({**PATIENT, "date_of_birth": "1936-11-03"})[1]["patient"]["age_90_plus"]
    assert _protect({**PATIENT, "date_of_birth": "1937-01-01"})[1]["patient"] == {
        **_protect(PATIENT)[1]["patient"],
        "birth_year": 1937,
    }


def test_sparse_zip_areas_become_000():
    assert generalise_zip("03601") == "000"
    assert generalise_zip("89301") == "000"
    assert generalise_zip("94110") == "941"
    assert generalise_zip(None) is None


def test_name_tokens_feed_free_text_scrubbing_for_that_order():
    protector, _, out = _protect(PATIENT)
    assert {r["order_id"] for r in out.name_tokens} == {"ORD-9"}
    payloads = [
        {"order_id": "ORD-9", "comment": "Zuleika Okonkwo, call 415-555-0134"},
        {"order_id": "ORD-other", "comment": "Zuleika again"},
    ]
    protector.scrub_free_text(payloads, "comment")
    assert payloads[0]["comment"] == "[NAME] [NAME], call [PHONE]"
    assert payloads[1]["comment"] == "Zuleika again"  # another order's patient: not this name
