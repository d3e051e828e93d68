"""What operators and rule editors rely on, on real processes: Redis going away and coming
back empty, and rule files edited under running workers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

OPEN_RULE = """\
version: 1
rules:
  - name: {name}
    on: message.received
    when: {{ticket: closed}}
    then: [open_ticket]
"""


def message(conversation: int) -> bytes:
    return json.dumps(
        {"event": "message.received", "data": {"conversation_id": conversation, "body": "hi"}},
        separators=(",", ":"),
    ).encode()


def opened(fake: FakeProvidersServer) -> list[str]:
    return [c.path.rsplit("/", 1)[-1] for c in fake.control.calls("awalchat") if c.applied]


def test_redis_down_gives_503_quickly_and_everything_recovers_when_it_returns_empty(
    redis_server: RedisServer, fake_providers: FakeProvidersServer, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(OPEN_RULE.format(name="open"))
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path) as dep:
        assert dep.post(message(7001)).status_code == 202
        dep.wait_for(lambda: opened(fake_providers) == ["7001"], what="the first open")

        redis_server.stop()
        for path in ("/webhooks/awalchat", "/readyz"):
            started = time.monotonic()
            if path == "/readyz":
                status = dep.http.get(path).status_code
            else:
                status = dep.post(message(7002)).status_code
            assert status == 503, path
            assert time.monotonic() - started < 2.5, path  # the contract: within 2 s

        redis_server.start()  # back, but empty: no scripts, no queue, no state
        dep.wait_for(lambda: dep.http.get("/readyz").status_code == 200, what="ready again")
        assert dep.post(message(7003)).status_code == 202
        dep.wait_for(lambda: "7003" in opened(fake_providers), timeout=60, what="acted on")
    assert "7002" not in opened(fake_providers)  # it was refused, never queued


def _decided_by(client: redis.Redis, delivery_id: str) -> str | None:
    """The rule that matched the delivery's stored decision ("" for none; None: not decided)."""
    raw = client.hget(f"tw:delivery:{delivery_id}", "decision")
    if raw is None:
        return None
    matched = [o["rule"] for o in json.loads(raw)["outcomes"] if o["status"] == "matched"]
    return matched[0] if matched else ""


def _rules_of(client: redis.Redis, dep: Deployment, ids: list[str]) -> set[str | None]:
    """Wait until every delivery is decided; the set of rules that decided them."""
    dep.wait_for(lambda: all(_decided_by(client, d) is not None for d in ids), what="decided")
    return {_decided_by(client, d) for d in ids}


def test_an_edited_rule_file_takes_over_and_a_broken_one_is_refused(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(OPEN_RULE.format(name="version-one"))
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path, workers=2) as dep:
        first = dep.post(message(8001)).json()["delivery_id"]
        assert _rules_of(redis_client, dep, [first]) == {"version-one"}

        replacement = tmp_path / ".rules.yaml.new"
        replacement.write_text(OPEN_RULE.format(name="version-two"))
        replacement.replace(rules)  # saved the way editors save: renamed over the old file
        time.sleep(5)  # the contract: in effect within 5 s in every worker
        second = [dep.post(message(8100 + i)).json()["delivery_id"] for i in range(6)]
        assert _rules_of(redis_client, dep, second) == {"version-two"}

        rules.write_text(OPEN_RULE.format(name="version-three").replace("then:", "thenn:"))
        dep.wait_for(
            lambda: dep.http.get("/readyz").json()["rules"]["refused_change"] is not None,
            what="the refusal shown in /readyz",
        )
        third = [dep.post(message(8200 + i)).json()["delivery_id"] for i in range(6)]
        assert _rules_of(redis_client, dep, third) == {"version-two"}
        assert "rules.yaml:6:5" in dep.http.get("/readyz").json()["rules"]["refused_change"]
