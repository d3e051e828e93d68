"""How an event changes a conversation's waits (rules.md "Time"): the one statement of it.

`evaluate` learns from its decider which rules with `after:` matched the event (and so
schedule), then calls `update_waits`, which, in this order:

1. ends each pending wait whose rule is gone, disabled or changed (`Rule.definition`):
   "cancelled: the rule was removed" (a rule scheduling again replaces it instead);
2. ends each pending wait whose rule names the event in `unless:`:
   "cancelled by conversation.updated (unless)";
3. ends each pending wait whose rule listens to the event (`on:`) but did not match it
   (a condition failed, or `stop:` / `first_match` kept it from being decided):
   "cancelled by message.received (<why, as the rule's outcome says it>)";
4. (re)starts the wait of each rule that matched: due at `now` plus its duration, or for a
   `business:` duration when that much open time of the file's `business_hours:` has
   passed since `now` (counting from when they open): "scheduled for T (business time)".
   A rule whose business hours never open schedules nothing (and ends its pending wait).

A wait keeps what its actions need when carried out: each action's parameters filled from
this event (none when every action has none), and, when an action needs the customer's
phone (`helpwave.create_ticket`), an excerpt of the event (`envelope.excerpt`). Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from worker.engine.decision import RuleOutcome, WaitChange
from worker.engine.envelope import excerpt
from worker.engine.model import HELPWAVE_CREATE_TICKET, ConversationState, Event, Wait
from worker.engine.ruleset import Rule, Ruleset

NEEDS_EVENT: Final = frozenset({HELPWAVE_CREATE_TICKET})  # kinds reading the event when done
NEVER_OPEN: Final = "its business hours never open"

Explain = Callable[[], tuple[RuleOutcome, ...]]


def due_of(rule: Rule, now: datetime) -> datetime | None:
    """When a wait of `rule` started at `now` is due (UTC); None when its business hours
    never open (or the rule has no `after:`)."""
    if rule.after is None:
        return None
    start = now.astimezone(UTC)
    if not rule.business:
        return start + rule.after
    if rule.calendar is None:
        return None
    return rule.calendar.add(start, rule.after)


def describe_due(rule: Rule, due: datetime) -> str:
    """ "2026-12-03T09:00:00+00:00 (business time)", as records and explanations say it."""
    return due.isoformat() + (" (business time)" if rule.business else "")


def cancel_reason(rule: Rule | None, wait: Wait) -> str | None:
    """Why a ruleset ends `wait` whatever happens (its rule gone, disabled or changed)."""
    if rule is None:
        return "the rule was removed"
    if not rule.enabled:
        return "the rule was disabled"
    if rule.definition != wait.definition:
        return "the rule was changed"
    return None


def new_wait(rule: Rule, event: Event, due: datetime) -> Wait:
    """The wait `rule` starts on `event`, due at `due`."""
    params = tuple(spec.render(event.payload) for spec in rule.actions)
    if not any(params):
        params = ()  # as the state stores it (`Wait.to_json`): fire uses the rule's own
    needs_event = any(spec.kind in NEEDS_EVENT for spec in rule.actions)
    return Wait(
        rule=rule.name,
        due=due,
        definition=rule.definition,
        business=rule.business,
        params=params,
        event=excerpt(event) if needs_event else {},
    )


def update_waits(
    ruleset: Ruleset,
    event: Event,
    state: ConversationState,
    now: datetime,
    scheduled: tuple[str, ...],
    explain: Explain,
) -> tuple[Mapping[str, Wait], tuple[WaitChange, ...]]:
    """The conversation's waits after `event`, and what changed (see the module docstring).

    `scheduled`: the rules with `after:` that matched, in order. `explain`: the outcome of
    every rule for this event (called only when a pending wait ends for not matching).
    """
    by_name = ruleset.plan.by_name
    waits = dict(state.waits)
    changes: list[WaitChange] = []
    outcomes: dict[str, RuleOutcome] | None = None

    def cancel(name: str, reason: str) -> None:
        del waits[name]
        changes.append(WaitChange(name, None, reason))

    for name, wait in state.waits.items():
        rule = by_name.get(name)
        why = cancel_reason(rule, wait)
        if name in scheduled:
            continue  # restarted below
        if why is not None:
            cancel(name, f"cancelled: {why}")
        elif rule is not None and event.name in rule.unless:
            cancel(name, f"cancelled by {event.name} (unless)")
        elif rule is not None and rule.listens_to(event.name):
            if outcomes is None:
                outcomes = {o.rule: o for o in explain()}
            cancel(name, f"cancelled by {event.name} ({outcomes[name].reason})")
    for name in scheduled:
        rule = by_name[name]
        due = due_of(rule, now)
        if due is None:
            if name in waits:
                cancel(name, f"cancelled by {event.name} ({NEVER_OPEN})")
            continue
        waits[name] = new_wait(rule, event, due)
        changes.append(WaitChange(name, due, f"scheduled for {describe_due(rule, due)}"))
    return waits, tuple(changes)
