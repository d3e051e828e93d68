"""Waits coming due: what the engine decides when a rule's `after:` ends (rules.md "Time").

    fire(ruleset, conversation_id, rule, due, state, now=...) -> Decision

A wait is identified by its rule and due time. Its decision, in the conversation's order:

- `superseded`: the conversation holds no wait of that rule due then (a later event
  restarted or cancelled it): nothing to do;
- `cancelled`: the rule is gone from the ruleset, disabled, or its definition changed since
  the wait started (`Rule.definition`: on, when, after, unless or then; a description does
  not count; `scheduling.cancel_reason`): the wait ends, the cancellation recorded;
- `cooling_down`: the rule's cooldown for the conversation runs: the wait ends, no action;
- `due`: its actions are planned against the state at this moment (`planning`: an action
  that would change nothing is skipped and recorded), with the parameters filled when the
  wait started; the rule's cooldown, if any, starts now.

Pure, like `evaluate`: `now` is an argument.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from worker.engine.decision import Decision, OutcomeStatus, RuleOutcome, WaitChange
from worker.engine.model import ConversationState, PlannedAction, Wait
from worker.engine.planning import Projection, plan_action
from worker.engine.ruleset import Rule, Ruleset
from worker.engine.scheduling import cancel_reason

TIMER_EVENT: Final = "timer"  # the `event` of a decision made when a wait ends


def fire(
    ruleset: Ruleset,
    conversation_id: str,
    rule_name: str,
    due: datetime,
    state: ConversationState,
    *,
    now: datetime,
) -> Decision:
    """The decision for the wait of `rule_name` due at `due` (see the module docstring)."""
    wait = state.waits.get(rule_name)
    if wait is None or wait.due != due:
        reason = "restarted or cancelled by a later event"
        return _decision(ruleset, conversation_id, rule_name, "superseded", reason, state)
    rule = _rule(ruleset, rule_name)
    waits = {name: w for name, w in state.waits.items() if name != rule_name}
    after = state.evolve(waits=waits)
    why = cancel_reason(rule, wait)
    if why is not None:
        change = WaitChange(rule_name, None, f"cancelled: {why}")
        return _decision(ruleset, conversation_id, rule_name, "cancelled", why, after, change)
    assert rule is not None
    until = state.cooldowns.get(rule_name)
    if until is not None and until > now:
        reason = f"due, but its cooldown runs until {until.isoformat()}"
        return _decision(ruleset, conversation_id, rule_name, "cooling_down", reason, after)
    actions, after = _plan(rule, wait, after)
    if rule.cooldown is not None:
        after = after.evolve(cooldowns={**after.cooldowns, rule_name: now + rule.cooldown})
    reason = f"due {due.isoformat()}, carried out"
    return _decision(ruleset, conversation_id, rule_name, "due", reason, after, actions=actions)


def _rule(ruleset: Ruleset, name: str) -> Rule | None:
    return ruleset.plan.by_name.get(name)


def _plan(
    rule: Rule, wait: Wait, state: ConversationState
) -> tuple[tuple[PlannedAction, ...], ConversationState]:
    projection = Projection(
        state.ticket_open, state.helpwave_ticket_id, state.helpwave_ticket_planned
    )
    actions = []
    for index, spec in enumerate(rule.actions):
        params = wait.params[index] if index < len(wait.params) else spec.params
        skip, projection = plan_action(spec.kind, params, projection, has_conversation=True)
        actions.append(PlannedAction(rule.name, index, spec.kind, dict(params), skip))
    after = state.evolve(
        ticket_open=projection.ticket_open,
        helpwave_ticket_planned=projection.helpwave_ticket_planned,
    )
    return tuple(actions), after


def _decision(
    ruleset: Ruleset,
    conversation_id: str,
    rule_name: str,
    status: OutcomeStatus,
    reason: str,
    state_after: ConversationState,
    change: WaitChange | None = None,
    *,
    actions: tuple[PlannedAction, ...] = (),
) -> Decision:
    rule = _rule(ruleset, rule_name)
    outcome = RuleOutcome(
        rule_name,
        status,
        reason,
        file=rule.file if rule else "",
        line=rule.line if rule else 0,
    )
    return Decision(
        ruleset.version,
        TIMER_EVENT,
        conversation_id,
        (outcome,),
        actions,
        state_after,
        () if change is None else (change,),
    )


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (naive ones are taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
