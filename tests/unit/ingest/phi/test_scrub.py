"""Pattern rules: each identifier form found, each look-alike (lot, NDC, temperature) kept."""

import pytest

from pharmaflow.ingest.phi.names import NameIndex
from pharmaflow.ingest.phi.scrub import normalise, scrub_all, scrub_patterns
from pharmaflow.ingest.phi.tokens import Tokenizer

TOK = Tokenizer(b"k" * 32)


def scrub(text: str) -> str:
    return scrub_patterns(normalise(text))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MRN: 87654321", "[MRN]"),
        ("MRN 12345678 on file", "[MRN] on file"),
        ("mrn 12345678", "[MRN]"),
        ("mrn#1234567", "[MRN]"),
        ("MR#1234567", "[MRN]"),
        ("medical record number 1234567", "[MRN]"),
        ("chart MRN00123456", "chart [MRN]"),
        ("DOB 04/05/1950", "DOB [DATE]"),
        ("born March 4, 1950", "born [DATE]"),
        ("born 4th of March 1950", "born [DATE]"),
        ("dob: 1950-03-04", "dob: [DATE]"),
        ("seen on 3 Mar. 2026", "seen on [DATE]"),
        ("lives at 12 Quillfeather Lane", "lives at [ADDRESS]"),
        ("400 N. Main St Apt 5, ring twice", "[ADDRESS], ring twice"),
        ("SSN 123456789", "SSN [SSN]"),
        ("ssn 123 45 6789", "ssn [SSN]"),
        ("ssn 123-45-6789", "ssn [SSN]"),
        ("call +44 20 7946 0958", "call [PHONE]"),
        ("call +49 30 1234567", "call [PHONE]"),
        ("call 0049 30 1234567", "call [PHONE]"),
        ("call 07700 900123", "call [PHONE]"),
        ("call (415) 555-0134", "call [PHONE]"),
        ("call 415.555.0134", "call [PHONE]"),
        ("call +1 415 555 0100 anytime", "call [PHONE] anytime"),
        ("two: 123456789 123456789", "two: [SSN] [SSN]"),
        ("mail josé.garcía@exämple.com today", "mail [EMAIL] today"),
        ("mail zuleika.okonkwo@example.com", "mail [EMAIL]"),
        # full-width digits are digits after NFKC
        ("SSN \uff11\uff12\uff13-\uff14\uff15-\uff16\uff17\uff18\uff19", "SSN [SSN]"),
    ],
)
def test_identifier_forms_are_replaced_by_their_label(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Lot LOT-2026-11-0042 arrived, 3 boxes",
        "NDC 00002-1433-80 short shipped",
        "kept at 2-8 C, read 9.23 C at 14:30",
        "120 tablets, 30 days supply, qty 1000",
        "Batch BT-PL01-261102-03 and order ORD-123456789 and SRV-261102-00012",
        "Dr. Chen reviewed deviation DEV-26-00042",
        "Metformin 500 mg, 2 x daily",
    ],
)
def test_look_alikes_are_kept(text):
    assert scrub(text) == text


def test_nulls_pass_through():
    assert scrub_all([None, "SSN 123-45-6789"]) == [None, "SSN [SSN]"]


def _index(**orders: list[str]) -> NameIndex:
    return NameIndex(
        TOK, {o: frozenset(TOK.name_token(w) for w in words) for o, words in orders.items()}
    )


def test_any_known_patients_name_is_removed_in_any_case():
    index = _index(**{"ORD-1": ["Zuleika", "Okonkwo"], "ORD-2": ["Bexley", "Fenwick"]})
    assert index.scrub("Thanks, ZULEIKA okonkwo's pharmacist", None) == (
        "Thanks, [NAME] [NAME] pharmacist"
    )
    assert index.scrub("Bexley called", "ORD-1") == "[NAME] called"  # another order's patient


def test_decomposed_and_unaccented_spellings_match_the_token():
    index = _index(**{"ORD-1": ["José", "García"]})
    assert index.scrub("Jose\u0301 Garci\u0301a wrote", None) == "[NAME] [NAME] wrote"
    assert index.scrub("jose garcia wrote", None) == "[NAME] [NAME] wrote"


def test_common_words_of_other_patients_need_to_be_written_as_names():
    index = _index(**{"ORD-1": ["Will", "Brown"], "ORD-2": ["May", "Grace"]})
    kept = "Will deliver the brown box; it may arrive by grace of the courier."
    assert index.scrub(kept, None) == kept
    assert index.scrub("The courier met Will Brown at the door", None) == (
        "The courier met [NAME] [NAME] at the door"
    )
    assert index.scrub("Will Brown called", None) == "[NAME] [NAME] called"
    assert index.scrub("Ask Grace about it", None) == "Ask [NAME] about it"
    # the linked order's own patient: any case, any position
    assert index.scrub("will and brown", "ORD-1") == "[NAME] and [NAME]"


def test_tokens_are_keyed():
    assert Tokenizer(b"a" * 32).patient_key("MRN1") != Tokenizer(b"b" * 32).patient_key("MRN1")
    assert TOK.patient_key("mrn1") == TOK.patient_key("MRN1")
    assert Tokenizer(b"a" * 32).name_token("x") != Tokenizer(b"b" * 32).name_token("x")
