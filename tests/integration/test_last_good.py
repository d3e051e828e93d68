""" "Last good" is one version for the whole deployment (rules.md, Validation), on real
processes: after Redis comes back empty, when a process starts while the rule files are
broken, and when a reload needs a credential the processes do not have."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import httpx
import pytest
import redis

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment, deciding_rules, running_up
from tests.samples import HELPWAVE_RULE, OPEN_WHEN_CLOSED_RULE
from worker.live_rules import RuleSource
from worker.ops.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration

BROKEN_RULE = OPEN_WHEN_CLOSED_RULE.format(name="broken").replace("then:", "thenn:")  # at 6:5


def message(conversation: int) -> bytes:
    return json.dumps(
        {
            "event": "message.received",
            "data": {"conversation_id": conversation, "from": "+966500000000", "body": "hi"},
        },
        separators=(",", ":"),
    ).encode()


def save(folder: Path, text: str) -> None:
    """Save the way editors save: a new file renamed over the old one."""
    replacement = folder / ".rules.yaml.new"
    replacement.write_text(text)
    replacement.replace(folder / "rules.yaml")


def rules_folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "rules.yaml").write_text(text)
    return path


def rules_that_decided(client: redis.Redis, dep: Deployment, bodies: list[bytes]) -> set[str]:
    """Post each body to `dep`, wait until every one is decided; the rules that decided them."""
    return deciding_rules(client, dep, [dep.post(body).json()["delivery_id"] for body in bodies])


def is_ready(dep: Deployment) -> bool:
    return dep.http.get("/readyz").status_code == 200


def rules_status(dep: Deployment) -> dict[str, str | None]:
    rules: dict[str, str | None] = dep.http.get("/readyz").json()["rules"]
    return rules


def test_after_redis_comes_back_empty_an_edit_reaches_every_process(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    here = rules_folder(tmp_path / "here", OPEN_WHEN_CLOSED_RULE.format(name="version-one"))
    # Another machine's copy of the same files: it learns of edits only through Redis.
    there = rules_folder(tmp_path / "there", OPEN_WHEN_CLOSED_RULE.format(name="version-one"))
    env = fake_providers.env()
    with (
        Deployment(redis_server.url, env=env, rules=here, workers=1) as local,
        Deployment(redis_server.url, env=env, rules=there, workers=1) as remote,
    ):
        assert rules_that_decided(redis_client, local, [message(9001)]) == {"version-one"}

        redis_server.restart()  # back at once, but empty
        for dep in (local, remote):
            dep.wait_for(partial(is_ready, dep), what="ready again")
        save(here, OPEN_WHEN_CLOSED_RULE.format(name="version-two"))
        time.sleep(5)  # the contract: in effect within 5 s in every worker process

        local.kill_worker(0)  # only the worker reading the other machine's copy decides now
        bodies = [message(9100 + i) for i in range(4)]
        assert rules_that_decided(redis_client, remote, bodies) == {"version-two"}
        assert rules_status(remote)["version"] == rules_status(local)["version"]


def test_a_process_started_while_the_rule_files_are_broken_runs_the_last_good_version(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    rules = rules_folder(tmp_path / "rules", OPEN_WHEN_CLOSED_RULE.format(name="version-one"))
    env = fake_providers.env()
    with Deployment(redis_server.url, env=env, rules=rules, workers=1) as dep:
        assert rules_that_decided(redis_client, dep, [message(9201)]) == {"version-one"}
        good = rules_status(dep)["version"]
        save(rules, BROKEN_RULE)
        dep.wait_for(lambda: rules_status(dep)["refused_change"] is not None, what="refused")

        dep.kill_worker(0)
        dep.start_worker()  # the only worker now, started with the broken file
        dep.wait_for(lambda: "rule files refused at start" in dep.logs(), what="its log line")
        [line] = [x for x in dep.logs().splitlines() if "rule files refused at start" in x]
        assert "rules.yaml:6:5" in line
        assert good is not None
        assert good in line

        # A receiver started now, with the same broken file.
        with Deployment(redis_server.url, env=env, rules=rules, workers=0) as late:
            status = rules_status(late)
            assert status["version"] == good
            assert "rules.yaml:6:5" in (status["refused_change"] or "")
            bodies = [message(9210 + i) for i in range(3)]
            ids = [late.post(body).json()["delivery_id"] for body in bodies]
        assert deciding_rules(redis_client, dep, ids) == {"version-one"}  # the worker of `dep`


def test_a_reload_that_needs_an_unset_credential_is_refused_naming_it(
    redis_server: RedisServer,
    redis_client: redis.Redis,
    fake_providers: FakeProvidersServer,
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in fake_providers.env().items() if k != "HELPWAVE_API_KEY"}
    rules = rules_folder(tmp_path / "rules", OPEN_WHEN_CLOSED_RULE.format(name="version-one"))
    with Deployment(redis_server.url, env=env, rules=rules, workers=1) as dep:
        assert rules_that_decided(redis_client, dep, [message(9301)]) == {"version-one"}
        save(rules, HELPWAVE_RULE.format(name="version-two"))
        dep.wait_for(lambda: rules_status(dep)["refused_change"] is not None, what="refused")
        assert "HELPWAVE_API_KEY is not set: " in (rules_status(dep)["refused_change"] or "")
        time.sleep(2)  # the worker has looked at the files too
        bodies = [message(9310 + i) for i in range(3)]
        assert rules_that_decided(redis_client, dep, bodies) == {"version-one"}
    assert fake_providers.control.calls("helpwave") == []


def test_up_with_broken_rule_files_runs_the_version_its_embedded_redis_holds(
    tmp_path: Path,
) -> None:
    rules = rules_folder(tmp_path / "rules", OPEN_WHEN_CLOSED_RULE.format(name="version-one"))
    embedded = EmbeddedRedis(tmp_path / ".ticket-worker")  # where `up` keeps its Redis
    embedded.start()
    client = redis.Redis.from_url(embedded.url)
    good = RuleSource(rules, client=client).version  # what an earlier `up` published
    client.close()
    embedded.stop()
    save(rules, BROKEN_RULE)

    with running_up(tmp_path) as up:
        status = httpx.get(f"http://127.0.0.1:{up.port}/readyz", timeout=10).json()["rules"]
        assert status["version"] == good
        assert "rules.yaml:6:5" in status["refused_change"]
