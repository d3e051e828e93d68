"""Completion records: atomic with the conversation state, once only."""

from __future__ import annotations

import fakeredis
import pytest

from worker.delivery.idempotency import DONE_TTL, IdempotencyStore, idempotency_key

KEY = idempotency_key("0123456789abcdef0123456789abcdef", "open-on-keyword", 0)


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def store(r: fakeredis.FakeRedis) -> IdempotencyStore:
    return IdempotencyStore(r)


def test_key_names_delivery_rule_and_index(store: IdempotencyStore) -> None:
    assert KEY == "0123456789abcdef0123456789abcdef:open-on-keyword#0"
    assert store.redis_key(KEY) == "tw:done:0123456789abcdef0123456789abcdef:open-on-keyword#0"


def test_not_done_until_completed(store: IdempotencyStore) -> None:
    assert not store.is_done(KEY)
    assert store.outcome(KEY) is None
    assert store.complete(KEY, {"status": "opened", "ticket_id": 123})
    assert store.is_done(KEY)
    assert store.outcome(KEY) == {"status": "opened", "ticket_id": 123}


def test_a_second_completion_is_refused_and_writes_nothing(
    r: fakeredis.FakeRedis, store: IdempotencyStore
) -> None:
    assert store.complete(KEY, {"status": "opened"}, "tw:state:42", '{"open": true}')
    assert not store.complete(KEY, {"status": "failed"}, "tw:state:42", '{"open": false}')
    assert store.outcome(KEY) == {"status": "opened"}
    assert r.get("tw:state:42") == b'{"open": true}'


def test_state_is_written_with_the_record_and_keeps_its_ttl(
    r: fakeredis.FakeRedis, store: IdempotencyStore
) -> None:
    r.set("tw:state:42", "{}", ex=1000)
    assert store.complete(KEY, {}, "tw:state:42", '{"open": true}')
    assert r.get("tw:state:42") == b'{"open": true}'
    assert 0 < r.ttl("tw:state:42") <= 1000


def test_records_expire_after_thirty_days(r: fakeredis.FakeRedis, store: IdempotencyStore) -> None:
    store.complete(KEY, {})
    assert DONE_TTL - 5 < r.ttl(store.redis_key(KEY)) <= DONE_TTL == 30 * 86400


def test_state_key_and_json_go_together(store: IdempotencyStore) -> None:
    with pytest.raises(ValueError, match="together"):
        store.complete(KEY, {}, "tw:state:42")
    assert not store.is_done(KEY)
