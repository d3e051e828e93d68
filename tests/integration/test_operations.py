"""What operators and rule editors rely on, on real processes: Redis going away, hanging, and
coming back (empty or not), and rule files edited under running workers."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer, free_port, silent_server
from tests.integration.harness import Deployment, deciding_rules
from tests.samples import OPEN_WHEN_CLOSED_RULE

pytestmark = pytest.mark.integration


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
    (tmp_path / "rules.yaml").write_text(OPEN_WHEN_CLOSED_RULE.format(name="open"))
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path) as dep:
        assert dep.post(message(7001)).status_code == 202
        dep.wait_for(lambda: opened(fake_providers) == ["7001"], what="the first open")

        redis_server.stop()
        assert_503_within_two_seconds(dep, message(7002))

        redis_server.start()  # back, but empty: no scripts, no queue, no state
        dep.wait_for(lambda: dep.http.get("/readyz").status_code == 200, what="ready again")
        assert dep.post(message(7003)).status_code == 202
        dep.wait_for(lambda: "7003" in opened(fake_providers), timeout=60, what="acted on")
    assert "7002" not in opened(fake_providers)  # it was refused, never queued


def assert_503_within_two_seconds(dep: Deployment, body: bytes) -> None:
    """interface.md, "Redis down": webhooks get 503 and /readyz 503 within 2 s each; four
    webhooks and /readyz at once, then once more each."""

    def timed(request: Callable[[], httpx.Response]) -> tuple[int, float]:
        started = time.monotonic()
        status = request().status_code
        return status, time.monotonic() - started

    requests = [lambda: dep.http.get("/readyz")]
    requests += [functools.partial(dep.post, body + b" " * n) for n in range(4)]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(timed, requests)) + [timed(request) for request in requests[:2]]
    assert [status for status, _ in answers] == [503] * len(answers), answers
    assert max(seconds for _, seconds in answers) < 2.0, answers


def test_a_receiver_started_against_a_redis_that_never_answers_gives_503_and_recovers(
    fake_providers: FakeProvidersServer, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(OPEN_WHEN_CLOSED_RULE.format(name="open"))
    port = free_port()
    with ExitStack() as hung:
        url = hung.enter_context(silent_server(port))
        with Deployment(
            url, env=fake_providers.env(), rules=tmp_path, workers=0, wait_until_ready=False
        ) as dep:
            assert_503_within_two_seconds(dep, message(7101))

            hung.close()  # a real Redis takes the port: the receiver is not restarted
            redis_server = RedisServer(port=port, directory=tmp_path)
            redis_server.start()
            try:
                dep.wait_for(lambda: dep.http.get("/readyz").status_code == 200, what="ready")
                assert dep.post(message(7102)).status_code == 202
                dep.start_worker()
                dep.wait_for(lambda: "7102" in opened(fake_providers), timeout=60, what="acted on")
            finally:
                redis_server.stop()


def test_redis_hanging_mid_run_gives_503_quickly_and_everything_recovers_when_it_wakes(
    redis_server: RedisServer, fake_providers: FakeProvidersServer, tmp_path: Path
) -> None:
    (tmp_path / "rules.yaml").write_text(OPEN_WHEN_CLOSED_RULE.format(name="open"))
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path) as dep:
        assert dep.post(message(7201)).status_code == 202
        dep.wait_for(lambda: opened(fake_providers) == ["7201"], what="the first open")

        redis_server.pause()  # SIGSTOP: connections are accepted, nothing is answered
        try:
            assert_503_within_two_seconds(dep, message(7202))
        finally:
            redis_server.resume()
        # A 503 during a hang may still have been accepted when Redis woke (the command was
        # sent): the sender's retry is then a duplicate. Nothing is asserted about 7202.
        dep.wait_for(lambda: dep.http.get("/readyz").status_code == 200, what="ready again")
        assert dep.post(message(7203)).status_code == 202
        dep.wait_for(lambda: "7203" in opened(fake_providers), timeout=60, what="acted on")


def test_an_edited_rule_file_takes_over_and_a_broken_one_is_refused(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(OPEN_WHEN_CLOSED_RULE.format(name="version-one"))
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path, workers=2) as dep:
        first = dep.post(message(8001)).json()["delivery_id"]
        assert deciding_rules(redis_client, dep, [first]) == {"version-one"}

        replacement = tmp_path / ".rules.yaml.new"
        replacement.write_text(OPEN_WHEN_CLOSED_RULE.format(name="version-two"))
        replacement.replace(rules)  # saved the way editors save: renamed over the old file
        time.sleep(5)  # the contract: in effect within 5 s in every worker
        second = [dep.post(message(8100 + i)).json()["delivery_id"] for i in range(6)]
        assert deciding_rules(redis_client, dep, second) == {"version-two"}

        broken = OPEN_WHEN_CLOSED_RULE.format(name="version-three").replace("then:", "thenn:")
        rules.write_text(broken)
        dep.wait_for(
            lambda: dep.http.get("/readyz").json()["rules"]["refused_change"] is not None,
            what="the refusal shown in /readyz",
        )
        third = [dep.post(message(8200 + i)).json()["delivery_id"] for i in range(6)]
        assert deciding_rules(redis_client, dep, third) == {"version-two"}
        assert "rules.yaml:6:5" in dep.http.get("/readyz").json()["rules"]["refused_change"]
