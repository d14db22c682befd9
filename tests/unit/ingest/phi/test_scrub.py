import pyarrow as pa

from pharmaflow.ingest.phi.scrub import scrub_names, scrub_patterns
from pharmaflow.ingest.phi.tokens import Tokenizer

TOK = Tokenizer(b"k" * 32)


def test_patterns_remove_emails_phones_ssn_and_mrn():
    texts = pa.array(
        [
            "mail me at zuleika.okonkwo@example.com or call (415) 555-0134",
            "my number is 415.555.0199, SSN 123-45-6789, chart MRN00123456",
            "+1 415 555 0100 anytime",
            "Lot LOT-2611-0001 arrived, 3 boxes",
            None,
        ]
    )
    out = scrub_patterns(texts).to_pylist()
    assert out[0] == "mail me at [EMAIL] or call [PHONE]"
    assert out[1] == "my number is [PHONE], SSN [SSN], chart [MRN]"
    assert out[2] == "[PHONE] anytime"
    assert out[3] == "Lot LOT-2611-0001 arrived, 3 boxes"  # ids and quantities untouched
    assert out[4] is None


def test_the_patients_own_name_is_removed_by_token_case_insensitively():
    tokens = frozenset({TOK.name_token("Zuleika"), TOK.name_token("Okonkwo")})
    out = scrub_names(
        ["Thanks, ZULEIKA okonkwo's pharmacist was kind", "Zuleika here", None],
        [tokens, frozenset(), tokens],
        TOK.name_token,
    )
    assert out == ["Thanks, [NAME] [NAME] pharmacist was kind", "Zuleika here", None]


def test_tokens_are_keyed():
    assert Tokenizer(b"a" * 32).patient_key("MRN1") != Tokenizer(b"b" * 32).patient_key("MRN1")
    assert TOK.patient_key("mrn1") == TOK.patient_key("MRN1")
