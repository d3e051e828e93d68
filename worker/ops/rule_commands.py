"""Commands for the people who own the rule files: `check`, `test`, `explain`, `schema`
(`diff` is `worker.ops.diff_command`).

They are pure: they read files and print; they touch no queue, Redis or helpdesk.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from textwrap import indent

from worker.engine import Ruleset, evaluate, load_ruleset, load_ruleset_from_texts
from worker.engine.case_files import find_case_files, is_case_file, load_cases
from worker.engine.cases import CaseResult, describe_action, offset, run_case
from worker.engine.decision import Decision, WaitChange
from worker.engine.envelope import parse_webhook
from worker.engine.json_schema import render as render_schema
from worker.engine.lint import lint_ruleset
from worker.engine.loader import read_rule_texts
from worker.engine.model import Event, PlannedAction
from worker.engine.shadow import decide_shadows
from worker.errors import PayloadError, RuleProblem, RulesError
from worker.ops.explain_state import parse_state
from worker.settings import Settings
from worker.storage.decision_log import describe_verdict, render_verdict

AddCommand = Callable[..., argparse.ArgumentParser]

_STATUS = {
    "matched": "MATCH",
    "not_matched": "no",
    "not_for_event": "other event",
    "disabled": "disabled",
    "shadow": "shadow",
    "cooling_down": "cooling down",
    "stopped": "stopped",
    "after_first_match": "first_match",
    "scheduled": "SCHEDULE",
    "due": "DUE",
    "superseded": "superseded",
    "cancelled": "cancelled",
}


def _rules_path(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.path) if getattr(args, "path", None) else settings.rules_path


def _check(args: argparse.Namespace, settings: Settings) -> int:
    path = _rules_path(args, settings)
    texts = read_rule_texts(path)
    ruleset = load_ruleset_from_texts(texts)  # RulesError -> file:line:column lines, exit 1
    retention = timedelta(seconds=settings.state_retention)
    warnings = lint_ruleset(ruleset, texts, retention=retention)
    for warning in warnings:
        print(warning)
    count = f", {len(warnings)} warning{'s' * (len(warnings) != 1)}" if warnings else ""
    print(f"{path}: {len(ruleset.rules)} rules OK (version {ruleset.version}){count}")
    return 1 if warnings and args.strict else 0


def read_event(path: Path) -> Event:
    """An event from a JSON file (a webhook body); PayloadError when it is not one."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PayloadError(400, f"cannot read {path}: {exc.strerror}") from exc
    return event_from(raw, str(path))


def event_from(raw: bytes, where: str) -> Event:
    try:
        parsed = parse_webhook(raw)
    except PayloadError as exc:
        raise PayloadError(400, f"{where}: not a webhook body: {exc.reason}") from exc
    if not isinstance(parsed, Event):
        raise PayloadError(400, f"{where} is a verification handshake, not an event")
    return parsed


def render_decision(decision: Decision, *, would: bool = False) -> str:
    """The decision as an ops person reads it: every rule and why, then the actions and
    the waits it starts or ends (`would`: said as what would happen, for `explain`)."""
    conversation = decision.conversation_id or "none"
    lines = [
        f"event {decision.event} (conversation {conversation}, ruleset {decision.ruleset_version})"
    ]
    width = max((len(o.rule) for o in decision.outcomes), default=0)
    for outcome in decision.outcomes:
        mark = _STATUS.get(outcome.status, outcome.status)
        where = f"  [{outcome.file}:{outcome.line}]" if outcome.file else ""
        lines.append(f"  {mark:<12} {outcome.rule:<{width}}  {outcome.reason}{where}")
    lines.append("actions:" if decision.actions else "actions: none")
    lines.extend(f"  {action_line(action)}" for action in decision.actions)
    if decision.wait_changes:
        lines.append("waits:")
        lines.extend(f"  {change_line(c, would=would)}" for c in decision.wait_changes)
    return "\n".join(lines)


def change_line(change: WaitChange, *, would: bool = False) -> str:
    """A wait this decision started or ended: "wait of quiet: scheduled for T"; `would`
    says it as `explain` does, with no side effect: "would cancel the wait of quiet: ..."."""
    if not would:
        return f"wait of {change.rule}: {change.reason}"
    verb = "would cancel" if change.due is None else "would schedule"
    return f"{verb} the wait of {change.rule}: {change.reason}"


def action_line(action: PlannedAction) -> str:
    skip = f"  (skipped: {action.skip_reason})" if action.skip_reason else ""
    return describe_action(action) + skip


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    ruleset: Ruleset = load_ruleset(_rules_path(args, settings))
    event = read_event(Path(args.event))
    now = datetime.fromisoformat(args.now) if args.now else (event.timestamp or datetime.now(UTC))
    state = parse_state(args.state, ruleset)
    decision = evaluate(ruleset, event, state, now=now)
    views = dict.fromkeys(ruleset.shadow_rules, state)  # each shadow view starts as given
    shadows = decide_shadows(ruleset, event, decision, views, now=now)
    if args.json:
        data = decision.to_json()
        if shadows:
            data["shadow"] = [v.to_json() for v in shadows]
        print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        print(render_decision(decision, would=True))
        for verdict in shadows:
            print("\n".join(render_verdict(describe_verdict(verdict))))
    return 0


def case_targets(path: Path, rules: Path | None) -> tuple[Path, list[Path]]:
    """(the ruleset to load, the cases files to run) for `ticket-worker test PATH`."""
    if path.is_file() and is_case_file(path):
        return rules or path.parent.parent, [path]
    if path.is_file():
        return rules or path.parent, find_case_files(path.parent / "tests")
    files = find_case_files(path)
    if files and all(is_case_file(f) for f in files):
        return rules or path.parent, files
    return rules or path, find_case_files(path / "tests")


def _test(args: argparse.Namespace, settings: Settings) -> int:
    target = Path(args.target) if args.target else settings.rules_path
    rules_path, files = case_targets(target, Path(args.path) if args.path else None)
    ruleset = load_ruleset(rules_path)
    if not files:
        print(f"no cases files for {target} (expected them in {rules_path / 'tests'}/*.yaml)")
        return 1
    problems: list[RuleProblem] = []
    cases = []
    for file in files:
        try:
            cases.extend(load_cases(file))
        except RulesError as exc:
            problems.extend(exc.problems)
    if problems:
        raise RulesError(problems)
    results = [run_case(ruleset, case) for case in cases]
    failed = [result for result in results if not result.passed]
    for result in results:
        print(f"{'ok  ' if result.passed else 'FAIL'} {result.case.where}  {result.case.name}")
    for result in failed:
        print(f"\nFAIL {result.case.where}  {result.case.name}")
        print(render_failure(result))
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed (ruleset {rules_path})")
    return 1 if failed else 0


def render_failure(result: CaseResult) -> str:
    """Expected against actual (with their times in a run through time), then the
    explanation of every rule at every step."""
    case = result.case

    def actual(at: timedelta, line: str) -> str:
        return f"    at {offset(at)}  {line}" if case.timed else f"    {line}"

    lines = ["  expected:"]
    lines += [f"    {want.describe()}" for want in case.expect] or ["    (no action)"]
    lines.append("  actual:")
    done = result.timed_carried_out
    lines += [actual(at, describe_action(a)) for at, a in done] or ["    (no action)"]
    if case.skipped is not None or result.skipped:
        if case.skipped is not None:
            lines.append("  expected skipped:")
            lines += [f"    {want.describe()}" for want in case.skipped] or ["    (none)"]
        lines.append("  actually skipped:")
        skipped = result.timed_skipped
        lines += [actual(at, action_line(a)) for at, a in skipped] or ["    (none)"]
    lines.append("  why:")
    for step in result.steps:
        if case.timed:
            lines.append(f"    at {offset(step.moment - case.now)}: {step.describe()}")
        lines.append(indent(render_decision(step.decision), "    "))
    return "\n".join(lines)


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    print(render_schema(), end="")
    return 0


_TEST_HELP = """\
PATH is one of:
  a rules folder (rules)            its ruleset, and the cases in PATH/tests/*.yaml
  a rule file (rules/20-x.yaml)     its folder's ruleset and cases (rules act together)
  a cases folder (rules/tests)      every *.yaml in it, against the ruleset of its parent
  a cases file (rules/tests/x.yaml) that file, against the ruleset of its folder's parent
Default: RULES_PATH. --rules picks the ruleset explicitly.

A case gives an event (inline, or a JSON file relative to the cases file), a starting
state, a time, and `expect:` the actions carried out, in order ([] for none). An expected
action written as a name (open_ticket) checks the kind only; written with params
(helpwave.add_comment: {text: hi, isFromShop: false, Channel: Helpwave}) it checks them
exactly. Skipped actions (open while open, ...) are not in `expect`; `skipped:` lists them
when a case wants to check them too. See worker/engine/cases.py for the whole format.
Exit 1 when any case fails."""


def add_commands(add: AddCommand) -> None:
    """Register check, test, explain and schema on the main parser."""
    check = add("check", _check, "validate rule files (exit 1 with file:line:column errors)")
    check.add_argument("path", nargs="?", help="a rule file or folder (default RULES_PATH)")
    check.add_argument("--strict", action="store_true", help="fail (exit 1) on lint warnings too")

    test = add("test", _test, "run the ruleset's regression cases (rules/tests/*.yaml)")
    test.formatter_class = argparse.RawDescriptionHelpFormatter
    test.epilog = _TEST_HELP
    test.add_argument("target", nargs="?", metavar="PATH", help="see below (default RULES_PATH)")
    test.add_argument("--rules", dest="path", help="the rule file or folder to test")

    explain = add("explain", _explain, "show which rules match an event and why; no side effect")
    explain.add_argument("event", help="a webhook body (JSON file)")
    explain.add_argument("--rules", dest="path", help="rule file or folder (default RULES_PATH)")
    explain.add_argument(
        "--state",
        action="append",
        default=[],
        help="starting state: open | closed | helpwave=ID | cooldown=RULE:ISO-UNTIL | "
        "wait=RULE:ISO-DUE (a pending wait) | last_message=ISO (the last message.received) "
        "(repeatable)",
    )
    explain.add_argument("--now", help="ISO-8601 time of evaluation (default: the event's)")
    explain.add_argument("--json", action="store_true", help="machine-readable output")

    add("schema", _schema, "print the JSON Schema of rule files (worker/rules.schema.json)")


__all__ = ["action_line", "add_commands", "event_from", "read_event", "render_decision"]
