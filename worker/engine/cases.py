"""Regression cases for a ruleset: files of events, starting states and expected actions.

A cases file (`rules/tests/*.yaml`) is read like a rule file: every problem is reported at
file:line:column and the file is refused whole. Its format::

    version: 1                      # optional
    cases:
      - name: a help request opens a ticket
        event: events/help.json     # a webhook body: a file (relative to this file) or inline
        state:                      # optional; this is the default (a conversation never seen)
          ticket: closed            # open | closed: the AwalChat ticket
          helpwave_ticket: none     # none | open | closed: has the conversation a HelpWave
                                    # ticket (open and closed decide the same, see below)
          helpwave_ticket_id: 987   # optional: its id (implies a ticket)
          cooldowns: {close-on-thanks: 5m}   # rule -> time left (30s, 10m, 2h) or ISO end
        now: 2024-05-14T09:30:00Z   # optional: defaults to the event's timestamp
        expect:                     # the actions carried out, in order; [] for none
          - open_ticket                              # kind only: params not compared
          - close_ticket:                            # the same (null: params not compared)
          - helpwave.add_comment: {text: "hi", isFromShop: false, Channel: Helpwave}
                                                     # kind and params: params compared exactly
        skipped: [helpwave.create_ticket]  # optional: the skipped actions (same forms)

`expect` lists the actions that would be carried out; actions the engine plans but skips
(open while open, ...) are compared only against `skipped`, when the case gives it.

A case decides what the engine decides, without calling HelpWave: a `helpwave.create_ticket`
is carried out whether the conversation's HelpWave ticket is open or closed there (the
worker looks the stored ticket up when it carries the create out, and reuses it while it is
open), so `helpwave_ticket: open` and `closed` only say that the conversation has one.

Time (rules with `after:`): instead of one `event:`, a case may give `events:`, each with
an offset `at:` from the case's start (`now:`, or the first event's timestamp); the first
defaults to 0, a later one to the offset before it (they must not go back in time)::

      - name: a quiet conversation is closed after 24 h
        state: {ticket: open}
        events:
          - event: events/help.json           # at 0
          - {at: 90m, event: events/help.json}   # restarts the 24 h
        expect:
          - {at: 25h30m, close_ticket: {}}   # when it is carried out; `at` may be left out
          - {at: 25h30m, close_ticket: }     # (null params: the kind only is checked)

The case runs one conversation (`timeline.run_timeline`): each event is decided at its
offset, with its envelope timestamp moved to that moment; a pending wait is carried out
when it comes due, before any later event, and after the last event until none is left or
400 days have passed. `expect` (and `skipped`) list the actions of the whole run in the
order they happen, each at the offset of its event or of its wait's due time; an expected
action with `at:` must happen exactly then. A case with one `event:` and no `at:` anywhere
is decided exactly as before (its waits are only scheduled, never carried out); an `at:`
in its `expect` makes it a run too. Time costs nothing: a wait of 24 business hours is
tested in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from worker.engine.decision import Decision
from worker.engine.evaluate import evaluate
from worker.engine.model import ConversationState, Event, PlannedAction
from worker.engine.ruleset import Ruleset
from worker.engine.timeline import Step, run_timeline


@dataclass(frozen=True)
class ExpectedAction:
    """An action a case expects: its kind, its exact params when the case gives them, and
    when (an offset from the case's start) when it gives `at:`."""

    kind: str
    params: Mapping[str, Any] | None = None
    at: timedelta | None = None

    def accepts(self, action: PlannedAction, at: timedelta = timedelta(0)) -> bool:
        if action.kind != self.kind or (self.at is not None and at != self.at):
            return False
        return self.params is None or dict(action.params) == dict(self.params)

    def describe(self) -> str:
        when = "" if self.at is None else f"at {offset(self.at)}  "
        if self.params is None:
            return when + self.kind
        params = json.dumps(dict(self.params), ensure_ascii=False, sort_keys=True)
        return f"{when}{self.kind} {params}"


@dataclass(frozen=True)
class TimedEvent:
    """An event of a case and its offset from the case's start."""

    at: timedelta
    event: Event


@dataclass(frozen=True)
class Case:
    """One regression case, ready to run. `events` (with their offsets) make it a run
    through time; without them, `event` is decided once at `now`."""

    file: str
    line: int
    name: str
    event: Event
    state: ConversationState
    now: datetime
    expect: tuple[ExpectedAction, ...]
    skipped: tuple[ExpectedAction, ...] | None = None
    events: tuple[TimedEvent, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def timed(self) -> bool:
        expected = (*self.expect, *(self.skipped or ()))
        return bool(self.events) or any(want.at is not None for want in expected)


TimedAction = tuple[timedelta, PlannedAction]


@dataclass(frozen=True)
class CaseResult:
    """A case run: what the engine decided and whether it is what the case expects.

    `steps`: every decision, in the order they happened (one for an untimed case);
    `decision` is the last.
    """

    case: Case
    steps: tuple[Step, ...]

    @property
    def decision(self) -> Decision:
        return self.steps[-1].decision

    @property
    def timed_carried_out(self) -> tuple[TimedAction, ...]:
        return tuple((self._at(s), a) for s in self.steps for a in s.carried_out)

    @property
    def timed_skipped(self) -> tuple[TimedAction, ...]:
        return tuple((self._at(s), a) for s in self.steps for a in s.skipped)

    @property
    def carried_out(self) -> tuple[PlannedAction, ...]:
        return tuple(a for _, a in self.timed_carried_out)

    @property
    def skipped(self) -> tuple[PlannedAction, ...]:
        return tuple(a for _, a in self.timed_skipped)

    def _at(self, step: Step) -> timedelta:
        return step.moment - self.case.now

    @property
    def passed(self) -> bool:
        if not _same(self.case.expect, self.timed_carried_out):
            return False
        return self.case.skipped is None or _same(self.case.skipped, self.timed_skipped)


def _same(expected: Sequence[ExpectedAction], actual: Sequence[TimedAction]) -> bool:
    return len(expected) == len(actual) and all(
        want.accepts(got, at) for want, (at, got) in zip(expected, actual, strict=True)
    )


def describe_action(action: PlannedAction) -> str:
    """An action as a case would write it (kind and params), with the rule that planned it."""
    params = json.dumps(dict(action.params), ensure_ascii=False, sort_keys=True)
    return f"{action.kind} {params}  <- {action.rule}"


def offset(at: timedelta) -> str:
    """An offset as a case writes it: 0, 90s, 1d2h30m."""
    seconds = int(at.total_seconds())
    if seconds <= 0:
        return "0" if seconds == 0 else f"-{offset(-at)}"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def run_case(ruleset: Ruleset, case: Case) -> CaseResult:
    """Decide the case's event under `ruleset`, or run its events through time. Pure."""
    if not case.timed:
        decision = evaluate(ruleset, case.event, case.state, now=case.now)
        return CaseResult(case, (Step(case.now, decision, case.event),))
    events = case.events or (TimedEvent(timedelta(0), case.event),)
    moments = [(case.now + item.at, _at(item.event, case.now + item.at)) for item in events]
    return CaseResult(case, tuple(run_timeline(ruleset, case.state, moments)))


def _at(event: Event, moment: datetime) -> Event:
    """`event` as sent at `moment`: its envelope timestamp moved there."""
    payload = {**event.payload, "timestamp": moment.isoformat()}
    return replace(event, payload=payload, timestamp=moment)
