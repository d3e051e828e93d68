"""`ticket-worker console [--host H] [--port P]`: the operators' web page (worker.console),
on its own port (default 127.0.0.1:8001), never the public webhook port.

With neither ADMIN_TOKEN nor VIEWER_TOKEN set it refuses to start: nobody could sign in.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import redis

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
    from worker.ops.explain_state import parse_state
    from worker.ops.rule_commands import event_from, render_decision

    event = event_from(raw, "the pasted event")
    now = event.timestamp or datetime.now(UTC)
    decision = evaluate(ruleset, event, parse_state(state_words, ruleset), now=now)
    return render_decision(decision, would=True)


def shadow_report_rows(
    client: redis.Redis, rules: Callable[[], Ruleset]
) -> Callable[[], list[dict[str, Any]]]:
    """The shadow page's rows: `ticket-worker shadow-report` for the last 24 h, one row per
    shadow rule (the same report, `worker.ops.shadow_report`)."""
    from worker.ops.shadow_report import build_shadow_report

    def rows() -> list[dict[str, Any]]:
        reports = build_shadow_report(client, rules(), since=timedelta(hours=24), now=time.time())
        return [
            {
                "rule": r.rule,
                "where": f"{r.file}:{r.line}",
                "decided (24 h)": r.decided,
                "matched": r.matched,
                "would have acted": r.acted,
                "would have": ", ".join(f"{kind} {n}" for kind, n in sorted(r.would.items())),
                "disagrees with live": "; ".join(
                    f"{d.count}x {d.description} (e.g. "
                    + ", ".join(f"conversation {c} delivery {i}" for c, i in d.examples)
                    + ")"
                    for d in r.disagreements
                ),
            }
            for r in reports
        ]

    return rows


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
    rules = rule_source(settings, client)
    app = create_console_app(
        settings,
        client,
        rules=rules,
        explain=explain_text,
        shadow_rows=shadow_report_rows(client, rules.current),
    )
    print(f"console: http://{args.host}:{args.port}/", flush=True)
    serve(app, host=args.host, port=args.port, read_timeout=settings.receiver_read_timeout_seconds)
    return 0


def add_commands(add: AddCommand) -> None:
    """Register `console` on the main parser."""
    console = add("console", _console, "serve the operators' web page")
    console.add_argument("--host", default="127.0.0.1")
    console.add_argument("--port", type=int, default=DEFAULT_PORT)
