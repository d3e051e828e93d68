"""Engine benchmark: a 200-rule ruleset through `evaluate`, against hand-written Python.

    .venv/bin/python -m bench.engine [--events 4000] [--repeat 9] [--no-write]

The ruleset is generated from a table of rule specs (four files of 50 rules, one per
AwalChat event, a realistic mix of operators, `any`/`not`, `ticket:` and one file in
`first_match` mode). The baseline is what a programmer would write for the same 200 rules:
one Python function of straight-line `if`s over the decoded payload (built from the same
table, one hand-written snippet per kind of rule), planning the same actions but explaining
nothing. Both decide the same events in the same run; their planned actions are compared,
and the engine's explanations checked complete, before timing. The headline is the worker's
real path: `evaluate` plus the JSON the worker stores per event (the decision's compact
stored form and the state after; rule outcomes are explained on read), against the
hand-written function plus its actions as JSON; the parts of the path are timed too. Also
measures the memory a loaded ruleset holds (tracemalloc). Writes the `## Engine` section
(`bench.engine_report`).
"""

from __future__ import annotations

import argparse
import random
import re
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.engine_paths import time_paths
from bench.engine_report import render
from bench.report import write_section
from worker.engine import Ruleset, evaluate, load_ruleset_from_texts
from worker.engine.model import ConversationState, Event
from worker.storage.records import compact, stored_form

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
RULES_PER_FILE = 50
FILES = (
    ("10-received.yaml", "message.received", "all"),
    ("20-status.yaml", "message.status.updated", "all"),
    ("30-created.yaml", "conversation.created", "first_match"),
    ("40-updated.yaml", "conversation.updated", "all"),
)
WORDS = tuple(f"w{i}" for i in range(60))

Action = tuple[str, str, dict[str, Any]]  # rule, kind, params


@dataclass(frozen=True)
class Spec:
    """One generated rule: its `when:` in YAML and the same test as a Python expression."""

    name: str
    when: str  # YAML flow mapping
    python: str  # expression over d (data), body (casefolded text or None), t (ticket open)
    action: str  # open_ticket | close_ticket | comment


def _specs_for(event: str, file_index: int) -> list[Spec]:
    specs = []
    for n in range(RULES_PER_FILE):
        w, w2 = WORDS[(n * 7 + file_index) % 60], WORDS[(n * 11 + 3) % 60]
        k = n % 8
        name = f"r{file_index}-{n:02d}"
        action = ("comment", "open_ticket", "close_ticket")[n % 3]
        if event == "message.received":
            when, python = (
                (f"{{data.type: text, data.body: {{contains: {w}}}}}",
                 f"ty == 'text' and body is not None and '{w}' in body"),
                (f"{{data.body: {{matches: '(?i)\\b{w}\\b'}}}}",
                 f"body is not None and RX['{w}'].search(body) is not None"),
                (f"{{data.body: {{contains_any: [{w}, {w2}]}}}}",
                 f"body is not None and ('{w}' in body or '{w2}' in body)"),
                (f"{{data.from: {{starts_with: '9665{n % 10}'}}}}",
                 f"isinstance(d.get('from'), str) and d['from'].startswith('9665{n % 10}')"),
                (f"{{ticket: open, data.body: {{exists: true}}, data.type: {{in: [text, {w}]}}}}",
                 f"t and body is not None and ty in ('text', '{w}')"),
                (f"{{data.type: image, not: {{data.body: {{contains: {w}}}}}}}",
                 f"ty == 'image' and not (body is not None and '{w}' in body)"),
                ("{any: [{data.body: {starts_with: W}}, {data.body: {ends_with: W}}]}"
                 .replace("W", w),
                 f"body is not None and (body.startswith('{w}') or body.endswith('{w}'))"),
                (f"{{ticket: closed, data.body: {{contains: {w}}}}}",
                 f"not t and body is not None and '{w}' in body"),
            )[k]  # fmt: skip
        elif event == "message.status.updated":
            status = ("read", "delivered", "failed", "sent")[n % 4]
            when, python = (
                (f"{{data.status: {status}}}", f"st == '{status}'"),
                (f"{{data.status: {{in: [{status}, failed]}}}}", f"st in ('{status}', 'failed')"),
                (f"{{data.message_id: {{starts_with: 'wamid.{w}'}}}}",
                 f"isinstance(d.get('message_id'), str) and "
                 f"d['message_id'].lower().startswith('wamid.{w}')"),
                (f"{{data.status: {{not_equals: {status}}}, data.error: {{exists: true}}}}",
                 f"st != '{status}' and d.get('error') is not None"),
            )[k % 4]  # fmt: skip
        elif event == "conversation.created":
            when, python = (
                (f"{{data.phone_number: {{starts_with: '9665{n % 10}{n % 7}'}}}}",
                 f"isinstance(d.get('phone_number'), str) and "
                 f"d['phone_number'].startswith('9665{n % 10}{n % 7}')"),
                (f"{{data.contact_id: {{gt: {n * 200}}}, ticket: closed}}",
                 f"isinstance(d.get('contact_id'), int) and d['contact_id'] > {n * 200} and not t"),
            )[k % 2]  # fmt: skip
        else:
            when, python = (
                (f"{{data.unread_count: {{gte: {n}}}}}",
                 f"isinstance(d.get('unread_count'), int) and d['unread_count'] >= {n}"),
                ("{data.status: closed, ticket: open}", "st == 'closed' and t"),
                (f"{{data.assignee: {{exists: false}}, data.unread_count: {{lt: {n % 5}}}}}",
                 f"d.get('assignee') is None and isinstance(d.get('unread_count'), int) "
                 f"and d['unread_count'] < {n % 5}"),
            )[k % 3]  # fmt: skip
        specs.append(Spec(name, when, python, action))
    return specs


def rule_texts() -> tuple[dict[str, str], list[tuple[str, str, list[Spec]]]]:
    """The generated rule files (name -> YAML) and the specs they were made from."""
    texts = {}
    table = []
    for index, (file, event, mode) in enumerate(FILES):
        specs = _specs_for(event, index)
        table.append((event, mode, specs))
        lines = [f"version: 1\nmode: {mode}\nrules:"]
        for spec in specs:
            then = (
                "[{helpwave.add_comment: {text: '" + spec.name + ": {{ data.body }}'}}]"
                if spec.action == "comment"
                else f"[{spec.action}]"
            )
            lines.append(f"  - name: {spec.name}\n    on: {event}\n")
            lines[-1] += f"    when: {spec.when}\n    then: {then}"
        texts[file] = "\n".join(lines) + "\n"
    return texts, table


def hand_written(table: list[tuple[str, str, list[Spec]]]) -> Callable[..., list[Action]]:
    """The same rules as one plain Python function (straight-line ifs per event)."""
    out = [
        "def decide(payload, ticket_open):",
        "    d = payload.get('data')",
        "    if not isinstance(d, dict): d = {}",
        "    raw = d.get('body')",
        "    body = raw.casefold() if isinstance(raw, str) else None",
        "    ty = d['type'].casefold() if isinstance(d.get('type'), str) else None",
        "    st = d['status'].casefold() if isinstance(d.get('status'), str) else None",
        "    t = ticket_open",
        "    name = payload.get('event')",
        "    actions = []",
    ]
    for event, mode, specs in table:
        out.append(f"    if name == '{event}':")
        if mode == "first_match":
            out.append("        done = False")
        for spec in specs:
            guard = "not done and " if mode == "first_match" else ""
            out.append(f"        if {guard}{spec.python}:")
            if spec.action == "comment":
                text = f"'{spec.name}: ' + (raw if isinstance(raw, str) else '')"
                params = f"{{'text': {text}, 'isFromShop': False}}"
                out.append(f"            actions.append(('{spec.name}', {_COMMENT!r}, {params}))")
            else:
                out.append(f"            actions.append(('{spec.name}', '{spec.action}', {{}}))")
            if mode == "first_match":
                out.append("            done = True")
    out.append("    return actions")
    namespace: dict[str, Any] = {"RX": {w: re.compile(rf"(?i)\b{w}\b") for w in WORDS}}
    exec("\n".join(out), namespace)  # our own generated source, no YAML text in it
    return namespace["decide"]  # type: ignore[no-any-return]


_COMMENT = "helpwave.add_comment"


def sample_events(count: int, seed: int = 7) -> list[tuple[Event, bool]]:
    """A mix of the four events with bodies that match some rules; (event, ticket open)."""
    rng = random.Random(seed)
    vocabulary = [*WORDS[:20], "hello", "my", "order", "is", "late", "please", "help"]
    events = []
    for i in range(count):
        kind = FILES[i % 4][1]
        conversation = 1000 + i % 50
        data: dict[str, Any]
        if kind == "message.received":
            body = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 12)))
            data = {
                "conversation_id": conversation,
                "from": f"9665{rng.randint(0, 9)}{rng.randint(1000000, 9999999)}",
                "type": rng.choice(["text", "text", "text", "image"]),
                "body": body,
            }
        elif kind == "message.status.updated":
            data = {
                "message_id": f"wamid.{rng.choice(WORDS)}xyz",
                "status": rng.choice(["read", "delivered", "sent", "failed"]),
            }
        elif kind == "conversation.created":
            data = {
                "conversation_id": conversation,
                "contact_id": rng.randint(0, 12000),
                "phone_number": f"9665{rng.randint(0, 99999999):08d}",
            }
        else:
            data = {
                "conversation_id": conversation,
                "status": rng.choice(["open", "closed"]),
                "unread_count": rng.randint(0, 60),
            }
        payload = {"event": kind, "timestamp": "2024-05-14T09:30:00Z", "data": data}
        cid = data.get("conversation_id")
        event = Event(kind, payload, NOW, None if cid is None else str(cid))
        events.append((event, rng.random() < 0.5))
    return events


def engine_actions(ruleset: Ruleset, event: Event, ticket_open: bool) -> list[Action]:
    decision = evaluate(ruleset, event, ConversationState(ticket_open=ticket_open), now=NOW)
    return [(a.rule, a.kind, dict(a.params)) for a in decision.actions]


def assert_explained(ruleset: Ruleset, event: Event, ticket_open: bool) -> None:
    """Every rule has its outcome, and every miss its first failing condition."""
    decision = evaluate(ruleset, event, ConversationState(ticket_open=ticket_open), now=NOW)
    assert len(decision.outcomes) == len(ruleset.rules)
    assert decision.matched_rules == tuple(
        o.rule for o in decision.outcomes if o.status == "matched"
    )
    assert all(o.failure is not None for o in decision.outcomes if o.status == "not_matched")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    texts, table = rule_texts()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    ruleset = load_ruleset_from_texts(texts)
    ruleset.plan  # noqa: B018 - built on first use; count it in the ruleset's memory
    after = tracemalloc.take_snapshot()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(ruleset.rules) == 200

    decide = hand_written(table)
    events = sample_events(args.events)
    listening = sum(len(ruleset.plan.for_event(e.name)[1]) for e, _ in events) / len(events)
    matched = 0
    for event, ticket_open in events:
        ours = engine_actions(ruleset, event, ticket_open)
        theirs = decide(event.payload, ticket_open)
        assert ours == theirs, (event.payload, ours, theirs)
        matched += len(ours)
        assert_explained(ruleset, event, ticket_open)

    rates = time_paths(ruleset, decide, events, args.repeat, NOW)
    forms = [
        stored_form(evaluate(ruleset, e, ConversationState(ticket_open=o), now=NOW))
        for e, o in events
    ]
    size = sum(len(compact(form)) for form in forms) / len(forms)
    report = render(rates, held, peak, listening, matched, size, args)
    print(report)
    if not args.no_write:
        write_section(report)


if __name__ == "__main__":
    main()
