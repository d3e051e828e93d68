"""`ticket-worker diff OLD NEW --events FILE | --recent N`: replay events through two
rulesets and list those whose actions change (worker.engine.ruleset_diff).

`--events` reads files; `--recent` reads the decision log from Redis and writes nothing.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from worker.engine import load_ruleset
from worker.engine.limit_keys import describe_limits
from worker.engine.model import ConversationState
from worker.engine.ruleset_diff import Change, ReplayEvent, diff_rulesets
from worker.errors import PayloadError
from worker.ops.rule_commands import action_line, change_line, event_from
from worker.settings import Settings

AddCommand = Callable[..., argparse.ArgumentParser]


def read_events_file(path: Path) -> list[ReplayEvent]:
    """Events from a JSON array of webhook bodies, JSON lines, or a folder of `*.json`."""
    if path.is_dir():
        return [_replay(f.read_bytes(), f.name) for f in sorted(path.glob("*.json"))]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PayloadError(400, f"cannot read {path}: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if isinstance(document, list):
        bodies = [json.dumps(item).encode() for item in document]
    elif isinstance(document, dict):
        bodies = [text.encode()]
    else:
        bodies = [line.encode() for line in text.splitlines() if line.strip()]
    return [_replay(body, f"{path.name}#{i + 1}") for i, body in enumerate(bodies)]


def _replay(raw: bytes, label: str) -> ReplayEvent:
    event = event_from(raw, label)
    return ReplayEvent(label, event, event.timestamp or datetime.now(UTC))


def recent_events(settings: Settings, count: int) -> list[ReplayEvent]:
    """The last `count` decided events of the decision log, oldest first, with their states."""
    from worker.ops.admin_commands import connect
    from worker.storage.conversations import ConversationStore

    store = ConversationStore(connect(settings))
    items = []
    for delivery_id in reversed(store.recent_deliveries(conversation=None, limit=count)):
        record = store.load(delivery_id)
        if record is None:
            continue  # expired
        try:
            event = event_from(record.raw, delivery_id)
        except PayloadError:
            continue
        now = datetime.fromtimestamp(record.received_at, UTC)
        state = record.state_before or ConversationState()
        items.append(ReplayEvent(delivery_id, event, now, state))
    return items


def _diff(args: argparse.Namespace, settings: Settings) -> int:
    old, new = load_ruleset(Path(args.old)), load_ruleset(Path(args.new))
    if args.events:
        items = read_events_file(Path(args.events))
    else:
        items = recent_events(settings, args.recent)
    changes = diff_rulesets(old, new, items)
    for change in changes:
        print(render_change(change))
    print(f"{len(changes)} of {len(items)} events change (ruleset {old.version} -> {new.version})")
    if old.limits != new.limits:
        print(f"limits: {describe_limits(old.limits)} -> {describe_limits(new.limits)}")
    live = {r.name for r in new.rules if not r.shadow} & set(old.shadow_rules)
    for name in sorted(live):
        print(f"{name}: was shadow, now live")
    return 0


def render_change(change: Change) -> str:
    """One changed event: which, and its actions under each ruleset."""
    event = change.item.event
    lines = [f"{change.item.label}: {event.name} (conversation {event.conversation_id or 'none'})"]
    for side, decision in (("old", change.old), ("new", change.new)):
        quiet = not decision.actions and not decision.wait_changes
        lines.append(f"  {side}:" + (" no action" if quiet else ""))
        lines.extend(f"    {action_line(a)}" for a in decision.actions)
        lines.extend(f"    {change_line(c)}" for c in decision.wait_changes)
    return "\n".join(lines)


def add_commands(add: AddCommand) -> None:
    """Register diff on the main parser."""
    diff = add("diff", _diff, "replay events through two rulesets; list those whose actions change")
    diff.add_argument("old", help="the current rule file or folder")
    diff.add_argument("new", help="the edited rule file or folder")
    source = diff.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--events",
        help="a JSON array of webhook bodies, JSON lines, or a folder of *.json; each "
        "conversation's state is carried from event to event, from a conversation never seen",
    )
    source.add_argument(
        "--recent",
        type=int,
        metavar="N",
        help="the last N events of the decision log (Redis), each from the state it was decided in",
    )
