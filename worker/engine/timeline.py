"""One conversation run through time, as the worker would run it: events decided at their
moments, and pending waits carried out when they come due. Pure; no clock is read.

    run_timeline(ruleset, state, [(moment, event), ...], horizon=...) -> [Step, ...]

Events are decided in the order given (`evaluate`, `now` = the event's moment). Before each
event, every wait due at or before its moment is fired (`timers.fire`, `now` = its due
time), earliest first (ties in rule order); after the last event, the waits left are fired
the same way, up to `horizon` (a wait due later is left pending). Firing never starts a
wait, so a run always ends. Each step records the moment it happened: a wait's actions
happen at its due time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from worker.engine.decision import Decision
from worker.engine.evaluate import evaluate
from worker.engine.model import ConversationState, Event, PlannedAction
from worker.engine.ruleset import Ruleset
from worker.engine.timers import fire

HORIZON: Final = timedelta(days=400)  # waits due later than this after the start stay pending
NO_CONVERSATION: Final = "-"  # the id a timer step names when no event had a conversation


@dataclass(frozen=True)
class Step:
    """One decision of the run: an event's (`event` set) or a wait's coming due."""

    moment: datetime
    decision: Decision
    event: Event | None = None

    def describe(self) -> str:
        if self.event is not None:
            return f"event {self.event.name}"
        outcome = self.decision.outcomes[0]
        return f"wait of {outcome.rule} ({outcome.status})"

    @property
    def carried_out(self) -> tuple[PlannedAction, ...]:
        return tuple(a for a in self.decision.actions if a.skip_reason is None)

    @property
    def skipped(self) -> tuple[PlannedAction, ...]:
        return tuple(a for a in self.decision.actions if a.skip_reason is not None)


def run_timeline(
    ruleset: Ruleset,
    state: ConversationState,
    events: Sequence[tuple[datetime, Event]],
    *,
    horizon: timedelta = HORIZON,
) -> list[Step]:
    """Every step of the run (see the module docstring); moments are aware (naive: UTC)."""
    if not events:
        return []
    steps: list[Step] = []
    conversation = next(
        (e.conversation_id for _, e in events if e.conversation_id is not None), None
    )
    start = _aware(events[0][0])
    order = {rule.name: index for index, rule in enumerate(ruleset.rules)}

    def fire_until(limit: datetime) -> None:
        nonlocal state
        while state.waits:
            wait = min(state.waits.values(), key=lambda w: (w.due, order.get(w.rule, 0)))
            if wait.due > limit:
                return
            decision = fire(
                ruleset,
                conversation or NO_CONVERSATION,
                wait.rule,
                wait.due,
                state,
                now=wait.due,
            )
            state = decision.state_after
            steps.append(Step(wait.due, decision))

    for moment, event in events:
        moment = _aware(moment)
        fire_until(moment)
        decision = evaluate(ruleset, event, state, now=moment)
        if event.conversation_id is not None:
            state = decision.state_after
        steps.append(Step(moment, decision, event))
    fire_until(start + horizon)
    return steps


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
