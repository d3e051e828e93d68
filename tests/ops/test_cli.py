"""The command line's refusals: one line naming the problem, exit code 1, no secret shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.ops.cli import main

RULES = """\
version: 1
rules:
  - name: open
    on: message.received
    then: [open_ticket, {helpwave.add_comment: {text: hi}}]
"""
CREDENTIALS = (
    "AWALCHAT_HMAC_SECRET",
    "AWALCHAT_CLIENT_ID",
    "AWALCHAT_DOMAIN",
    "AWALCHAT_PHONE_NUMBER_ID",
    "HELPWAVE_BASE_URL",
    "HELPWAVE_API_KEY",
    "REDIS_URL",
    "DRY_RUN",
    "AWALCHAT_WEBHOOK_SECRETS",
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no .env from the repository
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    monkeypatch.setenv("RULES_PATH", str(tmp_path / "rules"))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    return tmp_path


@pytest.mark.parametrize("command", ["serve", "work"])
def test_a_missing_credential_is_named_on_one_line(
    workdir: Path, command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWALCHAT_HMAC_SECRET", "super-secret-value")
    monkeypatch.setenv("AWALCHAT_CLIENT_ID", "client")
    monkeypatch.setenv("AWALCHAT_DOMAIN", "shop")
    assert main([command]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "AWALCHAT_PHONE_NUMBER_ID is not set" in err[0]
    assert "super-secret-value" not in err[0]


def test_dry_run_needs_no_credential_but_still_needs_redis(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRY_RUN", "true")
    monkeypatch.delenv("REDIS_URL")
    assert main(["work"]) == 1
    assert "REDIS_URL is not set" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["serve", "work", "up", "check"])
def test_a_rule_file_with_a_typo_is_refused_naming_file_and_line(
    workdir: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "rules" / "rules.yaml").write_text(RULES.replace("then:", "thenn:"))
    assert main([command]) == 1
    err = capsys.readouterr().err
    assert "rules.yaml:5:5" in err
    assert "thenn" in err


def test_an_invalid_setting_is_named_without_its_value(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRY_RUN", "perhaps-secret")
    assert main(["check"]) == 1
    err = capsys.readouterr().err
    assert "DRY_RUN" in err
    assert "perhaps-secret" not in err


def test_up_with_a_typo_and_an_embedded_redis_holding_no_version_refuses(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL")  # up starts its embedded Redis, which has no rules version
    (workdir / "rules" / "rules.yaml").write_text(RULES.replace("then:", "thenn:"))
    assert main(["up", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "rules.yaml:5:5" in err
    assert "thenn" in err
    assert (workdir / ".ticket-worker" / "redis.log").exists()  # it looked in Redis ...
    assert not (workdir / ".ticket-worker" / "redis.url").exists()  # ... and stopped it
