"""Rule outcomes of a decision stored compact, worked out again on read with the ruleset of
its version (kept in `tw:rules:history`)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import redis
import redis.asyncio

from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event
from worker.storage import keys
from worker.storage.decision_log import describe_delivery, recent_decisions, render_delivery
from worker.storage.explanations import RulesetArchive, explain_decision
from worker.storage.records import DeliveryRecord, parse_record, stored_form
from worker.storage.rules_publication import PublicationStore, ruleset_files

RULES = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when: {data.body: {contains: help}, data.type: text}
    then: [open_ticket]
  - name: note
    on: message.received
    then: [{helpwave.add_comment: {text: "said {{ data.body }}"}}]
  - name: close-on-update
    on: conversation.updated
    then: [close_ticket]
"""
TEXTS = {"rules.yaml": RULES}
RAW = json.dumps(
    {
        "event": "message.received",
        "timestamp": "2026-01-01T09:00:00Z",
        "data": {"conversation_id": 7, "type": "text", "body": "thanks"},
    }
).encode()
RECEIVED = datetime(2026, 1, 1, 9, 0, 1, tzinfo=UTC)


def stored_record(*, old_form: bool = False, raw: bytes = RAW) -> DeliveryRecord:
    """A record as the worker stores it (in the new form, or as older versions did)."""
    ruleset = load_ruleset_from_texts(TEXTS)
    event = parse_webhook(RAW)
    assert isinstance(event, Event)
    before = ConversationState()
    decision = evaluate(ruleset, event, before, now=RECEIVED)
    form = decision.to_json(leave_out=frozenset({"not_for_event"})) if old_form else None
    fields = {
        b"raw": raw,
        b"received_at": repr(RECEIVED.timestamp()).encode(),
        b"conversation": b"7",
        b"decision": json.dumps(form or stored_form(decision)).encode(),
        b"state_before": json.dumps(before.to_json()).encode(),
    }
    return parse_record("d1", fields)


def reasons(described: dict[str, object]) -> dict[str, tuple[str, str]]:
    rules = described["rules"]
    assert isinstance(rules, list)
    return {r["rule"]: (r["status"], r["reason"]) for r in rules}


def test_a_compact_record_is_explained_on_read_with_the_first_failing_condition() -> None:
    ruleset = load_ruleset_from_texts(TEXTS)
    described = describe_delivery(stored_record(), {ruleset.version: ruleset}.get)
    assert described["explained"] == "on read"
    assert described["matched"] == ["note"]
    assert reasons(described) == {
        "open-on-help": ("not_matched", "data.body contains 'help': saw 'thanks'"),
        "note": ("matched", "every condition held"),
        "close-on-update": ("not_for_event", reasons(described)["close-on-update"][1]),
    }


def test_an_old_record_reads_with_its_stored_outcomes() -> None:
    described = describe_delivery(stored_record(old_form=True))
    assert described["explained"] == "stored"
    assert reasons(described)["open-on-help"] == (
        "not_matched",
        "data.body contains 'help': saw 'thanks'",
    )
    assert "close-on-update" not in reasons(described)  # not listening: left out, as before


def test_without_its_ruleset_only_the_matched_rules_are_shown() -> None:
    described = describe_delivery(stored_record())
    assert described["explained"] == "unavailable"
    assert list(reasons(described)) == ["note"]
    assert "decided message.received" in render_delivery(described)


def test_a_quiet_record_whose_body_was_dropped_is_explained_from_its_event_name() -> None:
    ruleset = load_ruleset_from_texts(TEXTS)
    status = Event("message.status.updated", {"event": "message.status.updated"}, None, None)
    decision = evaluate(ruleset, status, ConversationState(), now=RECEIVED)
    fields = {
        b"received_at": repr(RECEIVED.timestamp()).encode(),
        b"decision": json.dumps(stored_form(decision)).encode(),
    }
    outcomes, how = explain_decision(parse_record("d2", fields), ruleset)
    assert how == "on read"
    assert {o.status for o in outcomes} == {"not_for_event"}


def test_accepted_rulesets_are_kept_by_version_up_to_the_limit(redis_client: redis.Redis) -> None:
    publications = PublicationStore(redis_client)
    seq = publications.publish("v-first", {"a.yaml": "first"}, 0)
    for n in range(keys.RULES_HISTORY_LIMIT):
        seq = publications.publish(f"v{n}", {"a.yaml": f"text {n}"}, seq)
    assert publications.publish(f"v{n}", {"a.yaml": f"text {n}"}, seq) == seq  # current
    assert redis_client.hlen(keys.RULES_HISTORY) == keys.RULES_HISTORY_LIMIT
    assert redis_client.zcard(keys.RULES_HISTORY_ORDER) == keys.RULES_HISTORY_LIMIT
    assert ruleset_files(redis_client, "v-first") is None
    assert ruleset_files(redis_client, "v0") == {"a.yaml": "text 0"}
    redis_client.delete(keys.RULES_HISTORY)  # kept before history existed: the current one
    assert ruleset_files(redis_client, f"v{n}") == {"a.yaml": f"text {n}"}


def test_the_archive_loads_a_published_version_once(redis_client: redis.Redis) -> None:
    ruleset = load_ruleset_from_texts(TEXTS)
    PublicationStore(redis_client).publish(ruleset.version, TEXTS, 0)
    archive = RulesetArchive(redis_client)
    found = archive.get(ruleset.version)
    assert found is not None
    assert found.version == ruleset.version
    assert archive.get(ruleset.version) is found
    assert archive.get("not-kept") is None
    described = describe_delivery(stored_record(), archive.get)
    assert reasons(described)["open-on-help"][1] == "data.body contains 'help': saw 'thanks'"


def test_get_decisions_explains_records_on_read(
    redis_client: redis.Redis, redis_server: object
) -> None:
    ruleset = load_ruleset_from_texts(TEXTS)
    PublicationStore(redis_client).publish(ruleset.version, TEXTS, 0)
    record = stored_record()
    fields: dict[str, bytes | str] = {
        "raw": RAW,
        "received_at": repr(RECEIVED.timestamp()),
        "conversation": "7",
        "decision": json.dumps(stored_form(record.decision)) if record.decision else "",
        "state_before": "{}",
    }
    for name, value in fields.items():
        redis_client.hset(keys.delivery("d1"), name, value)
    redis_client.rpush(keys.conversation_log("7"), "d1")
    url = redis_client.connection_pool.connection_kwargs
    client = redis.asyncio.Redis(host=url["host"], port=url["port"])

    async def read() -> list[dict[str, object]]:
        try:
            return await recent_decisions(client, conversation="7", limit=10)
        finally:
            await client.aclose()

    [described] = asyncio.run(read())
    assert described["explained"] == "on read"
    assert reasons(described)["open-on-help"][1] == "data.body contains 'help': saw 'thanks'"
