"""Specialty-pharmacy orders: placed -> insurance validated -> filled -> shipped -> delivered.

Patients come from the synthetic pool and reorder the same therapy through their home
pharmacy. Claims are approved, rejected (most rejected orders are then cancelled) or need
prior authorisation, which a later approval clears one to three days on. A fill takes the
newest lot of the product that has reached the pharmacy, waiting for the opening delivery if
needed, and the order then travels to the patient in its own shipment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pharmaflow.contracts.reference import Payer, Product, Reference
from pharmaflow.simulate.clock import weekday, yymmdd
from pharmaflow.simulate.config import DAY_MS, HOUR_MS, MINUTE_MS, SimConfig, streams
from pharmaflow.simulate.events import EventSink
from pharmaflow.simulate.logistics import Inventory, Shipper
from pharmaflow.simulate.people import ORDERS_PER_DAY, Patient
from pharmaflow.simulate.truth import Truth

COLD_CHAIN_SHARE = 0.35  # of orders, which keeps logger volume in proportion
DAY_FACTOR = (1.15, 1.15, 1.15, 1.15, 1.15, 0.65, 0.5)  # Monday .. Sunday, averages ~1
# Orders by UTC hour: quiet during the US night, busiest in US business hours.
HOUR_WEIGHTS = np.array(
    [5, 4, 3, 2, 1, 1, 1, 1, 1, 2, 3, 5, 7, 9, 10, 10, 10, 10, 10, 10, 9, 8, 7, 6], float
)
REJECT_CODES = {
    "70": "product or service not covered",
    "76": "plan limitations exceeded",
    "79": "refill too soon",
    "65": "patient not covered",
    "MR": "product not on formulary",
}
OTHER_CANCEL_REASONS = (
    "Patient requested cancellation",
    "Prescriber discontinued therapy",
    "Duplicate order entered in error",
)


@dataclass(frozen=True)
class DeliveredOrder:
    """An order that reached its patient, with what the patient experienced."""

    order_id: str
    patient: Patient
    trace: str
    delivered_ms: int
    late_hours: float
    damaged: bool
    excursion: bool


@dataclass(frozen=True)
class PharmacyOutcome:
    delivered: list[DeliveredOrder]
    patients_ordering: frozenset[int]  # indexes into the pool


def _quantity(product: Product, u: float) -> tuple[int, int]:
    """Quantity and days' supply typical of the dosage form."""
    if product.dosage_form == "INJECTION":
        options = ((1, 28), (2, 28), (2, 30), (4, 84))
    else:
        options = ((30, 30), (28, 28), (60, 30), (90, 90))
    return options[int(u * len(options))]


def _copay(payer: Payer, u: float) -> float:
    """Patient cost share, shaped by plan type."""
    if payer.payer_type == "MEDICAID":
        return round(4 * u, 2)
    if payer.payer_type == "MEDICARE":
        return round(300 * u * u, 2)
    return float((0, 5, 10, 25, 40, 50, 75)[int(u * 7)])


def run(
    config: SimConfig,
    reference: Reference,
    sink: EventSink,
    patients: list[Patient],
    homes: list[str],
    inventory: Inventory,
    late_rates: dict[str, float],
    truth: Truth | None = None,
) -> PharmacyOutcome:
    """Emit the order flow of every order placed in the window."""
    orders = _Orders(config, reference, sink, patients, homes, inventory, late_rates, truth)
    for placed in orders.placement_times():
        orders.flow(placed)
    orders.finish()
    return PharmacyOutcome(orders.delivered, frozenset(orders.ordering))


class _Orders:
    """Per-order state machine; one `flow` call emits one order's whole life."""

    def __init__(
        self,
        config: SimConfig,
        reference: Reference,
        sink: EventSink,
        patients: list[Patient],
        homes: list[str],
        inventory: Inventory,
        late_rates: dict[str, float],
        truth: Truth | None = None,
    ) -> None:
        st = streams(config, "pharmacy")
        self._config = config
        self._end = config.end_ms
        self._rng, self._rnd = st.np, st.py
        self._emit = sink.emit
        self._patients = patients
        self._homes = homes
        self._inventory = inventory
        self._payers = reference.payers
        self._cold = reference.cold_chain_products
        self._ambient = tuple(p for p in reference.products if not p.cold_chain)
        self._pharmacy_no = {p.facility_id: i + 1 for i, p in enumerate(reference.pharmacies)}
        self._shipper = Shipper(
            config, reference, sink, streams(config, "patient_shipments"), "SHP", late_rates, truth
        )
        self._therapy: dict[int, Product] = {}
        self._coverage: dict[int, Payer] = {}
        self._seq_of_day: dict[str, int] = {}
        self.delivered: list[DeliveredOrder] = []
        self.ordering: set[int] = set()

    def placement_times(self) -> list[int]:
        """Order arrival times for the whole window, drawn in bulk, in time order."""
        rng, config = self._rng, self._config
        parts: list[np.ndarray] = []
        for d in range(config.days):
            day = config.start_ms + d * DAY_MS
            n = rng.poisson(ORDERS_PER_DAY * config.scale * DAY_FACTOR[weekday(day)])
            hours = rng.choice(24, n, p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
            parts.append(day + hours * HOUR_MS + rng.integers(0, HOUR_MS, n))
        return np.sort(np.concatenate(parts)).tolist()

    def _product_for(self, who: int) -> Product:
        """Patients stay on their therapy; now and then a prescriber switches it."""
        rnd = self._rnd
        if who not in self._therapy or rnd.random() < 0.15:
            use_cold = (rnd.random() < COLD_CHAIN_SHARE and self._cold) or not self._ambient
            self._therapy[who] = rnd.choice(self._cold if use_cold else self._ambient)
        return self._therapy[who]

    def _payer_for(self, who: int) -> Payer:
        """Older patients are mostly on Medicare; others on commercial plans, Medicaid or a PBM."""
        if who not in self._coverage:
            rnd = self._rnd
            age = self._config.start.year - int(self._patients[who].date_of_birth[:4])
            u = rnd.random()
            if age >= 65 and u < 0.8:
                wanted: tuple[str, ...] = ("MEDICARE",)
            elif u < 0.65:
                wanted = ("COMMERCIAL",)
            elif u < 0.82:
                wanted = ("MEDICAID",)
            else:
                wanted = ("PBM", "COMMERCIAL")
            matching = [p for p in self._payers if p.payer_type in wanted] or list(self._payers)
            self._coverage[who] = rnd.choice(matching)
        return self._coverage[who]

    def finish(self) -> None:
        """Emit what the patient shipments deferred (their cold-chain logger readings)."""
        self._shipper.finish()

    def _validated(
        self, order_id: str, trace: str, at: int, status: str, copay: float, code: str | None = None
    ) -> None:
        payload: dict[str, object] = {"order_id": order_id, "status": status, "copay_amount": copay}
        if code is not None:
            payload["reject_code"] = code
        self._emit("pharmacy.order.insurance_validated", "claims", at, order_id, payload, trace)

    def _cancel(self, order_id: str, trace: str, at: int, reason: str) -> None:
        payload = {"order_id": order_id, "reason": reason}
        self._emit("pharmacy.order.cancelled", "oms", at, order_id, payload, trace)

    def flow(self, placed: int) -> None:
        rnd, emit, end = self._rnd, self._emit, self._end
        who = rnd.randrange(len(self._patients))
        patient = self._patients[who]
        self.ordering.add(who)
        product = self._product_for(who)
        payer = self._payer_for(who)
        pharmacy_id = self._homes[who]
        day = yymmdd(placed)
        self._seq_of_day[day] = self._seq_of_day.get(day, 0) + 1
        order_id = f"ORD-{day}-{self._seq_of_day[day]:05d}"
        trace = f"{rnd.getrandbits(128):032x}"
        quantity, days_supply = _quantity(product, rnd.random())
        order = {
            "order_id": order_id,
            "pharmacy_id": pharmacy_id,
            "payer_id": payer.payer_id,
            "ndc": product.ndc,
            "quantity": quantity,
            "days_supply": days_supply,
            "priority": "URGENT" if rnd.random() < 0.07 else "STANDARD",
            "patient": patient.to_payload(),
        }
        emit("pharmacy.order.placed", "oms", placed, order_id, order, trace)

        checked = placed + int((2 + min(rnd.expovariate(1 / 40), 240)) * MINUTE_MS)
        u = rnd.random()
        if u < 0.08:
            code = rnd.choice(list(REJECT_CODES))
            self._validated(order_id, trace, checked, "REJECTED", 0.0, code)
            if rnd.random() < 0.85:
                self._cancel(
                    order_id,
                    trace,
                    checked + int(rnd.uniform(10, 24 * 60) * MINUTE_MS),
                    f"Claim rejected by payer: reject code {code}, {REJECT_CODES[code]}",
                )
            return
        if u < 0.18:
            self._validated(order_id, trace, checked, "PRIOR_AUTH_REQUIRED", 0.0)
            checked += int(rnd.uniform(1, 3) * DAY_MS)
        self._validated(order_id, trace, checked, "APPROVED", _copay(payer, rnd.random()))
        if rnd.random() < 0.015:
            at = checked + int(rnd.uniform(10, 360) * MINUTE_MS)
            self._cancel(order_id, trace, at, rnd.choice(OTHER_CANCEL_REASONS))
            return

        filled = checked + int(rnd.uniform(0.5, 8) * HOUR_MS)
        if filled >= end:
            return
        lot = self._inventory.latest(pharmacy_id, product.ndc, filled)
        if lot is None:
            first = self._inventory.first_arrival(pharmacy_id, product.ndc)
            if first is None:
                return  # nothing of this product reaches the pharmacy in the window
            filled = max(filled, first) + int(rnd.uniform(20, 120) * MINUTE_MS)
            lot = self._inventory.latest(pharmacy_id, product.ndc, filled)
            assert lot is not None
        fill = {
            "order_id": order_id,
            "ndc": product.ndc,
            "lot_number": lot,
            "quantity": quantity,
            "pharmacist_id": f"RPH-{self._pharmacy_no[pharmacy_id]:02d}{rnd.randint(1, 6)}",
        }
        emit("pharmacy.order.filled", "oms", filled, order_id, fill, trace)

        created = filled + int(rnd.uniform(0.5, 5) * HOUR_MS)
        if created >= end:
            return
        if product.cold_chain or rnd.random() < 0.07:
            level = "OVERNIGHT"
        else:
            level = "TWO_DAY" if rnd.random() < 0.7 else "GROUND"
        carrier = self._shipper.carrier(product.cold_chain, ("PARCEL",))
        shipment = self._shipper.ship(
            created_ms=created,
            origin=pharmacy_id,
            destination=None,
            carrier=carrier,
            service_level=level,
            cold_chain=product.cold_chain,
            lots=[lot],
            trace=trace,
            order_id=order_id,
            loss_rate=0.002,
            damage_rate=0.005,
            daily_pickup=True,
            destination_state=patient.address.state,
        )
        shipped = {
            "order_id": order_id,
            "shipment_id": shipment.shipment_id,
            "carrier_id": carrier.carrier_id,
        }
        at = created + int(rnd.uniform(1, 5) * MINUTE_MS)
        emit("pharmacy.order.shipped", "oms", at, order_id, shipped, trace)
        if shipment.delivered_ms is None:
            assert shipment.lost_ms is not None
            self._cancel(
                order_id,
                trace,
                shipment.lost_ms + int(rnd.uniform(1, 6) * HOUR_MS),
                "Shipment lost in transit; order closed and a replacement raised",
            )
            return
        done = shipment.delivered_ms + int(rnd.uniform(1, 20) * MINUTE_MS)
        emit("pharmacy.order.delivered", "oms", done, order_id, {"order_id": order_id}, trace)
        if done < end:
            late_ms = max(0, shipment.delivered_ms - shipment.promised_ms)
            self.delivered.append(
                DeliveredOrder(
                    order_id=order_id,
                    patient=patient,
                    trace=trace,
                    delivered_ms=done,
                    late_hours=late_ms / HOUR_MS,
                    damaged=shipment.damaged,
                    excursion=shipment.excursion,
                )
            )
