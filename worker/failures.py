"""What a failed action leaves behind: its attempts, whether it may have happened, and the
dead letter an operator reads.
"""

from __future__ import annotations

from typing import Any

import httpx

from worker.delivery.dlq import Attempt, DeadAction, DeadLetter
from worker.engine.model import AWALCHAT_ACTIONS, Event, PlannedAction
from worker.errors import HelpdeskError
from worker.store import DeliveryRecord

# A request that failed after it may have reached the provider: it may have acted.
_MAYBE_SENT = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)
_ANSWER_LIMIT = 500


def is_ambiguous(exc: HelpdeskError, action: PlannedAction) -> bool:
    """True when a non-idempotent create may have been applied although no answer came.

    AwalChat open/close are safe to repeat (409 means the wanted state holds); HelpWave's
    ticket and comment creates are not, and no endpoint can tell whether one happened.
    """
    if action.kind in AWALCHAT_ACTIONS or exc.request.method != "POST":
        return False
    if exc.request.url.path.endswith("/customers"):
        return False  # find-or-create: safe to repeat
    return exc.response is None and isinstance(exc.__cause__, _MAYBE_SENT)


def attempt_record(exc: Exception, now: float) -> dict[str, Any]:
    """One attempt for the dead-letter record: status and answer, never a header or secret."""
    record: dict[str, Any] = {"at": now, "error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, HelpdeskError) and exc.response is not None:
        record["status"] = exc.response.status_code
        try:
            record["answer"] = exc.response.text[:_ANSWER_LIMIT]
        except (httpx.ResponseNotRead, UnicodeDecodeError):
            record["answer"] = ""
    return record


def event_excerpt(event: Event) -> dict[str, Any]:
    """What a replay of an action needs of its event, and no more: the name, the time and the
    fields actions read (the conversation and the customer's phone). Rule templates were
    filled when the action was planned, so the raw body need not outlive its retention."""
    data = event.payload.get("data")
    kept = {}
    if isinstance(data, dict):
        kept = {k: data[k] for k in ("conversation_id", "from", "phone_number") if k in data}
    excerpt: dict[str, Any] = {"event": event.name, "data": kept}
    if "timestamp" in event.payload:
        excerpt["timestamp"] = event.payload["timestamp"]
    return excerpt


def dead_letter(
    record: DeliveryRecord,
    event: Event,
    action: PlannedAction,
    attempts: list[dict[str, Any]],
    reason: str,
    *,
    now: float,
) -> DeadLetter:
    """The dead letter of `action` of `record`, with every attempt's status and answer: all a
    replay needs, so it does not depend on the delivery record outliving its retention."""
    return DeadLetter(
        created_at=now,
        delivery_id=record.delivery_id,
        conversation=record.conversation,
        event=event_excerpt(event),
        action=DeadAction(
            kind=action.kind, params=dict(action.params), rule=action.rule, index=action.index
        ),
        idempotency_key=f"{record.delivery_id}:{action.key}",
        reason=reason,
        attempts=[
            Attempt(
                at=float(a["at"]),
                status=a.get("status"),
                answer=str(a.get("answer") or a.get("message") or a.get("error", "")),
            )
            for a in attempts
        ],
    )
