"""Shadow rules on real parts: a live rule and a shadow rule on the same traffic. The fake
provider sees only the live calls; `shadow-report` shows the shadow rule's would-have counts
and where it disagrees with the live rules; every key it wrote is bounded."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import REPO_ROOT, Deployment
from tests.integration.test_storage_bounds import unbounded_keys
from tests.samples import SHADOW_RULES, message_received

pytestmark = pytest.mark.integration


def test_a_shadow_rule_is_reported_and_never_called(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHADOW_RULES)
    env = fake_providers.env()
    with Deployment(redis_server.url, env=env, rules=rules) as dep:
        for conversation in (301, 302):
            for body in ("help please", "thanks!"):
                response = dep.post(message_received(conversation, body))
                assert response.status_code == 202, response.text
        dep.wait_for(
            lambda: (
                len(redis_client.keys("tw:shadow:state:*")) == 2
                and all(redis_client.llen(f"tw:inbox:{c}") == 0 for c in (301, 302))
            ),
            what="both conversations decided with their shadow views",
        )
        time.sleep(1.0)  # anything extra would show up now

    calls = fake_providers.control.calls("awalchat")
    assert sorted(c.path.rsplit("/", 1)[-1] for c in calls) == ["301", "302"]
    assert all(json.loads(c.body) == {"route": "openTicket"} for c in calls)

    report = subprocess.run(
        [sys.executable, "-m", "worker.ops.cli", "shadow-report", "--since", "1h"],
        cwd=REPO_ROOT,
        env={**env, "REDIS_URL": redis_server.url, "RULES_PATH": str(rules), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    out = report.stdout
    assert "close-on-thanks" in out
    assert "decided 4, matched 2, would have acted on 2" in out
    assert "would have close_ticket: 2" in out
    assert "disagrees 2x: shadow would close_ticket where live did not" in out
    assert "e.g. conversation 30" in out
    assert unbounded_keys(redis_client) == []
