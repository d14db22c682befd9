"""Patient surveys a few days after delivery, with scores that follow the delivery experience.

Ratings and NPS drop with lateness, damage and warm cold-chain parcels, so models and KPIs
built on the lake have a real signal to find. About one survey in seven has no comment (the
field is left out, as the contract allows); the others carry free text written with a known
sentiment, and about one comment in five repeats the patient's own name, phone number or
email, exactly as people write them, so the ingest scrubber is tested on the real values of
`patient_pool(config)`.

Sentiment (ground truth `survey_sentiment`, simulate/truth.py): each survey's patient feels
POSITIVE, NEUTRAL or NEGATIVE, drawn from the rating (`SENTIMENT_BY_RATING`: mostly the
rating's mood, not always: a 4-star patient may still grumble). The comment is then written
in that sentiment about what happened (on time, late, damaged, warm): a first sentence from
`CORE[topic][sentiment]`, sometimes a second from `EXTRA[sentiment]`, sometimes odd Unicode
(curly quotes, an emoji, full-width punctuation). Most sentences say their sentiment in plain
words; some are deliberately hard for a lexicon (a style other than "plain"): sarcasm
("Great job, only two days late"), complaints in neutral words ("The ice packs had melted"),
and mixed sentences (a kind word beside the complaint). The truth records the style, so a
model's errors can be read by kind. Surveys without a comment are in the truth too
(`has_comment` false): the patient's mood was drawn, there is just no text to classify.

Random streams: the experience (survey or not, when, rating, NPS, mood, comment or not) comes
from the `feedback` stream, the wording (sentences, decorations, PHI sentences) from
`feedback-text`, so rewording comments never moves a rating. No other domain's stream is used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pharmaflow.simulate.clock import yymmdd
from pharmaflow.simulate.config import DAY_MS, HOUR_MS, SimConfig, streams
from pharmaflow.simulate.events import EventSink
from pharmaflow.simulate.pharmacy import DeliveredOrder
from pharmaflow.simulate.truth import SURVEY_SENTIMENT, Truth

SURVEY_SHARE = 0.25
PHI_COMMENT_SHARE = 0.2
NO_COMMENT_SHARE = 0.15  # surveys submitted with the comment box left empty
EXTRA_SHARE = 0.4  # comments with a second sentence
DECORATED_SHARE = 0.1  # comments with odd Unicode (curly quotes, emoji, full-width marks)

POSITIVE, NEUTRAL, NEGATIVE = "POSITIVE", "NEUTRAL", "NEGATIVE"
SENTIMENTS = (POSITIVE, NEUTRAL, NEGATIVE)
# P(sentiment | rating): the comment's mood follows the score, loosely.
SENTIMENT_BY_RATING: dict[int, tuple[float, float, float]] = {
    5: (0.75, 0.18, 0.07),
    4: (0.45, 0.37, 0.18),
    3: (0.12, 0.48, 0.40),
    2: (0.05, 0.25, 0.70),
    1: (0.03, 0.12, 0.85),
}

# Styles: "plain" says its sentiment in plain words; "sarcasm" uses praise words to
# complain; "implicit" states a complaint in words a lexicon reads as neutral; "mixed" puts
# words of the other polarity beside the sentiment or under a negation ("not a problem").
Sentence = tuple[str, str]  # (text, style)
CORE: dict[str, dict[str, tuple[Sentence, ...]]] = {
    "on_time": {
        POSITIVE: (
            ("Arrived on time and the packaging was excellent.", "plain"),
            ("Great service, the pharmacy team was very helpful.", "plain"),
            ("Easy refill and fast delivery, thank you.", "plain"),
            ("Delivery came early and the tracking updates were clear.", "plain"),
            ("Very happy with how my order was handled.", "plain"),
            ("LOVE how quick the refill was!!", "plain"),
            ("Not a single problem this time.", "mixed"),
            ("No complaints, it showed up when promised.", "mixed"),
            ("Despite the awful weather the courier made it, well done.", "mixed"),
        ),
        NEUTRAL: (
            ("Order arrived, nothing special to report.", "plain"),
            ("The parcel came on the date the tracking page gave.", "plain"),
            ("It arrived in the afternoon.", "plain"),
            ("Received the refill as expected.", "plain"),
            ("The parcel came, I signed, done.", "plain"),
            ("It was ok.", "plain"),
            ("Okay I guess.", "mixed"),
            ("Delivery was fine but the tracking updates were confusing.", "mixed"),
            ("No problems, no surprises.", "mixed"),
        ),
        NEGATIVE: (
            ("Arrived on time, but the pharmacy never answered my questions. Awful.", "plain"),
            ("The phone support was terrible and rude.", "plain"),
            ("Not impressed with the service at all.", "plain"),
            ("The leaflet was missing again, so annoying.", "plain"),
            ("I was on hold for forty minutes.", "implicit"),
            ("Nobody told me the refill had shipped.", "implicit"),
            ("Third time the refill was short by a week of doses.", "implicit"),
            ("I would not call this good service.", "mixed"),
            ("Wonderful people, but the delivery was a mess.", "mixed"),
            ("Great, the wrong leaflet again. Just great.", "sarcasm"),
        ),
    },
    "late": {
        POSITIVE: (
            ("A little late, but the team kept me updated and I was never worried.", "mixed"),
            ("Late by a few hours, no big deal, the service is still excellent.", "plain"),
            ("The delay was not a problem, thanks for the honest updates.", "mixed"),
            ("It came a day late but the pharmacist called ahead. Really appreciate it.", "plain"),
        ),
        NEUTRAL: (
            ("Took a little longer than I expected.", "plain"),
            ("The parcel came the day after the promised date.", "plain"),
            ("Arrived later than the tracking page said.", "plain"),
            ("Delivery was a day behind the estimate.", "plain"),
        ),
        NEGATIVE: (
            ("The package arrived late and nobody called me. Very frustrating.", "plain"),
            ("Delivery was a day late and I nearly missed a dose. Unacceptable.", "plain"),
            ("Late again. This is a terrible way to treat patients.", "plain"),
            ("Tracking said out for delivery all day and it came the next day.", "implicit"),
            ("Hardly the quick delivery you promised.", "mixed"),
            ("Great job, only two days late this time.", "sarcasm"),
            ("Perfect, just perfect. A day late.", "sarcasm"),
            ("Sure, waiting in all day is exactly how I wanted to spend my Friday.", "sarcasm"),
        ),
    },
    "damaged": {
        POSITIVE: (
            ("The box was a bit battered, but everything inside was perfect.", "mixed"),
            ("Carton dented, medicine fine, and the team replaced it quickly. Thank you!", "plain"),
            ("Slight damage to the box but great service as always.", "mixed"),
        ),
        NEUTRAL: (
            ("The carton had a dent but the contents were intact.", "plain"),
            ("One corner of the box was pushed in.", "plain"),
            ("Box arrived with a torn label.", "plain"),
        ),
        NEGATIVE: (
            ("The box was crushed when it arrived and the vial was broken. Awful.", "plain"),
            ("The carton was damaged on arrival, very disappointed.", "plain"),
            ("The box was squashed flat on the doorstep.", "implicit"),
            ("Lovely, a squashed box and a leaking bottle.", "sarcasm"),
        ),
    },
    "warm": {
        POSITIVE: (
            ("The ice packs were soft, but the pharmacist reassured me. Great care.", "mixed"),
            ("Cooler was a little warm, the replacement came quickly, thank you so much.", "plain"),
        ),
        NEUTRAL: (
            ("The cold pack was soft by the time I opened the box.", "plain"),
            ("The cooler felt like room temperature on arrival.", "plain"),
        ),
        NEGATIVE: (
            ("The cooler was warm on arrival and I am worried about the medicine.", "plain"),
            ("Warm medicine is useless. I am very upset.", "plain"),
            ("The ice packs had melted when the box arrived.", "implicit"),
            ("Oh wonderful, soup instead of ice packs.", "sarcasm"),
        ),
    },
}
EXTRA: dict[str, tuple[Sentence, ...]] = {
    POSITIVE: (
        ("Thank you!", "plain"),
        ("Keep up the good work.", "plain"),
        ("Would recommend to anyone.", "plain"),
        ("The courier was friendly too.", "plain"),
        ("Much better than my old pharmacy.", "plain"),
        ("Not bad at all, honestly.", "mixed"),
        ("Never had a problem with this pharmacy.", "mixed"),
        ("I am not unhappy with it.", "mixed"),
    ),
    NEUTRAL: (
        ("No other comments.", "plain"),
        ("Same as usual.", "plain"),
        ("The courier left it at the door.", "plain"),
        ("I ordered on Monday.", "plain"),
        ("It does the job.", "plain"),
        ("The app is fine I guess.", "mixed"),
        ("Not great, not terrible.", "mixed"),
    ),
    NEGATIVE: (
        ("Very disappointed.", "plain"),
        ("Not happy at all.", "plain"),
        ("Worst delivery so far.", "plain"),
        ("I will be changing pharmacies.", "implicit"),
        ("The delivery window was 8 to 6 again.", "implicit"),
        ("The driver was friendly, but that does not fix a missed dose.", "mixed"),
        ("Brilliant tracking, it said delivered while the box was still at the depot.", "sarcasm"),
        ("Thanks for nothing.", "sarcasm"),
    ),
}
EMOJI: dict[str, tuple[str, ...]] = {
    POSITIVE: ("\U0001f642", "\U0001f44d", "\U0001f60a"),  # slightly smiling, thumbs up, smiling
    NEUTRAL: ("\U0001f610",),  # neutral face
    NEGATIVE: ("\u2639", "\U0001f44e", "\U0001f621"),  # frowning, thumbs down, pouting
}
# How far a style is from plain wording (the truth keeps the hardest of a comment's sentences).
_STYLE_RANK = {"plain": 0, "mixed": 1, "implicit": 2, "sarcasm": 3}

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


def topic_of(order: DeliveredOrder) -> str:
    """What the comment is about: the worst thing that happened to the parcel."""
    if order.excursion:
        return "warm"
    if order.damaged:
        return "damaged"
    if order.late_hours > 2:
        return "late"
    return "on_time"


def _decorate(text: str, sentiment: str, words: random.Random) -> str:
    """One kind of odd Unicode people type: curly apostrophes, full-width punctuation or an
    emoji (the emoji when the text has nothing for the other two to change)."""
    kind = words.randrange(3)
    if kind == 0 and "'" in text:
        return text.replace("'", "\u2019")
    if kind == 1 and ("!" in text or "," in text):
        return text.replace("!", "\uff01").replace(",", "\uff0c")
    return f"{text} {words.choice(EMOJI[sentiment])}"


def compose(topic: str, sentiment: str, words: random.Random) -> tuple[str, str]:
    """A comment about `topic` written in `sentiment`, and its hardest style."""
    text, style = words.choice(CORE[topic][sentiment])
    if words.random() < EXTRA_SHARE:
        extra, extra_style = words.choice(EXTRA[sentiment])
        text = f"{text} {extra}"
        style = max(style, extra_style, key=_STYLE_RANK.__getitem__)
    if words.random() < DECORATED_SHARE:
        text = _decorate(text, sentiment, words)
    return text, style


def run(
    config: SimConfig,
    sink: EventSink,
    delivered: list[DeliveredOrder],
    truth: Truth | None = None,
) -> FeedbackOutcome:
    """Emit surveys for about a quarter of delivered orders, if submitted inside the window;
    with `truth`, record each survey's sentiment (table `survey_sentiment`)."""
    rnd = streams(config, "feedback").py
    words = streams(config, "feedback-text").py
    counts = {"name": 0, "phone": 0, "email": 0}
    surveys = 0
    rows: dict[str, list[object]] = {
        "survey_id": [],
        "sentiment": [],
        "has_comment": [],
        "topic": [],
        "style": [],
    }
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
        sentiment = rnd.choices(SENTIMENTS, weights=SENTIMENT_BY_RATING[rating])[0]
        has_comment = rnd.random() >= NO_COMMENT_SHARE
        topic = topic_of(order)
        survey_id = f"SRV-{yymmdd(submitted)}-{surveys:05d}"
        payload: dict[str, object] = {
            "survey_id": survey_id,
            "order_id": order.order_id,
            "rating": rating,
            "nps": nps,
        }
        style = ""
        if has_comment:
            text, style = compose(topic, sentiment, words)
            if words.random() < PHI_COMMENT_SHARE:
                kinds, template = words.choice(PHI_SENTENCES)
                p = order.patient
                sentence = template.format(
                    first=p.first_name, last=p.last_name, phone=p.phone, email=p.email
                )
                text = f"{text} {sentence}"
                for kind in kinds:
                    counts[kind] += 1
            payload["comment"] = text
        sink.emit("feedback.survey.submitted", "survey", submitted, survey_id, payload, order.trace)
        for column, value in zip(
            rows, (survey_id, sentiment, has_comment, topic, style), strict=True
        ):
            rows[column].append(value)
    if truth is not None:
        truth.add(SURVEY_SENTIMENT, **rows)  # type: ignore[arg-type]
    return FeedbackOutcome(counts["name"], counts["phone"], counts["email"])
