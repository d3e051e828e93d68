"""`create_console_app`: the console's routes, sign-in and the guards every page passes.

Pages are plain `def` handlers (Starlette runs them in its thread pool) over the sync Redis
client the CLI uses. `page` handlers need a session; `action` handlers are POSTs that also
need the console's own origin and the session's CSRF token, and `operator` for a change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

import jinja2
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from worker.console import formatting
from worker.console.session import (
    COOKIE,
    Session,
    SessionSigner,
    clear_cookie,
    csrf_ok,
    same_origin,
    set_cookie,
)
from worker.engine import Ruleset
from worker.settings import Settings

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class RulesView(Protocol):
    """What the console reads of the rules in force (worker.live_rules.RuleSource)."""

    path: Path

    @property
    def version(self) -> str: ...

    @property
    def error(self) -> str | None: ...

    def current(self) -> Ruleset: ...


Explain = Callable[[Ruleset, bytes, list[str]], str]
ShadowRows = Callable[[], list[dict[str, Any]]]


@dataclass
class Console:
    """What every page handler needs; built once by `create_console_app`."""

    settings: Settings
    redis: redis.Redis
    rules: RulesView
    explain: Explain
    shadow_rows: ShadowRows | None
    signer: SessionSigner
    tail_seconds: float
    env: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every value from a webhook is shown escaped
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(formatting.FILTERS)

    def render(
        self, request: Request, name: str, session: Session | None, status: int = 200, **ctx: Any
    ) -> HTMLResponse:
        html = self.env.get_template(name).render(
            request=request, session=session, dry_run=self.settings.dry_run, **ctx
        )
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def refuse(self, request: Request, session: Session | None, status: int, why: str) -> Response:
        return self.render(request, "error.html", session, status=status, why=why)

    def session(self, request: Request) -> Session | None:
        return self.signer.read(request.cookies.get(COOKIE))


Handler = Callable[[Request, Session], Response]
FORM_LIMIT = 4 << 20  # a pasted event of 1 MiB, percent-encoded


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (the console's forms are all plain); {} past
    FORM_LIMIT or not that type."""
    if not request.headers.get("content-type", "").startswith(_FORM_TYPE):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


_FORM_TYPE = "application/x-www-form-urlencoded"


def page(console: Console, handler: Handler) -> Callable[[Request], Response]:
    """A GET page for anyone signed in; others are sent to the sign-in form."""

    def endpoint(request: Request) -> Response:
        session = console.session(request)
        if session is None:
            return RedirectResponse("/signin", status_code=303)
        return handler(request, session)

    return endpoint


def action(
    console: Console, handler: Handler, *, operator: bool
) -> Callable[[Request], Awaitable[Response]]:
    """A POST: own origin, a session, its CSRF token, and the operator role when `operator`."""

    async def endpoint(request: Request) -> Response:
        if not same_origin(request):
            return console.refuse(request, None, 403, "cross-site request refused")
        session = console.session(request)
        if session is None:
            return console.refuse(request, None, 403, "sign in first")
        form = await read_form(request)
        if not csrf_ok(session, form.get("csrf")):
            return console.refuse(request, session, 403, "missing or wrong CSRF token")
        if operator and not session.can_change:
            return console.refuse(request, session, 403, "viewers cannot replay or drop")
        request.state.form = form

        result: Response = await run_in_threadpool(handler, request, session)
        return result

    return endpoint


def _signin_routes(console: Console) -> list[BaseRoute]:
    def form(request: Request) -> Response:
        return console.render(request, "signin.html", None, problem=None)

    async def signin(request: Request) -> Response:
        if not same_origin(request):
            return console.refuse(request, None, 403, "cross-site request refused")
        password = (await read_form(request)).get("password")
        role = console.signer.role_for(password) if isinstance(password, str) else None
        if role is None:
            return console.render(request, "signin.html", None, status=401, problem="wrong token")
        _, cookie = console.signer.issue(role)
        response = RedirectResponse("/", status_code=303)
        set_cookie(response, request, cookie)
        return response

    def signout(request: Request, session: Session) -> Response:
        response = RedirectResponse("/signin", status_code=303)
        clear_cookie(response)
        return response

    return [
        Route("/signin", form, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", action(console, signout, operator=False), methods=["POST"]),
    ]


def create_console_app(
    settings: Settings,
    redis_client: redis.Redis,
    *,
    rules: RulesView,
    explain: Explain,
    shadow_rows: ShadowRows | None = None,
    tail_seconds: float = 300.0,
) -> Starlette:
    """The console for `settings` (ADMIN_TOKEN and/or VIEWER_TOKEN must be set).

    `explain(ruleset, raw_event, state_words)` is `ticket-worker explain`'s text;
    `shadow_rows()` the rows of `ticket-worker shadow-report` (None: not wired yet, the page
    lists the loaded shadow rules); a live tail stream ends after `tail_seconds` (the
    browser reconnects from where it was).
    """
    from worker.console import decision_pages, letter_pages, overview, rule_pages

    signer = SessionSigner(settings)
    if not signer.enabled:
        raise ValueError("the console needs ADMIN_TOKEN or VIEWER_TOKEN")
    console = Console(settings, redis_client, rules, explain, shadow_rows, signer, tail_seconds)
    routes: list[BaseRoute] = [
        *_signin_routes(console),
        *overview.routes(console),
        *decision_pages.routes(console),
        *letter_pages.routes(console),
        *rule_pages.routes(console),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)
