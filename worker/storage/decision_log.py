"""The decision log as people read it: what matched, what was done and why.

The records live on the deliveries (worker.storage.conversations); the log is the bounded
stream of recent decisions (worker.storage.decision_index) and a list per conversation.
`ticket-worker decisions`, `GET /decisions` and the console all show `describe_delivery`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis.asyncio

from worker.engine import Ruleset
from worker.engine.shadow import ShadowVerdict, describe_difference
from worker.storage import keys
from worker.storage.decision_index import parse_entries
from worker.storage.explanations import RulesetArchive, explain_decision
from worker.storage.records import DeliveryRecord, parse_record

Rulesets = Callable[[str], Ruleset | None]
"""The accepted ruleset of a version, or None (`explanations.RulesetArchive.get`)."""


def _none(version: str) -> None:
    return None


def describe_delivery(record: DeliveryRecord, rulesets: Rulesets = _none) -> dict[str, Any]:
    """A decision record: the event, every rule's outcome (as stored, or worked out again
    with the ruleset `rulesets` gives for its version: `explained` says which), each action
    with its outcome and its failed attempts."""
    decision = record.decision
    result: dict[str, Any] = {
        "delivery_id": record.delivery_id,
        "conversation": record.conversation,
        "received_at": record.received_at,
        "dry_run": record.dry_run,
        "decided": decision is not None,
    }
    if decision is None:
        return result
    outcomes, explained = explain_decision(
        record, None if decision.decided_at is None else rulesets(decision.ruleset_version)
    )
    result.update(
        event=decision.event,
        ruleset_version=decision.ruleset_version,
        matched=list(decision.matched_rules),
        explained=explained,
        rules=[{"rule": o.rule, "status": o.status, "reason": o.reason} for o in outcomes],
        actions=[
            {
                "rule": a.rule,
                "action": a.kind,
                "params": dict(a.params),
                "skip_reason": a.skip_reason,
                "outcome": dict(record.done.get(a.key, {"result": "pending"})),
                "attempts": list(record.attempts.get(a.key, [])),
            }
            for a in decision.actions
        ],
        waits=[
            {
                "rule": c.rule,
                "due": None if c.due is None else c.due.isoformat(),
                "change": c.reason,
            }
            for c in decision.wait_changes
        ],
    )
    if record.shadow:
        result["shadow"] = [describe_verdict(v) for v in record.shadow]
    return result


def describe_verdict(verdict: ShadowVerdict) -> dict[str, Any]:
    """A shadow rule's verdict as a decision record shows it: its actions are "would have"
    (never carried out), and where its world differs from what live rules did."""
    return {
        "rule": verdict.rule,
        "shadow": True,
        "status": verdict.status,
        "reason": verdict.reason,
        "would_have": [
            {"action": a.kind, "params": dict(a.params), "skip_reason": a.skip_reason}
            for a in verdict.actions
        ],
        "differs": [describe_difference(d) for d in verdict.differences],
    }


async def recent_decisions(
    client: redis.asyncio.Redis, *, conversation: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest `limit` decision records (of one conversation, when given)."""
    if conversation:
        found = await client.lrange(keys.conversation_log(conversation), 0, limit - 1)
        ids = [i.decode() if isinstance(i, bytes) else i for i in found]
    elif await client.type(keys.DECISIONS) in (b"stream", "stream"):
        raw = await client.xrevrange(keys.DECISIONS, count=limit)
        ids = [entry.delivery_id for entry in parse_entries(raw)]
    else:
        ids = []
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for delivery_id in ids:
        pipe.hgetall(keys.delivery(delivery_id))
    hashes = await pipe.execute()
    records = [
        parse_record(delivery_id, fields)
        for delivery_id, fields in zip(ids, hashes, strict=True)
        if fields
    ]
    archive = RulesetArchive(client)
    kept: dict[str, Ruleset | None] = {}
    for record in records:
        decision = record.decision
        if decision is not None and decision.decided_at is not None:
            version = decision.ruleset_version
            if version not in kept:
                kept[version] = await archive.aget(version)
    return [describe_delivery(record, kept.get) for record in records]


def render_verdict(verdict: dict[str, Any]) -> list[str]:
    """A described shadow verdict in lines: "shadow R: would have open_ticket", ..."""
    lines = []
    for action in verdict["would_have"]:
        skip = f" (skipped: {action['skip_reason']})" if action["skip_reason"] else ""
        lines.append(f"  {action['action']:<24} would have{skip}  <- {verdict['rule']} [shadow]")
    if not verdict["would_have"]:
        lines.append(f"  shadow {verdict['rule']}: {verdict['status']} ({verdict['reason']})")
    lines.extend(f"  shadow {verdict['rule']} differs: {text}" for text in verdict["differs"])
    return lines


def render_delivery(described: dict[str, Any]) -> str:
    """A decision record in a few lines: the rules that matched and each action's outcome."""
    lines = [
        f"decided {described['event']} (conversation {described['conversation']}, "
        f"ruleset {described['ruleset_version']}{', dry-run' if described['dry_run'] else ''})",
        "matched: " + (", ".join(described["matched"]) or "no rule"),
    ]
    for action in described["actions"]:
        outcome = dict(action["outcome"])
        result = outcome.pop("result", "pending")
        extra = ", ".join(f"{k}={v}" for k, v in outcome.items())
        detail = f" ({extra})" if extra else ""
        lines.append(f"  {action['action']:<24} {result}{detail}  <- {action['rule']}")
    for wait in described.get("waits", ()):
        lines.append(f"  wait of {wait['rule']}: {wait['change']}")
    for verdict in described.get("shadow", ()):
        lines.extend(render_verdict(verdict))
    if not described["actions"] and not described.get("waits"):
        lines.append("actions: none (see `ticket-worker explain` for why each rule did not match)")
    return "\n".join(lines)
