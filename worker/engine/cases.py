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
          - helpwave.add_comment: {text: "hi", isFromShop: false, Channel: Helpwave}
                                                     # kind and params: params compared exactly
        skipped: [helpwave.create_ticket]  # optional: the skipped actions (same forms)

`expect` lists the actions that would be carried out; actions the engine plans but skips
(open while open, ...) are compared only against `skipped`, when the case gives it.

A case decides what the engine decides, without calling HelpWave: a `helpwave.create_ticket`
is carried out whether the conversation's HelpWave ticket is open or closed there (the
worker looks the stored ticket up when it carries the create out, and reuses it while it is
open), so `helpwave_ticket: open` and `closed` only say that the conversation has one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.engine.decision import Decision
from worker.engine.evaluate import evaluate
from worker.engine.model import ConversationState, Event, PlannedAction
from worker.engine.ruleset import Ruleset


@dataclass(frozen=True)
class ExpectedAction:
    """An action a case expects: its kind, and its exact params when the case gives them."""

    kind: str
    params: Mapping[str, Any] | None = None

    def accepts(self, action: PlannedAction) -> bool:
        if action.kind != self.kind:
            return False
        return self.params is None or dict(action.params) == dict(self.params)

    def describe(self) -> str:
        if self.params is None:
            return self.kind
        return f"{self.kind} {json.dumps(dict(self.params), ensure_ascii=False, sort_keys=True)}"


@dataclass(frozen=True)
class Case:
    """One regression case, ready to run."""

    file: str
    line: int
    name: str
    event: Event
    state: ConversationState
    now: datetime
    expect: tuple[ExpectedAction, ...]
    skipped: tuple[ExpectedAction, ...] | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class CaseResult:
    """A case run: what the engine decided and whether it is what the case expects."""

    case: Case
    decision: Decision

    @property
    def carried_out(self) -> tuple[PlannedAction, ...]:
        return tuple(a for a in self.decision.actions if a.skip_reason is None)

    @property
    def skipped(self) -> tuple[PlannedAction, ...]:
        return tuple(a for a in self.decision.actions if a.skip_reason is not None)

    @property
    def passed(self) -> bool:
        if not _same(self.case.expect, self.carried_out):
            return False
        return self.case.skipped is None or _same(self.case.skipped, self.skipped)


def _same(expected: Sequence[ExpectedAction], actual: Sequence[PlannedAction]) -> bool:
    return len(expected) == len(actual) and all(
        want.accepts(got) for want, got in zip(expected, actual, strict=True)
    )


def describe_action(action: PlannedAction) -> str:
    """An action as a case would write it (kind and params), with the rule that planned it."""
    params = json.dumps(dict(action.params), ensure_ascii=False, sort_keys=True)
    return f"{action.kind} {params}  <- {action.rule}"


def run_case(ruleset: Ruleset, case: Case) -> CaseResult:
    """Decide the case's event under `ruleset`. Pure."""
    return CaseResult(case, evaluate(ruleset, case.event, case.state, now=case.now))
