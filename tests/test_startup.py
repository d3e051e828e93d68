"""How a service builds and validates its rules at start (`preflight`, `WorkerProcess`): a process
whose files are refused runs the deployment's published version, or refuses to start when
there is none; a reload it cannot run (a credential unset) is refused like a broken file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.helpers_redis import RedisServer, free_port
from tests.samples import HELPWAVE_RULE, OPEN_RULE
from worker.errors import ConfigError, RulesError
from worker.live_rules import RuleSource
from worker.processing.worker_process import WorkerProcess
from worker.settings import Settings
from worker.startup import preflight

BROKEN = OPEN_RULE.format(name="broken").replace("then:", "thenn:")
AWALCHAT_ONLY = {
    "awalchat_hmac_secret": "hmac-secret",
    "awalchat_client_id": "client",
    "awalchat_domain": "shop",
    "awalchat_phone_number_id": "phone",
    "helpwave_base_url": "http://helpwave.test",
    "helpwave_api_key": None,
    "dry_run": False,
}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(OPEN_RULE.format(name="first"))
    return folder


def settings_for(rules_dir: Path, redis_url: str) -> Settings:
    """A live process with every credential but HELPWAVE_API_KEY."""
    return Settings(
        _env_file=None,
        redis_url=redis_url,
        rules_path=rules_dir,
        worker_metrics_port=0,
        **AWALCHAT_ONLY,  # type: ignore[arg-type]
    )


def save(rules_dir: Path, text: str) -> None:
    tmp = rules_dir / ".rules.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(rules_dir / "rules.yaml")


def test_preflight_checks_good_files_without_touching_redis(rules_dir: Path) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    assert [r.name for r in preflight(settings_for(rules_dir, down)).rules] == ["first"]


def test_preflight_with_broken_files_accepts_the_published_version(
    rules_dir: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    published = RuleSource(rules_dir, client=redis_client)
    save(rules_dir, BROKEN)
    ruleset = preflight(settings_for(rules_dir, redis_server.url))
    assert ruleset.version == published.version


def test_preflight_with_broken_files_and_nothing_published_names_the_problems(
    rules_dir: Path, redis_server: RedisServer
) -> None:
    save(rules_dir, BROKEN)
    with pytest.raises(RulesError, match=r"rules\.yaml:5:5"):
        preflight(settings_for(rules_dir, redis_server.url))


def test_preflight_with_broken_files_and_redis_down_names_the_problems(rules_dir: Path) -> None:
    save(rules_dir, BROKEN)
    with pytest.raises(RulesError, match=r"rules\.yaml:5:5"):
        preflight(settings_for(rules_dir, f"redis://127.0.0.1:{free_port()}/0"))


def test_preflight_refuses_when_no_version_it_can_run_exists(
    rules_dir: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    save(rules_dir, HELPWAVE_RULE.format(name="create"))
    RuleSource(rules_dir, client=redis_client)  # published by a process with the key
    with pytest.raises(ConfigError, match="HELPWAVE_API_KEY is not set: "):
        preflight(settings_for(rules_dir, redis_server.url))


@pytest.fixture
def runtime(rules_dir: Path, redis_server: RedisServer) -> Iterator[WorkerProcess]:
    built = WorkerProcess(settings_for(rules_dir, redis_server.url))
    yield built
    built.close()


def test_a_worker_refuses_a_reload_that_needs_an_unset_credential(
    rules_dir: Path, runtime: WorkerProcess
) -> None:
    good = runtime.rules.version
    save(rules_dir, HELPWAVE_RULE.format(name="create"))
    assert runtime.rules.refresh() is False
    assert runtime.rules.version == good
    assert runtime.rules.error is not None
    assert "HELPWAVE_API_KEY is not set: " in runtime.rules.error
    assert runtime.metrics.rules_refused._value.get() == 1


def test_a_worker_started_with_broken_files_runs_the_published_version(
    rules_dir: Path, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    published = RuleSource(rules_dir, client=redis_client)
    save(rules_dir, BROKEN)
    started = WorkerProcess(settings_for(rules_dir, redis_server.url))
    try:
        assert started.rules.version == published.version
        assert started.rules.error is not None
        assert "rules.yaml:5:5" in started.rules.error
        assert started.metrics.rules_refused._value.get() == 1
    finally:
        started.close()
