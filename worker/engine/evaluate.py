"""`evaluate`: what a ruleset decides for one event. Pure, deterministic, never raises.

Every rule gets an outcome, in ruleset order. Conditions (`ticket:` included) see the state
as it was when the event arrived; planned actions track a projected state through the
decision, so an action that would change nothing is recorded with its `skip_reason`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from worker.engine.checks import Context
from worker.engine.model import (
    CLOSE_TICKET,
    HELPWAVE_ADD_COMMENT,
    HELPWAVE_CREATE_TICKET,
    OPEN_TICKET,
    ConversationState,
    Decision,
    Event,
    PlannedAction,
    RuleOutcome,
)
from worker.engine.ruleset import ActionSpec, Ruleset

NO_CONVERSATION = "event has no conversation"
TICKET_ALREADY_OPEN = "ticket already open"
TICKET_ALREADY_CLOSED = "ticket already closed"
HELPWAVE_ALREADY_OPEN = "HelpWave ticket already open for this conversation"
NO_HELPWAVE_TICKET = "no HelpWave ticket for this conversation"
EMPTY_COMMENT = "comment text is empty"


def evaluate(
    ruleset: Ruleset, event: Event, state: ConversationState, *, now: datetime
) -> Decision:
    """Decide `event` under `ruleset`, given the conversation's `state`, at `now`.

    Naive datetimes are taken as UTC. `time:` conditions use `event.timestamp`, or `now`.
    """
    now = _aware(now)
    plan = ruleset.plan
    static, candidates = plan.for_event(event.name)
    rules = ruleset.rules
    payload = event.payload
    moment = now if event.timestamp is None else _aware(event.timestamp)
    context = Context(payload, state.ticket_open, moment)
    cooldowns = {
        name: _aware(until) for name, until in state.cooldowns.items() if _aware(until) > now
    }
    projected = _Projection(state)
    outcomes = list(static)
    actions: list[PlannedAction] = []
    stopped_by: str | None = None
    first_matched: dict[str, str] = {}

    for i in candidates:
        rule = rules[i]
        if stopped_by is not None:
            reason = f"rule '{stopped_by}' matched earlier and has stop: true"
            outcomes[i] = RuleOutcome(rule.name, "stopped", reason, file=rule.file, line=rule.line)
            continue
        if plan.first_match[i] and rule.file in first_matched:
            reason = f"first_match: rule '{first_matched[rule.file]}' of this file matched first"
            outcomes[i] = RuleOutcome(
                rule.name, "after_first_match", reason, file=rule.file, line=rule.line
            )
            continue
        failure = rule.condition.check(context)
        if failure is not None:
            outcomes[i] = RuleOutcome(
                rule.name,
                "not_matched",
                failure.describe(),
                failure=failure,
                file=rule.file,
                line=rule.line,
            )
            continue
        until = cooldowns.get(rule.name)
        if until is not None:
            reason = f"matched, but its cooldown runs until {until.isoformat()}"
            outcomes[i] = RuleOutcome(
                rule.name, "cooling_down", reason, file=rule.file, line=rule.line
            )
            continue
        for index, spec in enumerate(rule.actions):
            actions.append(projected.plan(rule.name, index, spec, payload, event.conversation_id))
        if rule.cooldown is not None:
            cooldowns[rule.name] = now + rule.cooldown
        if rule.stop:
            stopped_by = rule.name
        if plan.first_match[i]:
            first_matched[rule.file] = rule.name

    return Decision(
        ruleset_version=ruleset.version,
        event=event.name,
        conversation_id=event.conversation_id,
        outcomes=tuple(outcomes),
        actions=tuple(actions),
        state_after=projected.state(cooldowns),
    )


class _Projection:
    """The conversation's state as the actions planned so far will leave it."""

    def __init__(self, state: ConversationState) -> None:
        self.ticket_open = state.ticket_open
        self.helpwave_ticket_id = state.helpwave_ticket_id
        self.helpwave_ticket_open = state.helpwave_ticket_open

    def plan(
        self,
        rule: str,
        index: int,
        spec: ActionSpec,
        payload: Mapping[str, object],
        conversation_id: str | None,
    ) -> PlannedAction:
        params = spec.render(payload)
        skip = NO_CONVERSATION if conversation_id is None else self._apply(spec.kind, params)
        return PlannedAction(rule, index, spec.kind, params, skip)

    def _apply(self, kind: str, params: Mapping[str, object]) -> str | None:
        """Apply an action to the projection; the reason to skip it when it changes nothing."""
        if kind == OPEN_TICKET:
            if self.ticket_open:
                return TICKET_ALREADY_OPEN
            self.ticket_open = True
        elif kind == CLOSE_TICKET:
            if not self.ticket_open:
                return TICKET_ALREADY_CLOSED
            self.ticket_open = False
        elif kind == HELPWAVE_CREATE_TICKET:
            if self.helpwave_ticket_open:
                return HELPWAVE_ALREADY_OPEN
            self.helpwave_ticket_open = True
            self.helpwave_ticket_id = None
        elif kind == HELPWAVE_ADD_COMMENT:
            if self.helpwave_ticket_id is None and not self.helpwave_ticket_open:
                return NO_HELPWAVE_TICKET
            text = params.get("text")
            if not isinstance(text, str) or not text.strip():
                return EMPTY_COMMENT
        return None

    def state(self, cooldowns: dict[str, datetime]) -> ConversationState:
        return ConversationState(
            ticket_open=self.ticket_open,
            helpwave_ticket_id=self.helpwave_ticket_id,
            helpwave_ticket_open=self.helpwave_ticket_open,
            cooldowns=cooldowns,
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
