"""The patient pool is the exact PHI in the file, and names appear nowhere they should not."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pharmaflow.simulate import faults, names
from pharmaflow.simulate.people import patient_pool
from tests.unit.simulate.conftest import Run

RESTRICTED = {zip3 for zip3, _, _ in names.RESTRICTED_ZIP3}
PHONE = re.compile(r"^(\(\d{3}\) |\d{3}-)555-01\d\d$")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_placed_orders_carry_exactly_the_pool_patients(clean_run: Run) -> None:
    pool = {p.patient_id: p.to_payload() for p in patient_pool(clean_run.config)}
    seen = set()
    for e in clean_run.of_type("pharmacy.order.placed"):
        patient = e["payload"]["patient"]
        assert patient == pool[patient["patient_id"]]
        seen.add(patient["patient_id"])
    assert len(seen) == clean_run.stats.phi.patients_with_orders
    assert len(seen) < clean_run.stats.by_type["pharmacy.order.placed"]  # repeat patients


def test_pool_covers_the_safe_harbor_edge_cases(clean_run: Run) -> None:
    pool = patient_pool(clean_run.config)
    start = clean_run.config.start
    assert len({p.patient_id for p in pool}) == len(pool)
    over_89 = 0
    for p in pool:
        assert re.fullmatch(r"MRN\d{8}", p.patient_id)
        assert PHONE.match(p.phone), p.phone
        assert re.fullmatch(r"[a-z0-9.]+@example\.(com|org|net)", p.email)
        assert re.fullmatch(r"\d{5}", p.address.zip) and re.fullmatch(r"[A-Z]{2}", p.address.state)
        born = date.fromisoformat(p.date_of_birth)
        age = start.year - born.year - ((start.month, start.day) < (born.month, born.day))
        assert 18 <= age <= 103
        over_89 += age >= 90
    assert 0.01 * len(pool) <= over_89 <= 0.06 * len(pool)
    assert any(p.address.zip[:3] in RESTRICTED for p in pool)
    assert clean_run.stats.phi.patients_over_89 > 0


def test_some_comments_repeat_the_patients_own_identifiers(clean_run: Run) -> None:
    patient_of = {
        e["key"]: e["payload"]["patient"] for e in clean_run.of_type("pharmacy.order.placed")
    }
    found = {"name": 0, "phone": 0, "email": 0}
    for e in clean_run.of_type("feedback.survey.submitted"):
        # a survey may leave the comment out (feedback.NO_COMMENT_SHARE)
        comment, p = e["payload"].get("comment", ""), patient_of[e["payload"]["order_id"]]
        words = set(re.findall(r"[A-Za-z]+", comment))
        found["name"] += bool({p["first_name"], p["last_name"]} & words)
        found["phone"] += p["phone"] in comment
        found["email"] += p["email"] in comment
    phi = clean_run.stats.phi
    assert found == {
        "name": phi.comments_with_name,
        "phone": phi.comments_with_phone,
        "email": phi.comments_with_email,
    }
    assert sum(found.values()) > 0


def test_no_name_appears_in_any_other_text(clean_run: Run) -> None:
    """Outside the patient object and the comments that quote their own patient, no text the
    simulator writes contains any pool name as a word. (Malformed lines are copies of these
    events, altered only with the fault vocabulary checked below.)"""
    pool = patient_pool(clean_run.config)
    pool_names = {n.lower() for p in pool for n in (p.first_name, p.last_name)}
    patient_of: dict[str, dict[str, str]] = {}
    words: set[str] = set()
    for e in clean_run.events():
        payload = dict(e["payload"])
        if "patient" in payload:
            patient_of[payload["order_id"]] = payload.pop("patient")
        if "comment" in payload:
            own = patient_of[payload["order_id"]]
            for field in ("email", "phone", "first_name", "last_name"):
                payload["comment"] = payload["comment"].replace(own[field], "")
        for text in _strings({**e, "payload": payload}):
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", text))
    assert not words & pool_names, sorted(words & pool_names)[:10]
    fault_words = {
        w.lower()
        for text in (*faults.NUMBER_WORDS, *faults.ENUM_NONSENSE, *faults.TYPE_NONSENSE)
        for w in re.findall(r"[A-Za-z]+", text)
    }
    assert not fault_words & pool_names


def test_name_lists_are_distinctive() -> None:
    every = names.FIRST_NAMES + names.LAST_NAMES
    assert len(names.FIRST_NAMES) >= 200 and len(names.LAST_NAMES) >= 200
    assert len(set(every)) == len(every)
    for name in every:
        assert name.isascii() and name.isalpha() and len(name) >= 5
        assert not re.fullmatch(r"[a-fA-F]+", name)  # could be a hex group of an id
    other = {
        w.lower()
        for text in (*names.STREET_NAMES, *[c for cs in names.CITIES.values() for c in cs])
        for w in text.split()
    }
    assert not other & {n.lower() for n in every}
