"""A delivery as stored: the webhook the receiver accepted, and what the worker added.

    tw:delivery:{id}   hash  raw, received_at, dry_run, conversation,
                             decision (JSON, written once), state_before (JSON),
                             done:{rule#i} (JSON outcome), attempts:{rule#i} (JSON list),
                             sending:{rule#i} (a HelpWave create about to go: send_intents),
                             shadow (JSON: the shadow rules' verdicts, `storage.shadow_log`)

`parse_record` reads the hash; `stored_form` is the decision as it is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.engine.decision import Decision
from worker.engine.model import ConversationState
from worker.engine.shadow import ShadowVerdict
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
        decision=Decision.from_json(json.loads(decision)) if decision else None,
        state_before=ConversationState.from_json(json.loads(before)) if before else None,
        done=done,
        attempts=attempts,
        shadow=None
        if shadow is None
        else tuple(ShadowVerdict.from_json(v) for v in json.loads(shadow)),
    )


_NOT_STORED = frozenset({"not_for_event"})


def stored_form(decision: Decision) -> dict[str, Any]:
    """The decision as the delivery keeps it: rules that do not listen to the event are left
    out (their reason says only that), so a big ruleset does not bloat every record."""
    return decision.to_json(leave_out=_NOT_STORED)


def is_quiet(decision: Decision) -> bool:
    """No rule listened to the event (every rule is disabled or waits for other events)."""
    return not decision.actions and all(
        o.status in ("not_for_event", "disabled", "shadow") for o in decision.outcomes
    )


def compact(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
