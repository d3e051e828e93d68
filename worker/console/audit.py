"""Who replayed or dropped a dead letter, when and why: `tw:dlq:audit:{letter}`.

A replay or drop takes the letter out of the queue, so the record keeps a copy of the letter
with its events (at most AUDIT_EVENTS); it expires DLQ_RETENTION after the last one.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from worker.delivery.dlq import DeadLetter
from worker.storage import keys

AUDIT_EVENTS = 20
NOTE_LIMIT = 500


@dataclass(frozen=True)
class AuditEvent:
    """One operator action on a letter: "replay" or "drop", by a role, and whether it took
    effect (False: someone replayed or dropped it first)."""

    op: str
    role: str
    at: float
    note: str
    done: bool


def record(
    client: redis.Redis,
    letter: DeadLetter,
    event: AuditEvent,
    *,
    retention: int,
) -> None:
    """Add `event` to the letter's audit record (created with a copy of the letter)."""
    key = keys.dlq_audit(letter.id)
    raw = client.get(key)
    data: dict[str, Any] = (
        json.loads(raw) if raw else {"letter": json.loads(letter.to_json()), "events": []}
    )
    data["events"] = [*data["events"], event.__dict__][-AUDIT_EVENTS:]
    client.set(key, json.dumps(data, ensure_ascii=False), ex=retention)


def read(client: redis.Redis, letter_id: str) -> tuple[DeadLetter | None, list[AuditEvent]]:
    """The letter as it was when first replayed or dropped, and every event; (None, [])."""
    raw = client.get(keys.dlq_audit(letter_id))
    if raw is None:
        return None, []
    data = json.loads(raw)
    letter = DeadLetter.from_json(json.dumps(data["letter"]))
    return letter, [AuditEvent(**e) for e in data["events"]]


def event(op: str, role: str, note: str, done: bool) -> AuditEvent:
    return AuditEvent(op, role, time.time(), note.strip()[:NOTE_LIMIT], done)
