"""Hot reload: a changed rule file is validated whole and swapped; a refused one leaves the
last good version running; "last good" is one version for the whole deployment."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.helpers_redis import free_port
from tests.samples import HELPWAVE_RULE, OPEN_RULE
from worker.engine import Ruleset
from worker.errors import ConfigError, RulesError
from worker.live_rules import RuleSource
from worker.settings import Settings
from worker.startup import check_credentials
from worker.storage.keys import RULES as RULES_KEY

BROKEN = OPEN_RULE.replace("then:", "thenn:")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(OPEN_RULE.format(name="first"))
    return tmp_path


def write(rules_dir: Path, text: str) -> None:
    """Save like an editor that renames a new file over the old one."""
    tmp = rules_dir / ".rules.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(rules_dir / "rules.yaml")


def test_a_changed_file_takes_effect_at_the_next_check(rules_dir: Path) -> None:
    clock = Clock()
    source = RuleSource(rules_dir, clock=clock)
    before = source.current().version
    write(rules_dir, OPEN_RULE.format(name="second"))
    assert source.current().version == before  # not checked yet
    clock.now = 1.0
    assert [r.name for r in source.current().rules] == ["second"]
    assert source.error is None


def test_a_refused_change_keeps_the_last_good_version_and_says_why(rules_dir: Path) -> None:
    refused: list[Exception] = []
    source = RuleSource(rules_dir, clock=Clock(), on_refused=refused.append)
    good = source.version
    write(rules_dir, BROKEN)
    assert source.refresh() is False
    assert source.version == good
    assert len(refused) == 1
    assert source.error is not None
    assert "rules.yaml:5:" in source.error
    assert "thenn" in source.error
    write(rules_dir, OPEN_RULE.format(name="fixed"))
    assert source.refresh() is True
    assert source.error is None


def test_a_broken_file_at_start_refuses_to_start(rules_dir: Path) -> None:
    write(rules_dir, BROKEN)
    with pytest.raises(RulesError, match=r"rules\.yaml:5"):
        RuleSource(rules_dir)


def test_no_process_falls_back_to_an_older_version_than_another_accepted(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    first = RuleSource(rules_dir, client=client, clock=Clock())
    second = RuleSource(rules_dir, client=client, clock=Clock())
    write(rules_dir, OPEN_RULE.format(name="v2"))
    assert first.refresh() is True  # first sees v2 and publishes it
    write(rules_dir, BROKEN)  # ... then the file breaks before second looked
    assert second.refresh() is True  # refused locally, but adopts the newest accepted
    assert [r.name for r in second.current().rules] == ["v2"]
    assert second.error is not None
    assert first.refresh() is False
    assert first.version == second.version


def test_a_process_adopts_a_version_published_by_another(rules_dir: Path) -> None:
    client = fakeredis.FakeRedis()
    other_dir = rules_dir / "other"
    other_dir.mkdir()
    (other_dir / "rules.yaml").write_text(OPEN_RULE.format(name="elsewhere"))
    here = RuleSource(rules_dir, client=client, clock=Clock())
    RuleSource(other_dir, client=client, clock=Clock())  # starting is deploying
    assert here.refresh() is True
    assert [r.name for r in here.current().rules] == ["elsewhere"]


LACKING_HELPWAVE_KEY = Settings(
    _env_file=None,
    awalchat_hmac_secret="hmac-secret",
    awalchat_client_id="client",
    awalchat_domain="shop",
    awalchat_phone_number_id="phone",
    helpwave_base_url="http://helpwave.test",
    helpwave_api_key=None,
    dry_run=False,
)


def other_machine(rules_dir: Path, name: str = "elsewhere") -> Path:
    """A second copy of the rule folder: a process there sees edits only through Redis."""
    folder = rules_dir / name
    folder.mkdir()
    (folder / "rules.yaml").write_text((rules_dir / "rules.yaml").read_text())
    return folder


def names(source: RuleSource) -> list[str]:
    return [r.name for r in source.current().rules]


def no_helpwave_key(ruleset: Ruleset) -> None:
    """What a process without HELPWAVE_API_KEY (and not DRY_RUN) checks every version with."""
    check_credentials(LACKING_HELPWAVE_KEY, ruleset)


# (a) Redis restarted empty, or rolled back: publications keep spreading, none goes backwards


def test_after_redis_comes_back_empty_the_next_edit_spreads_to_every_process(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    here = RuleSource(rules_dir, client=client, clock=Clock())
    there = RuleSource(other_machine(rules_dir), client=client, clock=Clock())
    write(rules_dir, OPEN_RULE.format(name="second"))
    assert here.refresh() is True
    assert there.refresh() is True  # seen through Redis
    client.flushall()  # Redis restarted without its data
    here.refresh()
    there.refresh()
    write(rules_dir, OPEN_RULE.format(name="third"))
    assert here.refresh() is True
    assert there.refresh() is True
    assert names(there) == ["third"]


def test_an_edit_made_before_anyone_noticed_the_empty_redis_spreads_too(rules_dir: Path) -> None:
    client = fakeredis.FakeRedis()
    here = RuleSource(rules_dir, client=client, clock=Clock())
    there = RuleSource(other_machine(rules_dir), client=client, clock=Clock())
    write(rules_dir, OPEN_RULE.format(name="second"))
    here.refresh()
    there.refresh()
    client.flushall()
    write(rules_dir, OPEN_RULE.format(name="third"))
    assert here.refresh() is True  # publishes into the empty Redis
    assert there.refresh() is True
    assert names(there) == ["third"]


def test_a_process_puts_back_the_version_redis_lost_so_a_broken_start_can_adopt_it(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    running = RuleSource(rules_dir, client=client, clock=Clock())
    client.flushall()
    assert running.refresh() is False  # nothing changes for the process itself ...
    assert client.hget(RULES_KEY, "version") == running.version.encode()  # ... it republished
    write(rules_dir, BROKEN)
    late = RuleSource(rules_dir, client=client, clock=Clock())
    assert late.version == running.version


def test_a_publication_lost_with_redis_is_not_replaced_by_an_older_version(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    here = RuleSource(rules_dir, client=client, clock=Clock())
    there = RuleSource(other_machine(rules_dir), client=client, clock=Clock())
    write(rules_dir, OPEN_RULE.format(name="second"))
    assert here.refresh() is True  # published ...
    client.flushall()  # ... and lost before `there` looked
    assert there.refresh() is False  # `there` puts back the older version it runs
    assert here.refresh() is False  # `here` knows a newer one: it does not go back ...
    assert names(here) == ["second"]
    assert there.refresh() is True  # ... and puts it back, so `there` catches up
    assert names(there) == ["second"]


def test_after_redis_rolled_back_to_an_older_publication_edits_still_spread(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    here = RuleSource(rules_dir, client=client, clock=Clock())
    there = RuleSource(other_machine(rules_dir), client=client, clock=Clock())
    snapshot = client.dump(RULES_KEY)
    assert isinstance(snapshot, bytes)
    write(rules_dir, OPEN_RULE.format(name="second"))
    here.refresh()
    assert there.refresh() is True
    client.restore(RULES_KEY, 0, snapshot, replace=True)  # Redis came back from a snapshot
    assert there.refresh() is False  # no fallback to the snapshot's version
    assert names(there) == ["second"]
    here.refresh()
    write(rules_dir, OPEN_RULE.format(name="third"))
    assert here.refresh() is True
    assert there.refresh() is True
    assert names(there) == ["third"]


def test_an_edit_numbered_like_a_publication_redis_lost_is_still_adopted(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    here = RuleSource(rules_dir, client=client, clock=Clock())
    snapshot = client.dump(RULES_KEY)
    assert isinstance(snapshot, bytes)
    write(rules_dir, OPEN_RULE.format(name="second"))
    assert here.refresh() is True  # published as seq 2 ...
    client.restore(RULES_KEY, 0, snapshot, replace=True)  # ... lost: Redis is back at seq 1
    third = other_machine(rules_dir, "third")
    write(third, OPEN_RULE.format(name="first"))
    late = RuleSource(third, client=client, clock=Clock())  # knows only seq 1
    write(third, OPEN_RULE.format(name="edited-there"))
    assert late.refresh() is True  # its edit is published as seq 2 too
    assert here.refresh() is True
    assert names(here) == ["edited-there"]


def test_a_change_accepted_while_redis_was_down_is_published_once_it_answers(
    rules_dir: Path,
) -> None:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    here = RuleSource(rules_dir, client=client, clock=Clock())
    there = RuleSource(other_machine(rules_dir), client=client, clock=Clock())
    server.connected = False
    write(rules_dir, OPEN_RULE.format(name="second"))
    assert here.refresh() is True  # in use here at once ...
    assert there.refresh() is False
    server.connected = True
    assert here.refresh() is False  # ... not replaced by the older published version ...
    assert names(here) == ["second"]
    assert there.refresh() is True  # ... and published as soon as Redis answered
    assert names(there) == ["second"]


# (b) a process started while the rule files are broken


def test_a_process_started_with_broken_files_runs_the_published_version_and_says_why(
    rules_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = fakeredis.FakeRedis()
    running = RuleSource(rules_dir, client=client, clock=Clock())
    write(rules_dir, BROKEN)
    refused: list[Exception] = []
    started = RuleSource(rules_dir, client=client, clock=Clock(), on_refused=refused.append)
    assert started.version == running.version
    assert names(started) == ["first"]
    assert started.error is not None
    assert "rules.yaml:5:5" in started.error
    assert len(refused) == 1
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "rules.yaml:5:5" in line
    assert running.version in line
    write(rules_dir, OPEN_RULE.format(name="fixed"))
    assert started.refresh() is True
    assert started.error is None
    assert running.refresh() is True


def test_with_broken_files_and_nothing_published_a_process_refuses_to_start(
    rules_dir: Path,
) -> None:
    write(rules_dir, BROKEN)
    with pytest.raises(RulesError, match=r"rules\.yaml:5:5"):
        RuleSource(rules_dir, client=fakeredis.FakeRedis())


def test_with_broken_files_and_redis_unreachable_a_process_refuses_to_start(
    rules_dir: Path,
) -> None:
    write(rules_dir, BROKEN)
    unreachable = redis.Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    with pytest.raises(RulesError, match=r"rules\.yaml:5:5"):
        RuleSource(rules_dir, client=unreachable)


# (c) a version this process cannot run (a credential it needs is unset)


def test_a_reload_needing_an_unset_credential_is_refused_naming_the_variable(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    refused: list[Exception] = []
    source = RuleSource(
        rules_dir,
        client=client,
        clock=Clock(),
        check_runnable=no_helpwave_key,
        on_refused=refused.append,
    )
    good = source.version
    write(rules_dir, HELPWAVE_RULE.format(name="create"))
    assert source.refresh() is False
    assert source.version == good
    assert source.error is not None
    assert "HELPWAVE_API_KEY is not set: " in source.error
    assert len(refused) == 1
    assert client.hget(RULES_KEY, "version") == good.encode()  # refused: never published


def test_a_published_version_needing_an_unset_credential_is_not_adopted(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    refused: list[Exception] = []
    lacking = RuleSource(
        other_machine(rules_dir),
        client=client,
        clock=Clock(),
        check_runnable=no_helpwave_key,
        on_refused=refused.append,
    )
    good = lacking.version
    RuleSource(rules_dir, client=client, clock=Clock())  # a process that has the key
    write(rules_dir, HELPWAVE_RULE.format(name="create"))
    publisher = RuleSource(rules_dir, client=client, clock=Clock())  # starting is deploying
    assert lacking.refresh() is False
    assert lacking.version == good
    assert lacking.error is not None
    assert "HELPWAVE_API_KEY is not set: " in lacking.error
    assert publisher.version in lacking.error
    assert len(refused) == 1
    assert lacking.refresh() is False
    assert len(refused) == 1  # reported once per publication, not every second


def test_a_process_that_cannot_run_its_files_starts_on_the_published_version(
    rules_dir: Path,
) -> None:
    client = fakeredis.FakeRedis()
    running = RuleSource(rules_dir, client=client, clock=Clock())
    write(rules_dir, HELPWAVE_RULE.format(name="create"))
    started = RuleSource(rules_dir, client=client, check_runnable=no_helpwave_key)
    assert started.version == running.version
    assert started.error is not None
    assert "HELPWAVE_API_KEY is not set: " in started.error


def test_a_process_that_can_run_neither_its_files_nor_the_published_version_refuses(
    rules_dir: Path,
) -> None:
    write(rules_dir, HELPWAVE_RULE.format(name="create"))
    client = fakeredis.FakeRedis()
    RuleSource(rules_dir, client=client)
    with pytest.raises(ConfigError, match="HELPWAVE_API_KEY is not set: "):
        RuleSource(rules_dir, client=client, check_runnable=no_helpwave_key)
