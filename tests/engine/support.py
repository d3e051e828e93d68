"""Helpers for the engine's tests: rulesets from inline YAML, events, sample webhooks."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.engine import Ruleset, evaluate, load_ruleset_from_texts
from worker.engine.model import ConversationState, Decision, Event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "rules"
NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)  # a Tuesday


def ruleset(text: str, name: str = "rules.yaml") -> Ruleset:
    """A ruleset of one file holding `text` (dedented)."""
    return load_ruleset_from_texts({name: textwrap.dedent(text)})


def make_event(
    name: str = "message.received",
    data: dict[str, Any] | None = None,
    *,
    timestamp: datetime | None = None,
) -> Event:
    """An event as the receiver would build it from an envelope with this `data`."""
    data = (
        {"conversation_id": 1042, "from": "966500000001", "type": "text"} if data is None else data
    )
    payload: dict[str, Any] = {"event": name, "data": data}
    if timestamp is not None:
        payload["timestamp"] = timestamp.isoformat()
    return event_from(payload)


def event_from(payload: dict[str, Any]) -> Event:
    """The engine's Event for a decoded webhook envelope."""
    data = payload.get("data")
    conversation = data.get("conversation_id") if isinstance(data, dict) else None
    stamp = payload.get("timestamp")
    return Event(
        name=str(payload.get("event", "")),
        payload=payload,
        timestamp=datetime.fromisoformat(stamp) if isinstance(stamp, str) else None,
        conversation_id=None if conversation is None else str(conversation),
    )


def webhook(name: str) -> Event:
    """The sample webhook tests/fixtures/webhooks/<name>.json as an Event."""
    payload = json.loads((FIXTURES / "webhooks" / f"{name}.json").read_text(encoding="utf-8"))
    return event_from(payload)


def decide(
    rules: Ruleset,
    event: Event,
    state: ConversationState | None = None,
    *,
    now: datetime = NOW,
) -> Decision:
    return evaluate(rules, event, state or ConversationState(), now=now)


def statuses(decision: Decision) -> dict[str, str]:
    """Rule name -> outcome status."""
    return {o.rule: o.status for o in decision.outcomes}


def planned(decision: Decision) -> list[tuple[str, str | None]]:
    """(kind, skip_reason) of each planned action, in order."""
    return [(a.kind, a.skip_reason) for a in decision.actions]
