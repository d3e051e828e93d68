"""Dead letters: the list (filter by reason and action), one letter with its attempts and
audit, replay or drop one, or every letter matching a filter after a preview of how many.

Replays go through `worker.processing.failures.replay_one`, the path of `ticket-worker dlq
replay`. The list reads the index newest first from a cursor and at most LIST_WINDOW letters
per page; a bulk preview counts every match (the queue holds at most DLQ_MAX letters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from worker.console import audit
from worker.console.app import Console, action, page
from worker.console.session import Session
from worker.delivery.dlq import DeadLetter, DeadLetterQueue
from worker.processing.failures import replay_one
from worker.storage import keys

PAGE_SIZE = 50
CHUNK = 500
LIST_WINDOW = 2_000


def _matcher(reason: str, kind: str) -> Callable[[DeadLetter], bool]:
    reason = reason.lower()

    def matches(letter: DeadLetter) -> bool:
        return (not reason or reason in letter.reason.lower()) and (
            not kind or kind in (letter.action.kind, letter.action.rule)
        )

    return matches


def _walk(console: Console, cursor: tuple[float, str] | None) -> Iterator[DeadLetter]:
    """Letters newest first, strictly after `cursor` (created_at, id), in chunks."""
    client = console.redis
    while True:
        top = repr(cursor[0]) if cursor else "+inf"
        rows = cast(
            list[tuple[bytes, float]],
            client.zrevrangebyscore(
                keys.DLQ_INDEX, top, "-inf", start=0, num=CHUNK, withscores=True
            ),
        )
        ids: list[str] = []
        for member, score in rows:
            letter_id = member.decode()
            if cursor and score == cursor[0] and letter_id >= cursor[1]:
                continue  # equal times: members come in reverse id order
            ids.append(letter_id)
            cursor = (score, letter_id)
        if not ids:
            return
        for raw in client.hmget(keys.DLQ, ids):
            if raw is not None:
                yield DeadLetter.from_json(raw)


def _cursor(text: str | None) -> tuple[float, str] | None:
    if not text or "_" not in text:
        return None
    score, _, letter_id = text.partition("_")
    try:
        return float(score), letter_id
    except ValueError:
        return None


def matching_ids(console: Console, reason: str, kind: str) -> list[str]:
    """Every queued letter matching the filter (bounded by DLQ_MAX)."""
    matches = _matcher(reason, kind)
    return [letter.id for letter in _walk(console, None) if matches(letter)]


def routes(console: Console) -> list[BaseRoute]:
    def queue() -> DeadLetterQueue:
        s = console.settings
        return DeadLetterQueue(console.redis, max_letters=s.dlq_max, retention=s.dlq_retention)

    def letters(request: Request, session: Session) -> Response:
        q = request.query_params
        reason, kind = q.get("reason", "").strip(), q.get("action", "").strip()
        matches = _matcher(reason, kind)
        found: list[DeadLetter] = []
        scanned, more = 0, None
        for letter in _walk(console, _cursor(q.get("before"))):
            scanned += 1
            if matches(letter):
                found.append(letter)
            if len(found) == PAGE_SIZE or scanned == LIST_WINDOW:
                more = f"{letter.created_at!r}_{letter.id}"
                break
        return console.render(
            request,
            "letters.html",
            session,
            letters=found,
            more=more,
            reason=reason,
            kind=kind,
            scanned=scanned,
            window=LIST_WINDOW,
            filtered=bool(reason or kind),
            total=queue().count(),
        )

    def letter(request: Request, session: Session) -> Response:
        letter_id = request.path_params["letter_id"]
        queued = queue().get(letter_id)
        kept, events = audit.read(console.redis, letter_id)
        shown = queued or kept
        if shown is None:
            return console.refuse(request, session, 404, f"no dead letter {letter_id}")
        return console.render(
            request, "letter.html", session, letter=shown, queued=queued is not None, audit=events
        )

    def act(request: Request, session: Session) -> Response:
        letter_id = request.path_params["letter_id"]
        op = request.path_params["op"]
        note = str(request.state.form.get("note") or "")
        _one(console, queue(), letter_id, op, session, note)
        return RedirectResponse(f"/dead-letters/{letter_id}", status_code=303)

    def bulk_preview(request: Request, session: Session) -> Response:
        q = request.query_params
        reason, kind = q.get("reason", "").strip(), q.get("action", "").strip()
        op = q.get("op", "replay")
        ids = matching_ids(console, reason, kind)
        return console.render(
            request, "bulk.html", session, op=op, reason=reason, kind=kind, count=len(ids)
        )

    def bulk(request: Request, session: Session) -> Response:
        form = request.state.form
        op = str(form.get("op"))
        reason, kind = str(form.get("reason") or ""), str(form.get("action") or "")
        note = str(form.get("note") or "")
        if op not in ("replay", "drop"):
            return console.refuse(request, session, 400, "op must be replay or drop")
        done = sum(
            _one(console, queue(), i, op, session, note)
            for i in matching_ids(console, reason, kind)
        )
        return console.render(request, "bulk_done.html", session, op=op, done=done)

    return [
        Route("/dead-letters", page(console, letters), methods=["GET"]),
        Route("/dead-letters/bulk", page(console, bulk_preview), methods=["GET"]),
        Route("/dead-letters/bulk", action(console, bulk, operator=True), methods=["POST"]),
        Route("/dead-letters/{letter_id}", page(console, letter), methods=["GET"]),
        Route(
            "/dead-letters/{letter_id}/{op:str}",
            action(console, act, operator=True),
            methods=["POST"],
        ),
    ]


def _one(
    console: Console, queue: DeadLetterQueue, letter_id: str, op: str, session: Session, note: str
) -> bool:
    """Replay or drop one letter and record it; True when it took effect."""
    letter = queue.get(letter_id)
    if letter is None:
        return False
    if op == "replay":
        retention = console.settings.state_retention
        done = bool(replay_one(console.redis, queue, letter_id, retention=retention))
    elif op == "drop":
        done = queue.drop(letter_id)
    else:
        return False
    audit.record(
        console.redis,
        letter,
        audit.event(op, session.role, note, done),
        retention=console.settings.dlq_retention,
    )
    return done
