"""Decisions: the list (newest first, cursor pages, search), one decision, the live tail.

The list reads `worker.storage.decision_index` (never the whole log); one decision is
`describe_delivery`, the record `ticket-worker decisions` and `GET /decisions` show.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from worker.console.app import Console, page
from worker.console.session import Session
from worker.storage import decision_index, keys
from worker.storage.decision_index import LogEntry
from worker.storage.decision_log import describe_delivery
from worker.storage.explanations import RulesetArchive
from worker.storage.records import parse_record

PAGE_SIZE = 50
SEARCH_WINDOW = 5_000  # log entries read per page of a search by rule or event
TAIL_POLL = 1.0


def _conversation_page(
    console: Console, conversation: str, before: str | None
) -> tuple[list[LogEntry], str | None]:
    """A page of one conversation's log (at most DECISION_LOG_CONV_LIMIT ids), newest first,
    after the delivery id `before`."""
    client = console.redis
    log_key = keys.conversation_log(conversation)
    start = 0
    if before:
        found = cast(int | None, client.lpos(log_key, before))
        start = found + 1 if found is not None else 0
    ids = [
        i.decode() for i in cast(list[bytes], client.lrange(log_key, start, start + PAGE_SIZE - 1))
    ]
    pipe = client.pipeline(transaction=False)
    for delivery_id in ids:
        pipe.hgetall(keys.delivery(delivery_id))
    entries = []
    for delivery_id, fields in zip(ids, pipe.execute(), strict=True):
        record = parse_record(delivery_id, fields) if fields else None
        if record is None or record.decision is None:
            continue
        decision = record.decision
        entries.append(
            LogEntry(
                id=f"{int(record.received_at * 1000)}-0",
                delivery_id=delivery_id,
                conversation=conversation,
                event=decision.event,
                rules=decision.matched_rules,
            )
        )
    more = ids[-1] if len(ids) == PAGE_SIZE else None
    return entries, more


def _matcher(rule: str, event: str) -> Callable[[LogEntry], bool]:
    def matches(entry: LogEntry) -> bool:
        return (not event or entry.event == event) and (not rule or rule in entry.rules)

    return matches


def routes(console: Console) -> list[BaseRoute]:
    archive = RulesetArchive(console.redis)  # the rulesets decisions were made with, loaded once

    def decisions(request: Request, session: Session) -> Response:
        q = request.query_params
        conversation = q.get("conversation", "").strip()
        delivery = q.get("delivery", "").strip()
        rule, event = q.get("rule", "").strip(), q.get("event", "").strip()
        before = q.get("before") or None
        if delivery and console.redis.exists(keys.delivery(delivery)):
            return RedirectResponse(f"/decisions/{quote(delivery, safe='')}", status_code=303)
        scanned: int | None = None
        entries: list[LogEntry]
        more: str | None
        if delivery:
            entries, more = [], None
        elif conversation:
            entries, more = _conversation_page(console, conversation, before)
            entries = [e for e in entries if _matcher(rule, event)(e)]
        elif rule or event:
            found = decision_index.search(
                console.redis,
                before=before,
                limit=PAGE_SIZE,
                window=SEARCH_WINDOW,
                matches=_matcher(rule, event),
            )
            entries, more, scanned = found.entries, found.next_cursor, found.scanned
        else:
            entries = decision_index.page(console.redis, before=before, limit=PAGE_SIZE)
            more = entries[-1].id if len(entries) == PAGE_SIZE else None
        query = {"conversation": conversation, "delivery": delivery, "rule": rule, "event": event}
        return console.render(
            request,
            "decisions.html",
            session,
            entries=entries,
            more=more,
            query=query,
            scanned=scanned,
            window=SEARCH_WINDOW,
            first_page=before is None,
        )

    def decision(request: Request, session: Session) -> Response:
        delivery_id = request.path_params["delivery_id"]
        fields = cast(dict[bytes, bytes], console.redis.hgetall(keys.delivery(delivery_id)))
        if not fields:
            return console.refuse(request, session, 404, f"no decision record {delivery_id}")
        record = parse_record(delivery_id, fields)
        described = describe_delivery(record, archive.get)
        return console.render(request, "decision.html", session, d=described, raw=record.raw)

    def tail(request: Request, session: Session) -> Response:
        recent = decision_index.page(console.redis, before=None, limit=20)
        return console.render(request, "tail.html", session, entries=recent)

    def events(request: Request, session: Session) -> Response:
        start = request.headers.get("last-event-id") or decision_index.newest_id(console.redis)
        return StreamingResponse(
            _stream(console, request, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return [
        Route("/decisions", page(console, decisions), methods=["GET"]),
        Route("/decisions/{delivery_id}", page(console, decision), methods=["GET"]),
        Route("/tail", page(console, tail), methods=["GET"]),
        Route("/tail/events", page(console, events), methods=["GET"]),
    ]


def sse_item(entry: LogEntry) -> str:
    """One decision as a server-sent event (JSON data; the page inserts it as text)."""
    data: dict[str, Any] = {
        "id": entry.id,
        "at": entry.decided_at,
        "delivery": entry.delivery_id,
        "conversation": entry.conversation,
        "event": entry.event,
        "rules": list(entry.rules),
    }
    return f"id: {entry.id}\nevent: decision\ndata: {json.dumps(data)}\n\n"


async def _stream(console: Console, request: Request, after: str) -> AsyncIterator[str]:
    """New decisions as they are logged, for `console.tail_seconds` (then the browser
    reconnects with Last-Event-ID)."""
    yield "retry: 2000\n\n"
    deadline = time.monotonic() + console.tail_seconds
    while time.monotonic() < deadline:
        entries = await run_in_threadpool(
            decision_index.newer, console.redis, after=after, limit=100
        )
        for entry in entries:
            yield sse_item(entry)
            after = entry.id
        if not entries:
            yield ": idle\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(TAIL_POLL)
