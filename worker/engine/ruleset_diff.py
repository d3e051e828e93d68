"""Replay events through two rulesets and find those whose actions change. Pure.

Two ways to give the starting state of each event:

- `recorded`: the state the worker stored when it decided the event (the decision log), the
  same for both rulesets;
- `threaded`: events in order, each conversation's state carried from the previous event's
  decision under the same ruleset, starting from a conversation never seen.

Actions are compared as (kind, params, carried out or skipped), in order: renaming a rule
that does the same thing changes nothing. Waits too (rules with `after:`): what an event
schedules (the actions and their params, and when they are due) and which scheduled
actions it cancels; a change in either is a change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from worker.engine.decision import Decision
from worker.engine.evaluate import evaluate
from worker.engine.model import ConversationState, Event
from worker.engine.ruleset import Ruleset


@dataclass(frozen=True)
class ReplayEvent:
    """One event to replay: a label for people, the event, when, and its recorded state."""

    label: str
    event: Event
    now: datetime
    state: ConversationState | None = None  # None: threaded from earlier events


@dataclass(frozen=True)
class Change:
    """An event whose actions differ between the two rulesets."""

    item: ReplayEvent
    old: Decision
    new: Decision


Signature = tuple[list[tuple[str, dict[str, object], bool]], list[tuple[object, ...]]]


def _signature(decision: Decision, ruleset: Ruleset) -> Signature:
    actions = [(a.kind, dict(a.params), a.skip_reason is None) for a in decision.actions]
    waits: list[tuple[object, ...]] = []
    by_name = ruleset.plan.by_name
    for change in decision.wait_changes:
        rule = by_name.get(change.rule)
        kinds = tuple(spec.kind for spec in rule.actions) if rule is not None else change.rule
        wait = decision.state_after.waits.get(change.rule)
        if change.due is not None and wait is not None:
            params = [dict(p) for p in wait.params] if wait.params else []
            waits.append(("scheduled", change.due, wait.business, kinds, params))
        else:
            waits.append(("cancelled", kinds))
    return actions, sorted(waits, key=repr)


def diff_rulesets(old: Ruleset, new: Ruleset, items: Iterable[ReplayEvent]) -> list[Change]:
    """Every replayed event whose actions under `new` differ from those under `old`."""
    threads: dict[str, dict[str, ConversationState]] = {"old": {}, "new": {}}
    changes = []
    for item in items:
        decisions = []
        for side, ruleset in (("old", old), ("new", new)):
            conversation = item.event.conversation_id
            state = item.state
            if state is None:
                state = threads[side].get(conversation or "", ConversationState())
            decision = evaluate(ruleset, item.event, state, now=item.now)
            if item.state is None and conversation is not None:
                threads[side][conversation] = decision.state_after
            decisions.append(decision)
        before, after = decisions
        if _signature(before, old) != _signature(after, new):
            changes.append(Change(item, before, after))
    return changes
