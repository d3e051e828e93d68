"""The dead-letter queue: store, list newest first, take once, never keep a secret."""

from __future__ import annotations

import re
from dataclasses import replace

import fakeredis
import pytest

from worker.delivery.dlq import (
    ANSWER_LIMIT,
    Attempt,
    DeadAction,
    DeadLetter,
    DeadLetterQueue,
    DroppedLetter,
    redact,
)

NOW = 1_700_000_000.0


def letter(
    created_at: float = NOW, reason: str = "rejected: 400", attempts: list[Attempt] | None = None
) -> DeadLetter:
    return DeadLetter(
        created_at=created_at,
        delivery_id="0123456789abcdef0123456789abcdef",
        conversation="42",
        action=DeadAction(
            kind="open_ticket", params={"phone_number_id": "123"}, rule="r1", index=0
        ),
        idempotency_key="0123456789abcdef0123456789abcdef:r1#0",
        reason=reason,
        attempts=attempts
        if attempts is not None
        else [Attempt(at=created_at - 1, status=400, answer='{"error":"invalid"}')],
    )


@pytest.fixture
def dlq() -> DeadLetterQueue:
    return DeadLetterQueue(
        fakeredis.FakeRedis(), known_secrets=["hunter2-secret"], clock=lambda: NOW
    )


def test_add_then_get_round_trips_with_a_short_typable_id(dlq: DeadLetterQueue) -> None:
    entry = letter()
    entry_id = dlq.add(entry)
    assert re.fullmatch(r"[0-9a-f]{12}", entry_id)
    stored = dlq.get(entry_id)
    assert stored == replace(entry, id=entry_id)
    assert dlq.count() == 1
    assert dlq.get("000000000000") is None


def test_list_is_newest_first_and_limited(dlq: DeadLetterQueue) -> None:
    ids = [dlq.add(letter(created_at=NOW + i)) for i in range(5)]
    assert [e.id for e in dlq.list()] == ids[::-1]
    assert [e.id for e in dlq.list(limit=2)] == ids[:2:-1][:2]
    assert DeadLetterQueue(fakeredis.FakeRedis()).list() == []


def test_past_the_maximum_the_oldest_letters_go_first_each_reported() -> None:
    dropped: list[DroppedLetter] = []
    dlq = DeadLetterQueue(
        fakeredis.FakeRedis(), max_letters=3, on_drop=dropped.append, clock=lambda: NOW
    )
    ids = [dlq.add(letter(created_at=NOW - 10 + i)) for i in range(5)]
    assert dlq.count() == 3
    assert [e.id for e in dlq.list()] == ids[:1:-1]
    assert dropped == [
        DroppedLetter(ids[0], "max", "42", "open_ticket"),
        DroppedLetter(ids[1], "max", "42", "open_ticket"),
    ]


def test_letters_older_than_the_retention_are_dropped_by_a_trim() -> None:
    now = [NOW]
    dropped: list[DroppedLetter] = []
    dlq = DeadLetterQueue(
        fakeredis.FakeRedis(), retention=3600, on_drop=dropped.append, clock=lambda: now[0]
    )
    old, young = dlq.add(letter(created_at=NOW - 1800)), dlq.add(letter(created_at=NOW))
    assert dlq.trim() == []
    now[0] = NOW + 1801
    assert [d.id for d in dlq.trim()] == [old]
    assert [d.reason for d in dropped] == ["retention"]
    assert [e.id for e in dlq.list()] == [young]
    assert dlq.get(old) is None


def test_take_removes_once(dlq: DeadLetterQueue) -> None:
    entry_id = dlq.add(letter())
    taken = dlq.take(entry_id)
    assert taken is not None
    assert taken.id == entry_id
    assert dlq.take(entry_id) is None
    assert dlq.count() == 0
    assert dlq.list() == []


def test_drop(dlq: DeadLetterQueue) -> None:
    entry_id = dlq.add(letter())
    assert dlq.drop(entry_id)
    assert not dlq.drop(entry_id)
    assert dlq.get(entry_id) is None


def test_stored_answers_hold_no_secret(dlq: DeadLetterQueue) -> None:
    answer = (
        "POST /wechat/chat/events/1 X-Awal-Signature-256: sha256=" + "ab" * 32 + "\n"
        "x-api-key: hw_live_abcdef123456\nAuthorization: Bearer tok.en-value\n"
        'body {"api_key": "k-123", "echo": "hunter2-secret"}'
    )
    entry_id = dlq.add(
        letter(reason="401 with Bearer xyz", attempts=[Attempt(at=NOW, status=401, answer=answer)])
    )
    stored = dlq.get(entry_id)
    assert stored is not None
    text = stored.attempts[0].answer + stored.reason
    for secret in ["ab" * 32, "hw_live_abcdef123456", "tok.en-value", "k-123", "hunter2", "xyz"]:
        assert secret not in text
    assert "/wechat/chat/events/1" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("X-Awal-Signature-256: sha256=" + "0f" * 32, "X-Awal-Signature-256: [redacted]"),
        ("sig sha256=" + "0f" * 32, "sig sha256=[redacted]"),
        ("Authorization: Bearer abc", "Authorization: [redacted] [redacted]"),
        ("bearer abc.def", "bearer [redacted]"),
        ('{"x-api-key":"abc"}', '{"x-api-key":"[redacted]"}'),
        ("?api_key=abc&x=1", "?api_key=[redacted]&x=1"),
        ("HMAC " + "a1" * 20, "HMAC [redacted]"),
        ('{"error":"authentication_failed","message":"Invalid HMAC signature"}', None),
        ("delivery 0123456789abcdef0123456789abcdef failed", None),
    ],
)
def test_redact_table(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


def test_answers_are_truncated() -> None:
    long = "x" * (ANSWER_LIMIT + 500)
    assert redact(long) == "x" * ANSWER_LIMIT + "…"
