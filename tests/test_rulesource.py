"""Hot reload: a changed rule file is validated whole and swapped; a refused one leaves the
last good version running; "last good" is one version for the whole deployment."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest

from worker.errors import RulesError
from worker.rulesource import RuleSource

GOOD = """\
version: 1
rules:
  - name: {name}
    on: message.received
    then: [open_ticket]
"""
BROKEN = GOOD.replace("then:", "thenn:")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(GOOD.format(name="first"))
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
    write(rules_dir, GOOD.format(name="second"))
    assert source.current().version == before  # not checked yet
    clock.now = 1.0
    assert [r.name for r in source.current().rules] == ["second"]
    assert source.error is None


def test_a_refused_change_keeps_the_last_good_version_and_says_why(rules_dir: Path) -> None:
    refused: list[RulesError] = []
    source = RuleSource(rules_dir, clock=Clock(), on_refused=refused.append)
    good = source.version
    write(rules_dir, BROKEN)
    assert source.refresh() is False
    assert source.version == good
    assert len(refused) == 1
    assert source.error is not None
    assert "rules.yaml:5:" in source.error
    assert "thenn" in source.error
    write(rules_dir, GOOD.format(name="fixed"))
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
    write(rules_dir, GOOD.format(name="v2"))
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
    (other_dir / "rules.yaml").write_text(GOOD.format(name="elsewhere"))
    here = RuleSource(rules_dir, client=client, clock=Clock())
    RuleSource(other_dir, client=client, clock=Clock())  # starting is deploying
    assert here.refresh() is True
    assert [r.name for r in here.current().rules] == ["elsewhere"]
