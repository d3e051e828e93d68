"""Commands for the people who own the rule files: `check` and `explain`.

Both are pure: they read files and print; they touch no queue, Redis or helpdesk.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from worker.engine import Ruleset, evaluate, load_ruleset
from worker.engine.model import ConversationState, Decision, Event
from worker.errors import PayloadError
from worker.events import parse_webhook
from worker.settings import Settings

AddCommand = Callable[..., argparse.ArgumentParser]


def _rules_path(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.path) if getattr(args, "path", None) else settings.rules_path


def _check(args: argparse.Namespace, settings: Settings) -> int:
    path = _rules_path(args, settings)
    ruleset = load_ruleset(path)  # RulesError -> file:line:column lines, exit 1
    print(f"{path}: {len(ruleset.rules)} rules OK (version {ruleset.version})")
    return 0


def read_event(path: Path) -> Event:
    """An event from a JSON file (a webhook body); PayloadError when it is not one."""
    parsed = parse_webhook(path.read_bytes())
    if not isinstance(parsed, Event):
        raise PayloadError(400, f"{path} is a verification handshake, not an event")
    return parsed


def render_decision(decision: Decision) -> str:
    """The decision as an ops person reads it: every rule, then the actions."""
    lines = [f"event {decision.event} (ruleset {decision.ruleset_version})"]
    width = max((len(o.rule) for o in decision.outcomes), default=0)
    for outcome in decision.outcomes:
        mark = "MATCH" if outcome.status == "matched" else "  -  "
        lines.append(f"  {mark} {outcome.rule:<{width}}  {outcome.reason}")
    if not decision.actions:
        lines.append("actions: none")
    else:
        lines.append("actions:")
        for action in decision.actions:
            params = json.dumps(dict(action.params), ensure_ascii=False) if action.params else ""
            skip = f"  (skipped: {action.skip_reason})" if action.skip_reason else ""
            lines.append(f"  {action.kind} {params}  <- {action.rule}{skip}")
    return "\n".join(lines)


def parse_state(values: list[str]) -> ConversationState:
    """`--state` words: open | closed | helpwave=ID | cooldown=RULE:ISO-UNTIL."""
    state = ConversationState()
    cooldowns = {}
    for value in values:
        if value in ("open", "closed"):
            state = state.evolve(ticket_open=value == "open")
        elif value.startswith("helpwave="):
            state = state.evolve(helpwave_ticket_id=value[9:], helpwave_ticket_open=True)
        elif value.startswith("cooldown="):
            rule, _, until = value[9:].partition(":")
            cooldowns[rule] = datetime.fromisoformat(until)
        else:
            raise PayloadError(
                400, f"--state {value!r}: expected open, closed, helpwave=ID or cooldown=RULE:UNTIL"
            )
    return state.evolve(cooldowns=cooldowns)


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    ruleset: Ruleset = load_ruleset(_rules_path(args, settings))
    event = read_event(Path(args.event))
    now = datetime.fromisoformat(args.now) if args.now else (event.timestamp or datetime.now(UTC))
    decision = evaluate(ruleset, event, parse_state(args.state), now=now)
    if args.json:
        print(json.dumps(decision.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        print(render_decision(decision))
    return 0


def add_commands(add: AddCommand) -> None:
    """Register check and explain on the main parser."""
    check = add("check", _check, "validate rule files (exit 1 with file:line:column errors)")
    check.add_argument("path", nargs="?", help="a rule file or folder (default RULES_PATH)")
    check.add_argument("--strict", action="store_true", help="fail on lint warnings too")

    explain = add("explain", _explain, "show which rules match an event and why; no side effect")
    explain.add_argument("event", help="a webhook body (JSON file)")
    explain.add_argument("--rules", dest="path", help="rule file or folder (default RULES_PATH)")
    explain.add_argument(
        "--state",
        action="append",
        default=[],
        help="starting state: open | closed | helpwave=ID | cooldown=RULE:ISO-UNTIL (repeatable)",
    )
    explain.add_argument("--now", help="ISO-8601 time of evaluation (default: the event's)")
    explain.add_argument("--json", action="store_true", help="machine-readable output")


__all__ = ["add_commands", "sys"]
