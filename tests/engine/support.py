"""Helpers for the engine's tests: rulesets from inline YAML, events, sample webhooks."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from worker.engine import Rule, Ruleset, evaluate, load_ruleset_from_texts
from worker.engine.checks import Context
from worker.engine.decision import Decision, RuleOutcome, WaitChange
from worker.engine.envelope import excerpt
from worker.engine.model import ConversationState, Event, PlannedAction, Wait

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


def reference_decision(
    rules: Ruleset, event: Event, state: ConversationState, *, now: datetime
) -> Decision:
    """The decision as the engine made it before it was compiled, built eagerly.

    Every listening rule's explaining check, in order; every action planned one at a time
    against a projected state, its skips written out here as rules.md states them (not read
    from `worker.engine.planning`); waits (rules.md "Time") restarted, cancelled and
    scheduled as rules.md states it, written out here too. `evaluate` must give an equal
    decision.
    """
    now = _aware(now)
    moment = now if event.timestamp is None else _aware(event.timestamp)
    last = state.last_customer_message
    session = event.name == "message.received" or (
        last is not None and now - _aware(last) < timedelta(hours=24)
    )
    context = Context(event.payload, state.ticket_open, moment, session)
    cooldowns = {n: _aware(u) for n, u in state.cooldowns.items() if _aware(u) > now}
    projected = _Projected(
        state.ticket_open, state.helpwave_ticket_id, state.helpwave_ticket_planned
    )
    modes = {f.name: f.mode for f in rules.rule_files}
    outcomes: list[RuleOutcome] = []
    actions: list[PlannedAction] = []
    scheduled: dict[str, datetime | None] = {}
    stopped_by: str | None = None
    first_matched: dict[str, str] = {}

    def outcome(rule: Rule, status: Any, reason: str, failure: Any = None) -> None:
        outcomes.append(RuleOutcome(rule.name, status, reason, failure, rule.file, rule.line))

    for rule in rules.rules:
        first_match = modes.get(rule.file) == "first_match"
        names = "every event" if rule.events == "*" else ", ".join(sorted(rule.events))
        if not rule.enabled:
            outcome(rule, "disabled", "enabled: false")
        elif event.name in rule.unless:
            outcome(
                rule, "not_for_event", f"listens for {names}; unless: {event.name} cancels its wait"
            )
        elif rule.events != "*" and event.name not in rule.events:
            outcome(rule, "not_for_event", f"listens for {names}")
        elif stopped_by is not None:
            outcome(rule, "stopped", f"rule '{stopped_by}' matched earlier and has stop: true")
        elif first_match and rule.file in first_matched:
            reason = f"first_match: rule '{first_matched[rule.file]}' of this file matched first"
            outcome(rule, "after_first_match", reason)
        elif (failure := rule.condition.check(context)) is not None:
            outcome(rule, "not_matched", failure.describe(), failure)
        elif rule.after is not None and event.conversation_id is None:
            reason = "every condition held; the event has no conversation: nothing scheduled"
            outcome(rule, "matched", reason)
        elif rule.after is not None:
            due = _due(rule, now)
            scheduled[rule.name] = due
            if due is None:
                reason = "matched, but nothing scheduled: its business hours never open"
            else:
                kinds = ", ".join(a.kind for a in rule.actions) or "no action"
                business = " (business time)" if rule.business else ""
                reason = f"would schedule {kinds} for {due.isoformat()}{business}"
            outcome(rule, "scheduled", reason)
        elif rule.name in cooldowns:
            until = cooldowns[rule.name].isoformat()
            outcome(rule, "cooling_down", f"matched, but its cooldown runs until {until}")
            continue
        else:
            outcome(rule, "matched", "every condition held")
            for index, spec in enumerate(rule.actions):
                params = spec.render(event.payload)
                skip = _skip(spec.kind, params, projected, event.conversation_id)
                actions.append(PlannedAction(rule.name, index, spec.kind, params, skip))
            if rule.cooldown is not None:
                cooldowns[rule.name] = now + rule.cooldown
        if outcomes[-1].status in ("matched", "scheduled"):
            if rule.stop:
                stopped_by = rule.name
            if first_match:
                first_matched[rule.file] = rule.name
    waits, changes = _reference_waits(rules, event, state, outcomes, scheduled)
    if event.name == "message.received" and event.conversation_id is not None:
        last = now
    after = ConversationState(
        projected.open, projected.hw_id, projected.hw_planned, cooldowns, waits, last
    )
    return Decision(
        rules.version,
        event.name,
        event.conversation_id,
        tuple(outcomes),
        tuple(actions),
        after,
        changes,
    )


def _due(rule: Rule, now: datetime) -> datetime | None:
    assert rule.after is not None
    if not rule.business:
        return now.astimezone(UTC) + rule.after
    assert rule.calendar is not None
    return rule.calendar.add(now, rule.after)


def _reference_waits(
    rules: Ruleset,
    event: Event,
    state: ConversationState,
    outcomes: list[RuleOutcome],
    scheduled: dict[str, datetime | None],
) -> tuple[dict[str, Wait], tuple[WaitChange, ...]]:
    by_name = {rule.name: rule for rule in rules.rules}
    why = {o.rule: o.reason for o in outcomes}
    waits = dict(state.waits)
    changes = []
    for name, wait in state.waits.items():
        rule = by_name.get(name)
        if name in scheduled:
            continue
        if rule is None or not rule.enabled or rule.definition != wait.definition:
            gone = "removed" if rule is None else "disabled" if not rule.enabled else "changed"
            reason = f"cancelled: the rule was {gone}"
        elif event.name in rule.unless:
            reason = f"cancelled by {event.name} (unless)"
        elif rule.events == "*" or event.name in rule.events:
            reason = f"cancelled by {event.name} ({why[name]})"
        else:
            continue
        del waits[name]
        changes.append(WaitChange(name, None, reason))
    for name, due in scheduled.items():
        rule = by_name[name]
        if due is None:
            if name in waits:
                del waits[name]
                reason = f"cancelled by {event.name} (its business hours never open)"
                changes.append(WaitChange(name, None, reason))
            continue
        needs_event = any(a.kind == "helpwave.create_ticket" for a in rule.actions)
        params = tuple(a.render(event.payload) for a in rule.actions)
        waits[name] = Wait(
            name,
            due,
            rule.definition,
            rule.business,
            params if any(params) else (),
            excerpt(event) if needs_event else {},
        )
        business = " (business time)" if rule.business else ""
        changes.append(WaitChange(name, due, f"scheduled for {due.isoformat()}{business}"))
    return waits, tuple(changes)


@dataclass
class _Projected:
    open: bool
    hw_id: str | None  # never changed by a decision: the executor stores it
    hw_planned: bool


def _skip(
    kind: str, params: dict[str, Any], projected: _Projected, conversation: str | None
) -> str | None:
    if conversation is None:
        return "event has no conversation"
    if kind == "open_ticket":
        if projected.open:
            return "ticket already open"
        projected.open = True
    elif kind == "close_ticket":
        if not projected.open:
            return "ticket already closed"
        projected.open = False
    elif kind == "helpwave.create_ticket":
        projected.hw_planned = True  # never skipped: carrying it out looks the ticket up
    elif kind == "helpwave.add_comment":
        if projected.hw_id is None and not projected.hw_planned:
            return "no HelpWave ticket for this conversation"
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return "comment text is empty"
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
