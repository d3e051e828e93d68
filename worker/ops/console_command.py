"""`ticket-worker console [--host H] [--port P]`: the operators' web page (worker.console),
on its own port (default 127.0.0.1:8001), never the public webhook port.

With neither ADMIN_TOKEN nor VIEWER_TOKEN set it refuses to start: nobody could sign in.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from worker.engine import Ruleset, evaluate
from worker.errors import ConfigError
from worker.settings import Settings

AddCommand = Callable[..., argparse.ArgumentParser]
DEFAULT_PORT: Final = 8001
OFF_MESSAGE: Final = (
    "the console is off: set ADMIN_TOKEN (operator) or VIEWER_TOKEN (read-only) to sign in with"
)


def console_enabled(settings: Settings) -> bool:
    """True when someone can sign in (ADMIN_TOKEN or VIEWER_TOKEN is set)."""
    return settings.admin_token is not None or settings.viewer_token is not None


def explain_text(ruleset: Ruleset, raw: bytes, state_words: list[str]) -> str:
    """`ticket-worker explain`'s text for a pasted event body: no side effect."""
    from worker.ops.rule_commands import event_from, parse_state, render_decision

    event = event_from(raw, "the pasted event")
    now = event.timestamp or datetime.now(UTC)
    decision = evaluate(ruleset, event, parse_state(state_words, ruleset), now=now)
    return render_decision(decision, would=True)


def shadow_report_rows() -> Callable[[], list[dict[str, Any]]] | None:
    """The shadow page's rows: `worker.ops.shadow_report` once it exists (the seam where
    shadow rules are wired in); None until then (the page lists loaded shadow rules)."""
    return None


def _console(args: argparse.Namespace, settings: Settings) -> int:
    if not console_enabled(settings):
        raise ConfigError(OFF_MESSAGE)
    from worker.console.app import create_console_app
    from worker.logs import configure_logging
    from worker.ops.admin_commands import connect
    from worker.receiver.serving import serve
    from worker.startup import rule_source
    from worker.storage.upgrade import convert_decision_log

    configure_logging()
    client = connect(settings)
    convert_decision_log(client)
    app = create_console_app(
        settings,
        client,
        rules=rule_source(settings, client),
        explain=explain_text,
        shadow_rows=shadow_report_rows(),
    )
    print(f"console: http://{args.host}:{args.port}/", flush=True)
    serve(app, host=args.host, port=args.port, read_timeout=settings.receiver_read_timeout_seconds)
    return 0


def add_commands(add: AddCommand) -> None:
    """Register `console` on the main parser."""
    console = add("console", _console, "serve the operators' web page")
    console.add_argument("--host", default="127.0.0.1")
    console.add_argument("--port", type=int, default=DEFAULT_PORT)
