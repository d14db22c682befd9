"""Patient surveys a few days after delivery, with scores that follow the delivery experience.

Ratings and NPS drop with lateness, damage and warm cold-chain parcels, so models and KPIs
built on the lake have a real signal to find. Comments are free text and about one in five
repeats the patient's own name, phone number or email, exactly as people write them, so
the ingest scrubber is tested on the real values of `patient_pool(config)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pharmaflow.simulate.clock import yymmdd
from pharmaflow.simulate.config import DAY_MS, HOUR_MS, SimConfig, streams
from pharmaflow.simulate.events import EventSink
from pharmaflow.simulate.pharmacy import DeliveredOrder

SURVEY_SHARE = 0.25
PHI_COMMENT_SHARE = 0.2

PRAISE = (
    "Arrived on time and the packaging was excellent.",
    "Great service, the pharmacy team was very helpful.",
    "Easy refill and fast delivery, thank you.",
    "Delivery came early and the tracking updates were clear.",
    "Very happy with how my order was handled.",
)
NEUTRAL = (
    "Delivery was fine but the tracking updates were confusing.",
    "Took a little longer than I expected.",
    "Order arrived, nothing special to report.",
)
LATE = (
    "The package arrived late and nobody called me.",
    "Delivery was a day late and I nearly missed a dose.",
    "Tracking said out for delivery all day and it came the next day.",
)
DAMAGED = ("The box was crushed when it arrived.", "The carton was damaged on arrival.")
WARM = (
    "The ice packs had melted when the box arrived.",
    "The cooler was warm on arrival and I am worried about the medicine.",
)
# Each sentence with the kinds of identifier it repeats.
PHI_SENTENCES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("name", "phone"), "This is {first} {last}, please call me at {phone}."),
    (("name",), "Thank you from {first}!"),
    (("name",), "My name is {last} and the courier left the box outside."),
    (("email",), "You can reach me at {email} about my next refill."),
    (("email",), "Please send the receipt to {email}."),
    (("phone",), "Please call me at {phone} before the next delivery."),
)


@dataclass(frozen=True)
class FeedbackOutcome:
    """How many comments repeat each kind of identifier (for `PhiStats`)."""

    comments_with_name: int
    comments_with_phone: int
    comments_with_email: int


def run(config: SimConfig, sink: EventSink, delivered: list[DeliveredOrder]) -> FeedbackOutcome:
    """Emit surveys for about a quarter of delivered orders, if submitted inside the window."""
    rnd = streams(config, "feedback").py
    counts = {"name": 0, "phone": 0, "email": 0}
    surveys = 0
    for order in delivered:
        if rnd.random() >= SURVEY_SHARE:
            continue
        # The survey invitation goes out on delivery: some answer within hours, most days later.
        wait = rnd.uniform(1, 12) * HOUR_MS if rnd.random() < 0.3 else rnd.uniform(1, 4) * DAY_MS
        submitted = order.delivered_ms + int(wait)
        if submitted >= config.end_ms:
            continue
        surveys += 1
        score = (
            4.6
            - 0.06 * min(order.late_hours, 48)
            - (1.5 if order.damaged else 0)
            - (1.2 if order.excursion else 0)
            + rnd.gauss(0, 0.6)
        )
        rating = min(5, max(1, round(score)))
        nps = min(10, max(0, round(2.2 * rating - 1 + rnd.gauss(0, 1))))
        if order.excursion:
            text = rnd.choice(WARM)
        elif order.damaged:
            text = rnd.choice(DAMAGED)
        elif order.late_hours > 2:
            text = rnd.choice(LATE)
        else:
            text = rnd.choice(PRAISE if rating >= 4 else NEUTRAL)
        if rnd.random() < PHI_COMMENT_SHARE:
            kinds, template = rnd.choice(PHI_SENTENCES)
            p = order.patient
            sentence = template.format(
                first=p.first_name, last=p.last_name, phone=p.phone, email=p.email
            )
            text = f"{text} {sentence}"
            for kind in kinds:
                counts[kind] += 1
        survey_id = f"SRV-{yymmdd(submitted)}-{surveys:05d}"
        payload = {
            "survey_id": survey_id,
            "order_id": order.order_id,
            "rating": rating,
            "nps": nps,
            "comment": text,
        }
        sink.emit("feedback.survey.submitted", "survey", submitted, survey_id, payload, order.trace)
    return FeedbackOutcome(counts["name"], counts["phone"], counts["email"])
