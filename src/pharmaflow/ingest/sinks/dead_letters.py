"""Rejected records back to the stream they came from: `<topic>.dlq`, the reason in headers.

The values are already sealed by the steps (`EventSteps.dead_letters`), exactly like the
quarantine's `raw_encrypted`; `value_protection` says how, so a reader knows the bytes are no
event. A key that is not a plain identifier may itself be patient data: it is withheld
(`key_withheld`). Letters go out before the batch commits and `flush` waits for every delivery,
so a crash in between re-sends them on replay (at least once; each carries its source
topic/partition/offset and batch id to tell repeats apart).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import KafkaError, Message, Producer

from pharmaflow.broker.topics import dead_letter_topic
from pharmaflow.errors import PharmaflowError
from pharmaflow.ingest.phi.identifiers import identifier_bytes
from pharmaflow.ingest.phi.vault import SEALED_REJECT

if TYPE_CHECKING:
    from pharmaflow.ingest.landing import Landing
    from pharmaflow.ingest.sources.base import RawBatch

_FLUSH_SECONDS = 5.0


class DeadLetterSink:
    name = "dead_letters"

    def __init__(self, producer: Producer, waiting: Callable[[], None]) -> None:
        """`producer`: the source's own (it closes it); `waiting`: called each time delivery
        takes longer than a few seconds (the source warns, once per outage)."""
        self.producer = producer
        self.waiting = waiting
        self._errors: list[str] = []

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._errors.append(error.str())

    def write(self, batch: RawBatch, landing: Landing) -> list[Path]:
        producer = self.producer
        for letter in landing.dead_letters or ():
            key = identifier_bytes(letter.key)
            withheld = [("key_withheld", b"true")] if key is None and letter.key else []
            producer.produce(
                dead_letter_topic(letter.topic),
                value=letter.value,
                key=key,
                headers=[
                    ("value_protection", SEALED_REJECT.encode()),
                    *withheld,
                    ("reason_code", letter.reason_code.encode()),
                    ("reason_field", (letter.reason_field or "").encode()),
                    ("reason_detail", letter.reason_detail.encode()),
                    ("source_topic", letter.topic.encode()),
                    ("source_partition", str(letter.partition).encode()),
                    ("source_offset", str(letter.offset).encode()),
                    ("batch_id", batch.batch_id.encode()),
                ],
                on_delivery=self._delivered,
            )
            producer.poll(0)
        return []

    def flush(self) -> None:
        while self.producer.flush(_FLUSH_SECONDS):
            self.waiting()
        if self._errors:
            errors, self._errors = self._errors, []
            raise PharmaflowError(f"dead letters not delivered: {errors[0]}")

    def close(self) -> None:
        """The producer is the source's: it flushes and drops it on close."""
