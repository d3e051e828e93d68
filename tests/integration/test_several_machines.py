"""Several machines on one Redis: two receivers and three worker processes, as separate
processes sharing only a redis-server (free port) and the fake providers.

Webhooks alternate between the receivers. Per conversation the effects happen in the order
the events were accepted; the workers share one rate budget (the fake sees no 429 and never
more calls than its budget in a window of its clock, the windows around the SIGKILL
included); a worker SIGKILLed mid-backlog loses nothing and repeats no effect: what it held
is redone once by the others.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import redis

from tests.fakes.common import CallRecord
from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment
from tests.integration.test_faults import message, settled
from worker.delivery.dlq import DeadLetterQueue

pytestmark = pytest.mark.integration

LIMIT, WINDOW = 10, 2.0
CONVERSATIONS = range(8000, 8016)
SAYS = ("help, it is broken", "thank you", "help again please")  # open, close, open
RULES = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when:
      all:
        - data.body: {contains: help}
        - ticket: closed
    then: [open_ticket]
  - name: close-on-thanks
    on: message.received
    when:
      all:
        - data.body: {contains: thank}
        - ticket: open
    then: [close_ticket]
"""


def effects(calls: list[CallRecord]) -> dict[str, list[str]]:
    """The routes the fake applied, per conversation, in the order it applied them."""
    applied: dict[str, list[str]] = defaultdict(list)
    for call in calls:
        if call.applied:
            applied[call.path.rsplit("/", 1)[-1]].append(json.loads(call.body)["route"])
    return applied


def calls_per_window(calls: list[CallRecord]) -> Counter[int]:
    """Calls the fake received in each window of its clock, whatever it answered."""
    return Counter(math.floor(call.time / WINDOW) for call in calls)


def around_429(calls: list[CallRecord]) -> str:
    """The calls in the windows of the fake's clock around each 429, for the failure."""
    windows = {math.floor(call.time / WINDOW) for call in calls if call.status == 429}
    return "\n".join(
        f"{call.time:.3f} window {math.floor(call.time / WINDOW)} {call.status}"
        for call in calls
        if any(abs(math.floor(call.time / WINDOW) - w) <= 1 for w in windows)
    )


def test_two_receivers_and_three_workers_share_order_budget_and_recovery(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    fake_providers.control.configure(
        awalchat={"limit": LIMIT, "window": WINDOW, "window_alignment": "clock", "delay": 0.1}
    )
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {
        **fake_providers.env(),
        "AWALCHAT_RATE": f"{LIMIT}/{WINDOW:g}s",
        "CONVERSATION_LOCK_SECONDS": "5",
    }
    url = redis_server.url
    with (
        Deployment(url, env=env, rules=tmp_path, workers=3, concurrency=2) as first,
        Deployment(url, env=env, rules=tmp_path, workers=0) as second,
    ):
        ids: list[str] = []
        receivers = (first, second)
        for turn, says in enumerate(SAYS):
            for index, conversation in enumerate(CONVERSATIONS):
                body = message(conversation, says).replace(
                    f'"wamid.{conversation}"'.encode(), f'"wamid.{conversation}.{turn}"'.encode()
                )
                response = receivers[(index + turn) % 2].post(body)
                assert response.status_code == 202, response.text
                ids.append(response.json()["delivery_id"])
        first.wait_for(
            lambda: sum(len(e) for e in effects(fake_providers.control.calls()).values()) >= 12,
            what="some effects",
        )
        first.kill_worker(0)  # mid-backlog: a call of its may be under way
        first.wait_for(lambda: settled(redis_client, ids), timeout=120, what="all settled")

    calls = fake_providers.control.calls("awalchat")
    expected = ["openTicket", "closeTicket", "openTicket"]
    assert effects(calls) == {str(c): expected for c in CONVERSATIONS}
    # One budget for all workers, the SIGKILLed one's call in flight included: no 429 and
    # never more than LIMIT calls in a window of the fake's clock, the windows around the
    # kill too.
    assert Counter(call.status for call in calls)[429] == 0, around_429(calls)
    assert max(calls_per_window(calls).values()) <= LIMIT, calls_per_window(calls)
    assert DeadLetterQueue(redis_client).count() == 0
    assert redis_client.keys("tw:inbox:*") == []
    assert redis_client.keys("tw:lock:*") == []
