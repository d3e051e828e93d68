"""`evaluate`: what a ruleset decides for one event. Pure, deterministic, never raises.

Every rule gets an outcome, in ruleset order. Conditions (`ticket:` included) see the state
as it was when the event arrived; planned actions track a projected state through the
decision, so an action that would change nothing is recorded with its `skip_reason` (how
each action kind is planned: `planning`).

Two paths decide the same thing: the ruleset's compiled deciders (`fastpath`) find the rules
that act and plan their actions for every event; `explain` runs the explaining checks to say
why each rule did or did not act, only when a decision's `outcomes` are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial

from worker.engine.checks import Context
from worker.engine.decision import Decision, RuleOutcome, rule_outcome
from worker.engine.model import ConversationState, Event, conversation_state
from worker.engine.planning import (
    EMPTY_COMMENT,
    NO_CONVERSATION,
    NO_HELPWAVE_TICKET,
    TICKET_ALREADY_CLOSED,
    TICKET_ALREADY_OPEN,
)
from worker.engine.ruleset import Ruleset

__all__ = [
    "EMPTY_COMMENT",
    "NO_CONVERSATION",
    "NO_HELPWAVE_TICKET",
    "TICKET_ALREADY_CLOSED",
    "TICKET_ALREADY_OPEN",
    "evaluate",
    "explain",
]


def evaluate(
    ruleset: Ruleset, event: Event, state: ConversationState, *, now: datetime
) -> Decision:
    """Decide `event` under `ruleset`, given the conversation's `state`, at `now`.

    Naive datetimes are taken as UTC. `time:` conditions use `event.timestamp`, or `now`.
    The decision's `outcomes` are worked out by `explain`, from the same inputs, when first
    read (so the event's payload must not be changed in between); `matched_rules`,
    `actions` and `state_after` are computed here.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    plan = ruleset.plan
    payload = event.payload
    moment = event.timestamp
    if moment is None:
        moment = now
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    cooldowns = _running(state.cooldowns, now) if state.cooldowns else {}
    ticket_open = state.ticket_open
    decide = plan.deciders.get(event.name, plan.other_decider)
    helpwave_id = state.helpwave_ticket_id
    matched, actions, ticket_open, helpwave_planned, started = decide(
        payload,
        ticket_open,
        moment,
        cooldowns,
        event.conversation_id is None,
        ticket_open,
        helpwave_id,
        state.helpwave_ticket_planned,
    )
    if started:
        cooldowns = dict(cooldowns)
        for rule, cooldown in started:
            cooldowns[rule] = now + cooldown
    return Decision.explained_later(
        ruleset.version,
        event.name,
        event.conversation_id,
        partial(explain, ruleset, event, state, now),
        tuple(actions),
        conversation_state(
            ticket_open,
            helpwave_id,
            helpwave_planned,
            cooldowns,
            state.waits,
            state.last_customer_message,
        ),
        tuple(matched),
    )


def _running(cooldowns: Mapping[str, datetime], now: datetime) -> dict[str, datetime]:
    """The cooldowns still running at `now`, as aware datetimes."""
    return {name: _aware(until) for name, until in cooldowns.items() if _aware(until) > now}


def explain(
    ruleset: Ruleset, event: Event, state: ConversationState, now: datetime
) -> tuple[RuleOutcome, ...]:
    """The outcome of every rule of `ruleset` for `event`, as `evaluate` decided it.

    Runs the explaining checks: for a rule that does not match, its first failing
    condition and the value it saw.
    """
    now = _aware(now)
    plan = ruleset.plan
    static, candidates = plan.for_event(event.name)
    rules = ruleset.rules
    moment = now if event.timestamp is None else _aware(event.timestamp)
    context = Context(event.payload, state.ticket_open, moment)
    cooldowns = _running(state.cooldowns, now)
    outcomes = list(static)
    stopped_by: str | None = None
    first_matched: dict[str, str] = {}

    for i in candidates:
        rule = rules[i]
        if stopped_by is not None:
            reason = f"rule '{stopped_by}' matched earlier and has stop: true"
            outcomes[i] = rule_outcome(rule.name, "stopped", reason, None, rule.file, rule.line)
            continue
        if plan.first_match[i] and rule.file in first_matched:
            reason = f"first_match: rule '{first_matched[rule.file]}' of this file matched first"
            outcomes[i] = rule_outcome(
                rule.name, "after_first_match", reason, None, rule.file, rule.line
            )
            continue
        failure = rule.condition.check(context)
        if failure is not None:
            outcomes[i] = rule_outcome(
                rule.name, "not_matched", failure.describe(), failure, rule.file, rule.line
            )
            continue
        until = cooldowns.get(rule.name)
        if until is not None:
            reason = f"matched, but its cooldown runs until {until.isoformat()}"
            outcomes[i] = rule_outcome(
                rule.name, "cooling_down", reason, None, rule.file, rule.line
            )
            continue
        if rule.stop:
            stopped_by = rule.name
        if plan.first_match[i]:
            first_matched[rule.file] = rule.name
    return tuple(outcomes)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
