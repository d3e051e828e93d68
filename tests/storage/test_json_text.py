"""`json_text` joins the stored texts from cached fragments: byte for byte what encoding the
same data as dicts with the one reused encoder gives (the way `records` encoded them before),
on the bench's generated 200-rule ruleset and on the shipped example rules, twice over (the
second time from the fragments cached the first time)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from operator import attrgetter
from pathlib import Path
from typing import Any

import pytest

from bench.engine import NOW, rule_texts, sample_events
from worker.engine import Ruleset, evaluate, load_ruleset, load_ruleset_from_texts
from worker.engine.decision import Decision, wait_changes_json
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event, Wait
from worker.storage import json_text
from worker.storage.json_text import encode, state_text
from worker.storage.records import stored_texts

RULES = Path(__file__).resolve().parent.parent.parent / "rules"


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_reference = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False, default=_plain
).encode
_fields = attrgetter("rule", "index", "kind", "params", "skip_reason")


def reference_texts(decision: Decision) -> tuple[str, str]:
    """`records.stored_texts` as it was before `json_text`: dicts, then the encoder."""
    after = _reference(decision.state_after.to_json())
    assert decision.decided_at is not None
    data: dict[str, Any] = {
        "ruleset_version": decision.ruleset_version,
        "event": decision.event,
        "conversation_id": decision.conversation_id,
        "decided_at": decision.decided_at.timestamp(),
        "matched": decision.matched_rules,
        "actions": list(map(_fields, decision.actions)),
    }
    if decision.wait_changes:
        data["wait_changes"] = wait_changes_json(decision.wait_changes)
    return _reference(data)[:-1] + ',"state_after":' + after + "}", after


BERLIN = timezone(timedelta(hours=2))
STATES = (
    ConversationState(),
    ConversationState(ticket_open=True),
    ConversationState(helpwave_ticket_id="hw-42"),
    ConversationState(ticket_open=True, helpwave_ticket_id='é"\\\n✓', helpwave_ticket_planned=True),
    ConversationState(helpwave_ticket_planned=True, last_customer_message=NOW - timedelta(hours=1)),
    ConversationState(last_customer_message=datetime(2024, 5, 14, 11, 0, 0, 123456, BERLIN)),
    ConversationState(cooldowns={"r0-04": NOW + timedelta(minutes=5)}),
    ConversationState(waits={"w": Wait("w", NOW + timedelta(hours=1), "abc", True, ({"a": 1},))}),
)


def _assert_same(ruleset: Ruleset, events: list[Event]) -> int:
    checked = 0
    for _ in range(2):  # the second time, from cached fragments
        for event in events:
            for state in STATES:
                decision = evaluate(ruleset, event, state, now=NOW)
                assert stored_texts(decision) == reference_texts(decision)
                checked += len(decision.actions)
    return checked


def test_the_bench_ruleset_stores_the_same_bytes() -> None:
    ruleset = load_ruleset_from_texts(rule_texts()[0])
    events = [event for event, _ in sample_events(200)]
    events.append(Event("message.received", {"data": {"body": "w1 ünïcødé ✓ \x00"}}, None, None))
    assert _assert_same(ruleset, events) > 1000


def test_the_shipped_rules_store_the_same_bytes() -> None:
    ruleset = load_ruleset(RULES)
    events = []
    for path in sorted((RULES / "tests" / "events").glob("*.json")):
        event = parse_webhook(path.read_bytes())
        assert isinstance(event, Event)
        events.append(event)
        events.append(Event(event.name, event.payload, event.timestamp, None))
    assert _assert_same(ruleset, events) > 0


@pytest.mark.parametrize("state", STATES)
def test_a_state_is_written_as_the_encoder_writes_it(state: ConversationState) -> None:
    assert state_text(state) == _reference(state.to_json())


def test_a_state_of_unexpected_types_is_encoded_from_its_dict() -> None:
    odd = ConversationState(ticket_open=1, helpwave_ticket_id=7)  # type: ignore[arg-type]
    assert state_text(odd) == _reference(odd.to_json()) == encode(odd.to_json())
    assert '"ticket_open":1' in state_text(odd)


def test_encode_is_the_encoder() -> None:
    data = {"a": [1, 2.5, float("inf"), None, True, "é✓"], "b": {"c": ()}, "d": "x"}
    assert encode(data) == _reference(data)
    assert encode("é\n") == _reference("é\n")
    with pytest.raises(TypeError):
        encode({"when": datetime(2024, 1, 1, tzinfo=UTC)})


def test_the_same_bytes_when_the_caches_start_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_text, "CACHED", 2)
    ruleset = load_ruleset_from_texts(rule_texts()[0])
    assert _assert_same(ruleset, [event for event, _ in sample_events(40, seed=3)]) > 100
