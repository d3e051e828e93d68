"""A delivery as stored: the webhook the receiver accepted, and what the worker added.

    tw:delivery:{id}   hash  raw, received_at, dry_run, conversation,
                             decision (JSON, written once), state_before (JSON),
                             done:{rule#i} (JSON outcome), attempts:{rule#i} (JSON list),
                             sending:{rule#i} (a HelpWave create about to go: send_intents),
                             shadow (JSON: the shadow rules' verdicts, `storage.shadow_log`)

`parse_record` reads the hash; `stored_form` is the decision as it is written.

A decision `evaluate` made is stored compact: what was decided (matched rules, actions with
their params and skip reasons, the state after, waits started or ended, the ruleset version)
and `decided_at`, but no rule outcomes. Those are a pure function of the delivery's raw
event, its `state_before`, `decided_at` and the ruleset of that version, so they are worked
out again when someone reads the record (`worker.storage.explanations`), not per event.
Other decisions (a wait coming due, a replay) and records written by older versions keep
every listening rule's outcome in `outcomes`; both forms read back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from worker.engine.decision import Decision, OutcomesNotStored, WaitChange
from worker.engine.model import ConversationState, PlannedAction
from worker.engine.ruleset import Ruleset
from worker.engine.shadow import ShadowVerdict
from worker.storage.json_text import decision_text, encode, state_text
from worker.storage.keys import View


@dataclass(frozen=True)
class DeliveryRecord:
    """One accepted webhook as stored by the receiver, plus what the worker added."""

    delivery_id: str
    raw: bytes
    received_at: float
    dry_run: bool
    conversation: str
    decision: Decision | None
    state_before: ConversationState | None
    done: Mapping[str, Mapping[str, Any]]
    attempts: Mapping[str, list[dict[str, Any]]]
    shadow: tuple[ShadowVerdict, ...] | None = None  # None: no shadow rule decided it
    stored: bool = True  # False: built in memory (a wait coming due), written with its decision

    @property
    def view(self) -> View:
        """Whose picture of the tickets this delivery reads and writes."""
        return "dry" if self.dry_run else "live"


def _decode(value: bytes | None) -> str:
    return value.decode() if value is not None else ""


def parse_record(delivery_id: str, fields: Mapping[bytes, bytes]) -> DeliveryRecord:
    """A delivery record from its Redis hash fields."""
    done: dict[str, Mapping[str, Any]] = {}
    attempts: dict[str, list[dict[str, Any]]] = {}
    for name, value in fields.items():
        text = name.decode()
        if text.startswith("done:"):
            done[text[5:]] = json.loads(value)
        elif text.startswith("attempts:"):
            attempts[text[9:]] = json.loads(value)
    decision = fields.get(b"decision")
    before = fields.get(b"state_before")
    shadow = fields.get(b"shadow")
    return DeliveryRecord(
        delivery_id=delivery_id,
        raw=fields.get(b"raw", b""),
        received_at=float(_decode(fields.get(b"received_at")) or 0.0),
        dry_run=fields.get(b"dry_run") == b"1",
        conversation=_decode(fields.get(b"conversation")),
        decision=read_decision(json.loads(decision)) if decision else None,
        state_before=ConversationState.from_json(json.loads(before)) if before else None,
        done=done,
        attempts=attempts,
        shadow=None
        if shadow is None
        else tuple(ShadowVerdict.from_json(v) for v in json.loads(shadow)),
    )


_NOT_STORED = frozenset({"not_for_event"})


def stored_form(decision: Decision) -> dict[str, Any]:
    """The decision as the delivery keeps it (see the module docstring): compact when its
    outcomes can be worked out again; else every rule that listens to the event explained
    (rules that do not listen are left out: their reason says only that)."""
    if decision.decided_at is None:
        return decision.to_json(leave_out=_NOT_STORED)
    form: dict[str, Any] = json.loads(stored_texts(decision)[0])
    return form


def stored_texts(decision: Decision) -> tuple[str, str]:
    """The stored form as JSON text (what `stored_form` reads back), and the state after
    as JSON text, encoded once for both (joined from fragments: `json_text`)."""
    after = state_text(decision.state_after)
    if decision.decided_at is None:
        return compact(decision.to_json(leave_out=_NOT_STORED)), after
    return decision_text(decision, after), after


def read_decision(data: Mapping[str, Any]) -> Decision:
    """A decision from either stored form. One stored compact has no outcomes: reading them
    raises OutcomesNotStored (`worker.storage.explanations` works them out again)."""
    if "outcomes" in data:
        return Decision.from_json(data)
    version = data["ruleset_version"]

    def not_stored() -> NoReturn:
        raise OutcomesNotStored(f"outcomes are explained on read (ruleset {version})")

    return Decision.explained_later(
        version,
        data["event"],
        data.get("conversation_id"),
        not_stored,
        tuple(
            PlannedAction(rule, index, kind, params, skip_reason)
            for rule, index, kind, params, skip_reason in data["actions"]
        ),
        ConversationState.from_json(data["state_after"]),
        tuple(data["matched"]),
        tuple(
            WaitChange(
                rule=c["rule"],
                due=None if c.get("due") is None else datetime.fromisoformat(c["due"]),
                reason=c.get("reason", ""),
            )
            for c in data.get("wait_changes", ())
        ),
        datetime.fromtimestamp(data["decided_at"], UTC),
    )


def is_quiet(decision: Decision, ruleset: Ruleset) -> bool:
    """No rule listened to the event (every rule is disabled or waits for other events).
    `ruleset`: the one the decision was made with, when its outcomes are not at hand."""
    if decision.actions:
        return False
    if decision.decided_at is not None:
        if ruleset.version != decision.ruleset_version:
            return False  # cannot tell: keep what a quiet record would drop
        return not ruleset.plan.for_event(decision.event)[1]
    return all(o.status in ("not_for_event", "disabled", "shadow") for o in decision.outcomes)


def compact(data: object) -> str:
    """`data` as compact JSON text (no spaces, non-ASCII kept)."""
    return encode(data)
