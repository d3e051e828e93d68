"""`evaluate`: what a ruleset decides for one event. Pure, deterministic, never raises.

Every rule gets an outcome, in ruleset order. Conditions (`ticket:` included) see the state
as it was when the event arrived; planned actions track a projected state through the
decision, so an action that would change nothing is recorded with its `skip_reason` (how
each action kind is planned: `planning`).

Two paths decide the same thing: the ruleset's compiled deciders (`fastpath`) find the rules
that act and plan their actions for every event; `explain` runs the explaining checks to say
why each rule did or did not act, only when a decision's `outcomes` are read.

Time (rules.md "Time"): a rule with `after:` that matches plans no action: its outcome is
`scheduled` and `scheduling.update_waits` (re)starts its wait in `state_after.waits`; the
same step ends the waits the event cancels. `session:` conditions see whether the
conversation's WhatsApp window is open at `now` (`session_open`), and every
`message.received` of a conversation sets `state_after.last_customer_message` to `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Final

from worker.engine.checks import Context
from worker.engine.decision import (
    Decision,
    OutcomeStatus,
    RuleOutcome,
    WaitChange,
    rule_outcome,
)
from worker.engine.model import ConversationState, Event, conversation_state
from worker.engine.planning import (
    EMPTY_COMMENT,
    NO_CONVERSATION,
    NO_HELPWAVE_TICKET,
    TICKET_ALREADY_CLOSED,
    TICKET_ALREADY_OPEN,
)
from worker.engine.ruleset import Rule, Ruleset
from worker.engine.scheduling import NEVER_OPEN, describe_due, due_of, update_waits

CUSTOMER_MESSAGE: Final = "message.received"  # opens the WhatsApp session window
SESSION_WINDOW: Final = timedelta(hours=24)

__all__ = [
    "EMPTY_COMMENT",
    "NO_CONVERSATION",
    "NO_HELPWAVE_TICKET",
    "TICKET_ALREADY_CLOSED",
    "TICKET_ALREADY_OPEN",
    "evaluate",
    "explain",
    "session_open",
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
    cooldowns = state.cooldowns
    if cooldowns:
        cooldowns = _running(cooldowns, now)
    ticket_open = state.ticket_open
    decide = plan.deciders.get(event.name, plan.other_decider)
    helpwave_id = state.helpwave_ticket_id
    matched, actions, ticket_open, helpwave_planned, started, scheduled = decide(
        payload,
        ticket_open,
        moment,
        cooldowns,
        event.conversation_id is None,
        ticket_open,
        helpwave_id,
        state.helpwave_ticket_planned,
        plan.uses_session and session_open(event, state, now),
    )
    if started:
        cooldowns = dict(cooldowns)
        for rule, cooldown in started:
            cooldowns[rule] = now + cooldown
    outcomes = partial(explain, ruleset, event, state, now)
    waits = state.waits
    changes: tuple[WaitChange, ...] = ()
    if scheduled or waits:
        waits, changes = update_waits(ruleset, event, state, now, scheduled, outcomes)
    last_message = state.last_customer_message
    if event.name == CUSTOMER_MESSAGE and event.conversation_id is not None:
        last_message = now if now.tzinfo is UTC else now.astimezone(UTC)
    return Decision.explained_later(
        ruleset.version,
        event.name,
        event.conversation_id,
        outcomes,
        tuple(actions),
        conversation_state(
            ticket_open, helpwave_id, helpwave_planned, cooldowns, waits, last_message
        ),
        tuple(matched),
        changes,
        now,
    )


def session_open(event: Event, state: ConversationState, now: datetime) -> bool:
    """Is the conversation's WhatsApp customer-service window open at `now`: its last
    message.received came less than 24 h before (a message.received is itself one)."""
    if event.name == CUSTOMER_MESSAGE:
        return True
    last = state.last_customer_message
    return last is not None and _aware(now) - _aware(last) < SESSION_WINDOW


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
    context = Context(event.payload, state.ticket_open, moment, session_open(event, state, now))
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
        if rule.after is not None:
            status, reason = _scheduling(rule, event, now)
            outcomes[i] = rule_outcome(rule.name, status, reason, None, rule.file, rule.line)
        elif until is not None:
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


def _scheduling(rule: Rule, event: Event, now: datetime) -> tuple[OutcomeStatus, str]:
    """The outcome of a rule with `after:` that matched `event` (see `scheduling`)."""
    if event.conversation_id is None:
        return "matched", "every condition held; the event has no conversation: nothing scheduled"
    due = due_of(rule, now)
    if due is None:
        return "scheduled", f"matched, but nothing scheduled: {NEVER_OPEN}"
    kinds = ", ".join(spec.kind for spec in rule.actions) or "no action"
    return "scheduled", f"would schedule {kinds} for {describe_due(rule, due)}"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
