"""Rules (files, version, refused change, "paste an event" -> explain), timers and shadow
rules: the content of `ticket-worker check`, `explain`, `timers` and `shadow-report`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from worker.console.app import Console, action, page
from worker.console.session import Session
from worker.errors import TicketWorkerError
from worker.storage.timers import pending_waits

EXPLAIN_LIMIT = 1 << 20  # like the receiver's body limit
TIMERS_LIMIT = 200


def loaded_shadow_rules(console: Console) -> list[dict[str, Any]]:
    """The loaded rules marked `shadow: true` (none until rules carry the key)."""
    return [
        {"rule": r.name, "file": r.file, "line": r.line}
        for r in console.rules.current().rules
        if getattr(r, "shadow", False)
    ]


def routes(console: Console) -> list[BaseRoute]:
    def rules_page(
        request: Request, session: Session, *, event: str = "", state: str = "", **extra: Any
    ) -> Response:
        ruleset = console.rules.current()
        return console.render(
            request,
            "rules.html",
            session,
            ruleset=ruleset,
            path=console.rules.path,
            version=console.rules.version,
            refused=console.rules.error,
            event=event,
            state=state,
            explained=extra.get("explained"),
            problem=extra.get("problem"),
        )

    def rules(request: Request, session: Session) -> Response:
        return rules_page(request, session)

    def explain(request: Request, session: Session) -> Response:
        form = request.state.form
        event = str(form.get("event") or "")
        state = str(form.get("state") or "")
        if len(event) > EXPLAIN_LIMIT:
            return rules_page(request, session, problem="the event is over 1 MiB")
        try:
            text = console.explain(console.rules.current(), event.encode(), state.split())
        except TicketWorkerError as exc:
            return rules_page(request, session, event=event, state=state, problem=str(exc))
        return rules_page(request, session, event=event, state=state, explained=text)

    def timers(request: Request, session: Session) -> Response:
        conversation = request.query_params.get("conversation", "").strip() or None
        waits = pending_waits(console.redis, conversation=conversation, limit=TIMERS_LIMIT)
        return console.render(
            request, "timers.html", session, waits=waits, conversation=conversation or ""
        )

    def shadow(request: Request, session: Session) -> Response:
        wired = console.shadow_rows is not None
        rows = console.shadow_rows() if console.shadow_rows is not None else []
        return console.render(
            request,
            "shadow.html",
            session,
            wired=wired,
            rows=rows,
            loaded=loaded_shadow_rules(console),
        )

    return [
        Route("/rules", page(console, rules), methods=["GET"]),
        Route("/rules/explain", action(console, explain, operator=False), methods=["POST"]),
        Route("/timers", page(console, timers), methods=["GET"]),
        Route("/shadow", page(console, shadow), methods=["GET"]),
    ]
