"""Strict parsing of webhook bodies: hostile input is a 400, never an exception."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from tests.hostile_bodies import HOSTILE_BODIES, HostileBody
from worker.engine.envelope import MAX_DEPTH, Handshake, parse_webhook
from worker.engine.model import Event
from worker.errors import PayloadError


def event(raw: bytes) -> Event:
    parsed = parse_webhook(raw)
    assert isinstance(parsed, Event)
    return parsed


def test_message_received_becomes_an_engine_event() -> None:
    raw = (
        b'{"event":"message.received","timestamp":"2024-01-20T10:30:00Z",'
        b'"data":{"conversation_id":1,"body":"hi"}}'
    )
    parsed = event(raw)
    assert parsed.name == "message.received"
    assert parsed.timestamp == datetime(2024, 1, 20, 10, 30, tzinfo=UTC)
    assert parsed.conversation_id == "1"
    assert parsed.payload["data"] == {"conversation_id": 1, "body": "hi"}


def test_string_conversation_id_is_kept() -> None:
    assert event(b'{"event":"x","data":{"conversation_id":"c-9"}}').conversation_id == "c-9"


@pytest.mark.parametrize(
    "data", [b"null", b"[]", b'{"conversation_id":true}', b'{"conversation_id":1.5}', b'{"a":1}']
)
def test_no_usable_conversation_id_gives_none(data: bytes) -> None:
    assert event(b'{"event":"x","data":' + data + b"}").conversation_id is None


def test_unknown_event_types_are_accepted() -> None:
    assert event(b'{"event":"order.updated","data":{}}').name == "order.updated"


def test_naive_timestamp_is_taken_as_utc() -> None:
    parsed = event(b'{"event":"x","timestamp":"2024-01-20T10:30:00"}')
    assert parsed.timestamp == datetime(2024, 1, 20, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize("timestamp", [b'"yesterday"', b"1704124800", b"null", b'""'])
def test_unreadable_timestamp_gives_none(timestamp: bytes) -> None:
    assert event(b'{"event":"x","timestamp":' + timestamp + b"}").timestamp is None


def test_handshake() -> None:
    parsed = parse_webhook(b'{"type":"verification","challenge":"random_string_here"}')
    assert parsed == Handshake(type="verification", challenge="random_string_here")


def test_escaped_surrogate_pair_is_fine() -> None:
    assert event(b'{"event":"\\ud83d\\ude00"}').name == "\U0001f600"


def test_nesting_up_to_the_limit_is_fine() -> None:
    nested = b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1)
    assert event(b'{"event":"x","deep":' + nested + b"}").name == "x"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert event(b'{"event":"x","text":"' + b"[{" * 5000 + b'"}').name == "x"


HOSTILE = {
    "not utf-8": b'{"event":"\xff"}',
    "latin-1": '{"event":"café"}'.encode("latin-1"),
    "byte order mark": b'\xef\xbb\xbf{"event":"x"}',
    "empty": b"",
    "not json": b"hello",
    "truncated": b'{"event":"x"',
    "trailing data": b'{"event":"x"} {}',
    "array": b'[{"event":"x"}]',
    "string": b'"event"',
    "number": b"1",
    "null": b"null",
    "no event": b'{"data":{}}',
    "event null": b'{"event":null}',
    "event number": b'{"event":1}',
    "event object": b'{"event":{"name":"x"}}',
    "nested arrays 5000 deep": b'{"event":"x","d":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "nested objects 5000 deep": b'{"event":"x","d":' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
    "unclosed nesting 100000 deep": b"[" * 100_000,
    "integer 5000 digits": b'{"event":"x","n":' + b"7" * 5000 + b"}",
    "float overflowing to infinity": b'{"event":"x","n":1e99999}',
    "NaN": b'{"event":"x","n":NaN}',
    "Infinity": b'{"event":"x","n":Infinity}',
    "-Infinity": b'{"event":"x","n":-Infinity}',
    "lone high surrogate": b'{"event":"x","t":"\\ud800"}',
    "lone low surrogate in a key": b'{"event":"x","\\udc00":1}',
    "duplicate key": b'{"event":"x","event":"y"}',
    "duplicate nested key": b'{"event":"x","data":{"a":1,"a":2}}',
    "handshake without challenge": b'{"type":"verification"}',
    "handshake with number challenge": b'{"type":"verification","challenge":1}',
    "conversation id too long": b'{"event":"x","data":{"conversation_id":"' + b"c" * 500 + b'"}}',
}


@pytest.mark.parametrize("raw", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_body_is_refused_with_400(raw: bytes) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_webhook(raw)
    assert caught.value.status == 400


def test_nesting_one_level_over_the_limit_is_refused() -> None:
    nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    with pytest.raises(PayloadError, match="nested deeper"):
        parse_webhook(b'{"event":"x","deep":' + nested + b"}")


def test_many_shallow_containers_are_not_deep() -> None:
    wide = b"[" + b",".join([b'{"a":[1]}'] * (MAX_DEPTH * 4)) + b"]"
    assert event(b'{"event":"x","items":' + wide + b"}").name == "x"


@pytest.mark.parametrize("hostile", HOSTILE_BODIES, ids=[h.name for h in HOSTILE_BODIES])
def test_costly_bodies_near_the_size_limit_are_decided_within_the_contracts_two_seconds(
    hostile: HostileBody,
) -> None:
    # CPU time of this process, not wall time: another process busy on the machine must not
    # fail it, while a parser that backtracks (minutes on such bodies) always does. The
    # receiver's answers are timed end to end in tests/integration/test_hostile.py.
    started = time.process_time()
    try:
        outcome = 202 if isinstance(parse_webhook(hostile.body), Event) else 200
    except PayloadError as refusal:
        outcome = refusal.status
    spent = time.process_time() - started
    assert outcome == hostile.signed_status
    assert spent < 2.0  # interface.md, "Hostile cost": each answered within 2 s
