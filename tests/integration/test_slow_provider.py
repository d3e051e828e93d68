"""A slow provider never lets a second worker into a lane whose calls are in flight.

Every call of the fakes takes 9 s (under the 10 s client timeout), and one event makes seven
calls: one to AwalChat, six to HelpWave (54 s, close to the lane lock's TTL and the broker's
visibility timeout, 60 s each). Two worker processes run; the calls of each lane (one per
conversation and destination) must still be made one after the other, each exactly once,
and the AwalChat lane does not wait for the HelpWave one.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment
from tests.integration.test_faults import settled

pytestmark = pytest.mark.integration

DELAY = 9.0
COMMENTS = ("one", "two", "three", "four")
RULES = (
    "version: 1\n"
    "rules:\n"
    "  - name: many-calls\n"
    "    on: message.received\n"
    "    then:\n"
    "      - open_ticket\n"
    "      - helpwave.create_ticket: {Channel: Helpwave, name: 'WhatsApp {{ data.from }}'}\n"
    + "".join(f"      - helpwave.add_comment: {{text: '{c}'}}\n" for c in COMMENTS)
)


def test_seven_nine_second_calls_of_one_event_are_made_once_each_and_never_overlap(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    fake_providers.control.configure(awalchat={"delay": DELAY}, helpwave={"delay": DELAY})
    body = json.dumps(
        {
            "event": "message.received",
            "data": {"conversation_id": 4242, "from": "966500004242", "body": "help"},
        }
    ).encode()
    with Deployment(
        redis_server.url, env=fake_providers.env(), rules=tmp_path, workers=2, concurrency=1
    ) as dep:
        response = dep.post(body)
        assert response.status_code == 202, response.text
        delivery = response.json()["delivery_id"]
        dep.wait_for(lambda: settled(redis_client, [delivery]), timeout=150, what="all calls")
    calls = sorted(
        (c for c in fake_providers.control.calls() if c.vendor != "unknown"), key=lambda c: c.time
    )
    comments = [json.loads(c.body)["text"] for c in calls if c.path.endswith("/comments")]
    assert comments == list(COMMENTS)
    assert sum(c.path.endswith("/tickets") for c in calls) == 1
    assert len(calls) == 7
    for vendor in ("awalchat", "helpwave"):
        starts = [c.time for c in calls if c.vendor == vendor]
        assert all(b - a >= DELAY - 0.5 for a, b in itertools.pairwise(starts)), starts
    opened = next(c.time for c in calls if c.vendor == "awalchat")
    assert opened < calls[-1].time - DELAY  # made while the HelpWave calls were running
