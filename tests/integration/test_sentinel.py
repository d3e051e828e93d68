"""Redis Sentinel on real parts: a master, a replica and three sentinels on loopback; the
receiver, two workers and the broker all follow a failover.

The master is SIGKILLed in the middle of a backlog while webhooks keep coming: they get 503
during the switch and 202 again within 10 s; every event answered 202 is acted on, exactly
once (the receiver answers 202 only once a replica has the event).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import FakeProvidersServer
from tests.helpers_sentinel import start_sentinel_group
from tests.integration.harness import Deployment
from tests.integration.test_faults import message, open_only_rules, opens_applied

pytestmark = pytest.mark.integration

__all__ = ["open_only_rules"]  # the fixture

RECOVERY = 10.0


def test_a_failover_mid_backlog_loses_and_repeats_nothing(
    fake_providers: FakeProvidersServer, open_only_rules: Path
) -> None:
    fake_providers.control.configure(awalchat={"delay": 0.1})
    accepted: list[int] = []
    answers: list[tuple[float, int]] = []
    with start_sentinel_group() as group:
        env = {**fake_providers.env(), "REDIS_SENTINEL_MASTER": group.master_name}
        with Deployment(group.url, env=env, rules=open_only_rules, workers=2) as dep:
            for conversation in range(6000, 6030):
                assert dep.post(message(conversation)).status_code == 202
                accepted.append(conversation)
            dep.wait_for(lambda: len(opens_applied(fake_providers)) >= 5, what="some progress")
            killed = time.time()
            group.kill_master()
            conversation = 6100
            while time.time() - killed < RECOVERY + 5:
                try:
                    status = dep.post(message(conversation)).status_code
                except httpx.HTTPError:
                    status = 0
                answers.append((time.time() - killed, status))
                if status == 202:
                    accepted.append(conversation)
                conversation += 1
                time.sleep(0.2)
            dep.wait_for(
                lambda: set(opens_applied(fake_providers)) >= {str(c) for c in accepted},
                timeout=90,
                what="every accepted event acted on",
            )
    assert any(status == 503 for _, status in answers), answers
    assert {status for _, status in answers} <= {202, 503}, answers
    back = min(t for t, status in answers if status == 202)
    assert back <= RECOVERY, answers
    assert all(status == 202 for t, status in answers if t > RECOVERY), answers
    applied = opens_applied(fake_providers)
    assert applied == Counter({str(c): 1 for c in accepted}), applied
