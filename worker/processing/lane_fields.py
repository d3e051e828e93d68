"""What a lane writes of a conversation's state, and which lane an action belongs to.

Decisions write the projected state; a lane writes only what an outcome teaches
(worker.processing.lanes): `taught` says which fields, merged into the stored state with the
outcome (worker.storage.conversations `complete`).
"""

from __future__ import annotations

from typing import Any, Final

from worker.engine.model import AWALCHAT_ACTIONS, ConversationState, PlannedAction
from worker.processing.failures import REPLAY_VERSION
from worker.storage import keys
from worker.storage.records import DeliveryRecord

AWALCHAT_LANE: Final = "a"
HELPWAVE_LANE: Final = "h"


def destination(kind: str) -> str:
    """The lane letter of an action kind: AWALCHAT_LANE or HELPWAVE_LANE."""
    return AWALCHAT_LANE if kind in AWALCHAT_ACTIONS else HELPWAVE_LANE


def lane_member(kind: str, conversation: str) -> str:
    """The lane that carries out actions of `kind` for `conversation`."""
    return keys.lane_member(destination(kind), conversation)


_LANE_FIELDS = ("helpwave_ticket_id", "helpwave_ticket_planned")


def taught(
    record: DeliveryRecord,
    action: PlannedAction,
    before: ConversationState,
    after: ConversationState,
) -> dict[str, Any]:
    """What a successful action teaches the stored state (the fields a lane writes): a
    HelpWave create's ticket id; a replayed AwalChat open or close, the ticket's state
    (a decision projected it for any other)."""
    if action.kind in AWALCHAT_ACTIONS:
        replayed = record.decision is not None and record.decision.ruleset_version == REPLAY_VERSION
        return {"ticket_open": after.ticket_open} if replayed else {}
    old, new = before.to_json(), after.to_json()
    return {f: new[f] for f in _LANE_FIELDS if new[f] != old[f]}
