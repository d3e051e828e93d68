"""A failed action's whole path: attempt, retry, dead letter, replay.

    attempt_record(exc, now)         what one failed call leaves (status, answer, no secret)
    verdict(exc, action, attempts)   retry at a time (the one retry layer, bounded, jittered),
                                     or give up with a reason: refused (4xx other than
                                     409/429), out of attempts, or ambiguous (a HelpWave create
                                     sent with no answer: it may have been applied)
    dead_letter(record, event, ...)  the self-contained letter an operator reads and replays
    replay_one / replay_all          a letter back into its conversation's inbox, atomically,
                                     as a new delivery `r{letter}` holding only its action

The processor calls these (`worker.processing.processor`); the queue of letters and its
bounds are `worker.delivery.dlq`.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx
import redis

from worker.delivery.dlq import Attempt, DeadAction, DeadLetter, DeadLetterQueue
from worker.delivery.retry import RetryPolicy
from worker.engine.decision import Decision
from worker.engine.envelope import excerpt, parse_webhook
from worker.engine.model import AWALCHAT_ACTIONS, ConversationState, Event, PlannedAction
from worker.errors import (
    HelpdeskError,
    HelpdeskUnavailableError,
    PayloadError,
    RateLimitedError,
    ReplayError,
)
from worker.storage import keys
from worker.storage.records import DeliveryRecord
from worker.storage.wire import drain_message

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


@dataclass(frozen=True)
class Verdict:
    """After a failed attempt: try again at `retry_at`, or give up for `reason`."""

    retry_at: float | None = None
    reason: str = ""


AMBIGUOUS = "no answer after the request was sent: it may have been applied"
REPLAY_VERSION = "replay"  # the ruleset version of a replay's decision: its one action


def verdict(
    exc: Exception,
    action: PlannedAction,
    attempts: list[dict[str, Any]],
    *,
    now: float,
    policy: RetryPolicy,
    rng: random.Random,
) -> Verdict:
    """What to do after `exc` ended the latest of `attempts` (the error tree decides what
    may be retried: timeouts, connection errors, 5xx and 429; the policy how long to wait)."""
    if not isinstance(exc, HelpdeskUnavailableError):
        return Verdict(reason=f"refused: {exc}")
    if is_ambiguous(exc, action):
        return Verdict(reason=AMBIGUOUS)
    retry_after = exc.retry_after if isinstance(exc, RateLimitedError) else None
    elapsed = now - float(attempts[0]["at"])
    delay = policy.delay(len(attempts), retry_after=retry_after, elapsed=elapsed, rng=rng)
    if delay is None:
        return Verdict(reason="out of attempts")
    return Verdict(retry_at=now + delay)


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
        event=excerpt(event),
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


def replay_decision(letter: DeadLetter) -> Decision:
    """The decision a replay carries out: the letter's action, nothing else."""
    action = PlannedAction(
        rule=letter.action.rule,
        index=letter.action.index,
        kind=letter.action.kind,
        params=letter.action.params,
    )
    data = letter.event.get("data")
    conversation = data.get("conversation_id") if isinstance(data, dict) else None
    return Decision(
        ruleset_version=REPLAY_VERSION,
        event=str(letter.event.get("event", "")),
        conversation_id=None if conversation is None else str(conversation),
        outcomes=(),
        actions=(action,),
        state_after=ConversationState(),
    )


def replay_one(
    client: redis.Redis,
    queue: DeadLetterQueue,
    letter_id: str,
    *,
    retention: int = keys.DEFAULT_STATE_RETENTION,
) -> list[str]:
    """Replay one dead letter; return [letter_id], or [] when there is no such letter."""
    letter = queue.get(letter_id)
    if letter is None:
        return []
    if not letter.event:
        letter = replace(letter, event=_excerpt_from_delivery(client, letter))
    done = queue.requeue(
        letter,
        delivery_id=f"r{letter_id}",
        raw=json.dumps(letter.event, separators=(",", ":"), ensure_ascii=False),
        decision=json.dumps(replay_decision(letter).to_json(), separators=(",", ":")),
        now=time.time(),
        retention=retention,
        message=drain_message(letter.conversation),
    )
    return [letter_id] if done else []


def _excerpt_from_delivery(client: redis.Redis, letter: DeadLetter) -> dict[str, object]:
    """The event excerpt of a letter written before letters carried one: from its delivery
    record, which such letters kept."""
    raw = client.hget(keys.delivery(letter.delivery_id), "raw")
    try:
        event = parse_webhook(raw) if isinstance(raw, bytes) else None
    except PayloadError:
        event = None
    if not isinstance(event, Event):
        raise ReplayError(f"dead letter {letter.id}: its event is gone; drop it")
    return excerpt(event)


def replay_all(
    client: redis.Redis, queue: DeadLetterQueue, *, retention: int = keys.DEFAULT_STATE_RETENTION
) -> list[str]:
    """Replay every dead letter, oldest first; return the ids replayed."""
    replayed: list[str] = []
    for letter in reversed(queue.list(limit=queue.count() or 1)):
        replayed += replay_one(client, queue, letter.id, retention=retention)
    return replayed
