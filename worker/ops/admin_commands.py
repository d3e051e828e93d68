"""Operator commands that talk to a running deployment: `send`, `decisions`, `dlq`, `timers`.

They find Redis through REDIS_URL, or the embedded Redis that `ticket-worker up` runs from
this folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from worker.delivery.dlq import DeadLetterQueue
from worker.engine.timing import span
from worker.errors import ConfigError
from worker.ops.embedded_redis import STATE_DIR, known_url
from worker.ops.supervisor import SECRET_FILE, known_receiver
from worker.receiver.signature import sign
from worker.settings import Settings
from worker.storage.clients import sync_redis
from worker.storage.conversations import ConversationStore
from worker.storage.decision_log import describe_delivery, render_delivery
from worker.storage.explanations import RulesetArchive
from worker.storage.records import DeliveryRecord
from worker.storage.timers import pending_waits

DEFAULT_WEBHOOK_URL = "http://127.0.0.1:8000/webhooks/awalchat"
AddCommand = Callable[..., argparse.ArgumentParser]


def connect(settings: Settings) -> redis.Redis:
    """Redis from REDIS_URL (Sentinel included), else the embedded one of a running `up`;
    ConfigError if none."""
    if settings.redis_url:
        return sync_redis(settings.redis_target(), timeout=5)
    url = known_url()
    if url is None:
        raise ConfigError("REDIS_URL is not set and no `ticket-worker up` runs in this folder")
    return sync_redis(url, timeout=5)


def webhook_secret(settings: Settings) -> str:
    """The first configured webhook secret, or the one `up` generated here."""
    if settings.awalchat_webhook_secrets:
        return settings.awalchat_webhook_secrets[0].get_secret_value()
    local = STATE_DIR / SECRET_FILE
    if local.exists():
        return local.read_text().strip()
    raise ConfigError("AWALCHAT_WEBHOOK_SECRETS is not set")


def _send(args: argparse.Namespace, settings: Settings) -> int:
    body = Path(args.file).read_bytes()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Timestamp": timestamp,
        "X-Awal-Signature-256": sign(webhook_secret(settings), body, timestamp),
    }
    url = args.url or known_receiver() or DEFAULT_WEBHOOK_URL
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise ConfigError(f"cannot reach the receiver at {url}: {exc}") from exc
    print(f"{response.status_code} {response.text}")
    if response.status_code != 202 or args.wait <= 0:
        return 0 if response.is_success else 1
    delivery_id = response.json().get("delivery_id")
    client = connect(settings)
    store = ConversationStore(client, retention=settings.state_retention)
    deadline = time.monotonic() + args.wait
    record = store.load(delivery_id)
    while time.monotonic() < deadline and not _settled(record):
        time.sleep(0.2)
        record = store.load(delivery_id)
    if record is None or record.decision is None:
        print(f"not decided within {args.wait:g} s (is a worker running?)", file=sys.stderr)
        return 1
    print(render_delivery(describe_delivery(record, RulesetArchive(client).get)))
    return 0


def _settled(record: DeliveryRecord | None) -> bool:
    if record is None or record.decision is None:
        return False
    return all(a.key in record.done for a in record.decision.actions)


def _decisions(args: argparse.Namespace, settings: Settings) -> int:
    client = connect(settings)
    store = ConversationStore(client)
    ids = store.recent_deliveries(conversation=args.conversation, limit=args.limit)
    records = [r for r in (store.load(i) for i in ids) if r is not None]
    rulesets = RulesetArchive(client).get
    described = [describe_delivery(r, rulesets) for r in records]
    print(json.dumps(described, indent=2, ensure_ascii=False))
    return 0


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    client = connect(settings)
    queue = DeadLetterQueue(client)
    if args.dlq_command == "list":
        letters = queue.list(limit=args.limit)
        if not letters:
            print("the dead-letter queue is empty")
        for letter in letters:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(letter.created_at))
            print(
                f"{letter.id}  {when}  conv={letter.conversation}  {letter.action.kind}"
                f" ({letter.action.rule})  attempts={len(letter.attempts)}  {letter.reason}"
            )
        return 0
    if args.dlq_command == "show":
        found = queue.get(args.id)
        if found is None:
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 1
        print(json.dumps(json.loads(found.to_json()), indent=2, ensure_ascii=False))
        return 0
    if args.dlq_command == "drop":
        if not queue.drop(args.id):
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 1
        print(f"dropped {args.id}")
        return 0
    from worker.processing.failures import replay_all, replay_one

    retention = settings.state_retention
    if args.all:
        replayed = replay_all(client, queue, retention=retention)
    else:
        replayed = replay_one(client, queue, args.id, retention=retention)
    if not replayed:
        print("nothing to replay" if args.all else f"no dead letter {args.id}", file=sys.stderr)
        return 1
    for letter_id in replayed:
        print(f"replaying {letter_id}")
    return 0


def _timers(args: argparse.Namespace, settings: Settings) -> int:
    client = connect(settings)
    waits = pending_waits(client, conversation=args.conversation, limit=args.limit)
    if not waits:
        print("no pending waits")
    now = time.time()
    for pending in waits:
        wait = pending.wait
        left = wait.due.timestamp() - now
        when = f"in {span(left)}" if left > 0 else f"due {span(-left)} ago"
        flags = " (business time)" if wait.business else ""
        flags += " [dry-run]" if pending.view == "dry" else ""
        print(
            f"{wait.due.isoformat(timespec='seconds')}  {when:<16}  "
            f"conversation {pending.conversation}  {wait.rule}{flags}"
        )
    return 0


def add_commands(add: AddCommand) -> None:
    """Register send, decisions, dlq and timers on the main parser."""
    send = add("send", _send, "sign a sample webhook with the configured secret and post it")
    send.add_argument("file", help="a JSON webhook body, e.g. tests/fixtures/webhooks/*.json")
    send.add_argument("--url", help=f"the receiver's webhook URL (default {DEFAULT_WEBHOOK_URL})")
    send.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for the decision (0: don't)"
    )

    decisions = add("decisions", _decisions, "show the stored decision records, newest first")
    decisions.add_argument("--conversation", help="only this conversation id")
    decisions.add_argument("--limit", type=int, default=20)

    dlq = add("dlq", _dlq, "inspect and replay the dead-letter queue")
    sub = dlq.add_subparsers(dest="dlq_command", required=True, metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="dead letters, newest first")
    listing.add_argument("--limit", type=int, default=50)
    sub.add_parser("show", help="one dead letter, whole").add_argument("id")
    sub.add_parser("drop", help="delete one dead letter").add_argument("id")

    timers = add("timers", _timers, "pending timed actions (rules with after:), soonest first")
    timers.add_argument("--conversation", help="only this conversation id")
    timers.add_argument("--limit", type=int, default=50)
    replay = sub.add_parser("replay", help="carry a dead letter's action out again")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?")
    target.add_argument("--all", action="store_true")
