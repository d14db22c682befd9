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


def test_a_known_patients_name_is_scrubbed_whatever_event_names_them():
    protector, _, out = _protect(PATIENT)
    assert {r["order_id"] for r in out.name_tokens} == {"ORD-9"}
    payloads = [
        {"order_id": "ORD-9", "comment": "Zuleika Okonkwo, call 415-555-0134"},
        {"order_id": "ORD-other", "comment": "zuleika again"},
        {"comment": "okonkwo, no order id at all"},
    ]
    changed = protector.scrub_free_text(payloads, "comment")
    assert changed.tolist() == [True, True, True]
    assert [p["comment"] for p in payloads] == [
        "[NAME] [NAME], call [PHONE]",
        "[NAME] again",
        "[NAME], no order id at all",
    ]


def test_tokens_from_the_vault_are_global_too():
    tok = Tokenizer(b"h" * 32)
    stored = {"ORD-1": frozenset({tok.name_token("Okonkwo")})}
    protector = Protector(tok, Sealer(KEY), stored)
    payloads = [{"shipment_id": "SHP-1", "detail": "left with neighbour of okonkwo"}]
    protector.scrub_free_text(payloads, "detail")
    assert payloads[0]["detail"] == "left with neighbour of [NAME]"


def test_unchanged_text_is_kept_byte_for_byte_and_changed_text_is_nfkc():
    protector, _, _ = _protect(PATIENT)
    odd = "Cafe\u0301 \uff46\uff55\uff4c\uff4c-width, nothing to hide"
    payloads = [
        {"comment": odd},
        {
            "comment": "\uff4d\uff52\uff4e \uff18\uff17\uff16\uff15\uff14\uff13\uff12\uff11"
            " and Cafe\u0301"
        },
    ]
    changed = protector.scrub_free_text(payloads, "comment")
    assert changed.tolist() == [False, True]
    assert payloads[0]["comment"] is odd
    assert payloads[1]["comment"] == "[MRN] and Caf\u00e9"


def test_nested_fields_and_lists_of_strings_are_scrubbed():
    protector, _, _ = _protect(PATIENT)
    payloads = [
        {"note": {"text": "call Zuleika at 415-555-0134"}},
        {"note": None},
        {"note": {"lines": ["fine", "SSN 123-45-6789", None]}},
    ]
    assert protector.scrub_free_text(payloads, "note.text").tolist() == [True, False, False]
    assert payloads[0]["note"]["text"] == "call [NAME] at [PHONE]"
    assert protector.scrub_free_text(payloads, "note.lines").tolist() == [False, False, True]
    assert payloads[2]["note"]["lines"] == ["fine", "SSN [SSN]", None]


def test_a_comment_before_its_order_loses_the_name_by_detection():
    protector = Protector(Tokenizer(b"h" * 32), Sealer(KEY), {})  # no patient seen yet
    payloads = [
        {"order_id": "ORD-9", "comment": "This is Zuleika Okonkwo, the box was crushed."},
        {"order_id": "ORD-9", "comment": "Please leave it at 12 Quillfeather Lane."},
        {"order_id": "ORD-9", "comment": "Maria Garcia picked it up for me."},
    ]
    protector.scrub_free_text(payloads, "comment")
    assert [p["comment"] for p in payloads] == [
        "This is [NAME], the box was crushed.",
        "Please leave it at [ADDRESS].",
        "[NAME] picked it up for me.",
    ]
