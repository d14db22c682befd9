"""The synthetic patient pool: every piece of PHI the simulator will ever write.

All PHI in a simulated file comes from this pool (the patient object on orders, and the
names, phones and emails some survey comments repeat), and `patient_pool(config)` rebuilds
it exactly, so tests can search the lake for each real value instead of guessing patterns.
The pool deliberately includes the awkward cases Safe Harbor cares about: patients over 89
and addresses in the three-digit ZIP areas that must be reported as 000.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pharmaflow.contracts.reference import Reference, load_reference
from pharmaflow.simulate import names
from pharmaflow.simulate.config import SimConfig, streams

ORDERS_PER_DAY = 1000
POOL_PER_ORDER = 0.9  # fewer patients than orders, so some patients order more than once
OVER_89_SHARE = 0.03
RESTRICTED_ZIP_SHARE = 0.015


@dataclass(frozen=True)
class Address:
    street: str
    city: str
    state: str
    zip: str


@dataclass(frozen=True)
class Patient:
    """One patient's PHI exactly as `pharmacy.order.placed` carries it."""

    patient_id: str
    first_name: str
    last_name: str
    date_of_birth: str  # ISO date
    phone: str
    email: str
    address: Address

    def to_payload(self) -> dict[str, Any]:
        """The `patient` object of the order contract (built once, shared by every order)."""
        return {
            "patient_id": self.patient_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "date_of_birth": self.date_of_birth,
            "phone": self.phone,
            "email": self.email,
            "address": {
                "street": self.address.street,
                "city": self.address.city,
                "state": self.address.state,
                "zip": self.address.zip,
            },
        }


def pool_size(config: SimConfig) -> int:
    """How many patients exist: a little under the expected number of orders."""
    return max(20, math.ceil(ORDERS_PER_DAY * config.scale * config.days * POOL_PER_ORDER))


def build_pool(config: SimConfig, reference: Reference) -> tuple[list[Patient], list[str]]:
    """The patients and, in the same order, the pharmacy each one gets their medicine from."""
    rnd = streams(config, "people").py
    n = pool_size(config)
    pharmacies = reference.pharmacies
    mrns = rnd.sample(range(10_000_000, 100_000_000), n)
    patients: list[Patient] = []
    homes: list[str] = []
    for mrn in mrns:
        home = rnd.choice(pharmacies)
        first = rnd.choice(names.FIRST_NAMES)
        last = rnd.choice(names.LAST_NAMES)
        if rnd.random() < RESTRICTED_ZIP_SHARE:
            zip3, state, city = rnd.choice(names.RESTRICTED_ZIP3)
        else:
            state = home.state
            city = rnd.choice(names.CITIES.get(state, ("Springfield",)))
            zip3 = rnd.choice(names.ZIP3.get(state, ("100",)))
        if rnd.random() < OVER_89_SHARE:
            age = rnd.randint(90, 103)
        else:
            age = min(88, max(18, int(rnd.gauss(58, 15))))
        dob = config.start - timedelta(days=int(age * 365.2425) + rnd.randint(30, 330))
        street = (
            f"{rnd.randint(1, 9899)} {rnd.choice(names.STREET_NAMES)} "
            f"{rnd.choice(names.STREET_SUFFIXES)}"
        )
        if rnd.random() < 0.15:
            street += f" Apt {rnd.randint(1, 40)}{rnd.choice('ABCD')}"
        area = rnd.choice(names.AREA_CODES.get(state, ("555",)))
        line = f"555-01{rnd.randint(0, 99):02d}"
        phone = f"({area}) {line}" if rnd.random() < 0.6 else f"{area}-{line}"
        patients.append(
            Patient(
                patient_id=f"MRN{mrn:08d}",
                first_name=first,
                last_name=last,
                date_of_birth=dob.isoformat(),
                phone=phone,
                email=_email(rnd, first, last),
                address=Address(street, city, state, f"{zip3}{rnd.randint(0, 99):02d}"),
            )
        )
        homes.append(home.facility_id)
    return patients, homes


def _email(rnd: random.Random, first: str, last: str) -> str:
    """A plausible personal address on a reserved example domain (RFC 2606)."""
    first, last = first.lower(), last.lower()
    u, number = rnd.random(), rnd.randint(1, 99)
    if u < 0.5:
        local = f"{first}.{last}"
    elif u < 0.8:
        local = f"{first[0]}{last}{number}"
    else:
        local = f"{first}{last[0]}{number}"
    return f"{local}@{rnd.choice(names.EMAIL_DOMAINS)}"


def patient_pool(config: SimConfig) -> list[Patient]:
    """The exact patients (with their PHI) that `simulate(config, ...)` writes."""
    return build_pool(config, load_reference(config.reference_dir))[0]
