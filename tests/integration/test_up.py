"""`ticket-worker up` as a new user runs it: embedded Redis, dry-run without credentials,
`send` shows the decision, Ctrl-C stops every child."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import REPO_ROOT, running_up

pytestmark = pytest.mark.integration


def test_up_runs_dry_run_on_an_embedded_redis_and_stops_cleanly(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "rules", tmp_path / "rules")
    sample = REPO_ROOT / "tests" / "fixtures" / "webhooks" / "message_received_help.json"
    cli = [sys.executable, "-m", "worker.ops.cli"]
    with running_up(tmp_path) as up:
        text = up.log.read_text()
        assert f"POST http://127.0.0.1:{up.port}/webhooks/awalchat" in text
        assert "DRY-RUN" in text
        sent = subprocess.run(
            [*cli, "send", str(sample)],
            cwd=tmp_path,
            env=up.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("202 ")
        assert "open_ticket              dry_run" in sent.stdout
        assert len(processes_in(tmp_path)) >= 3  # receiver, worker, redis-server
    assert (tmp_path / ".ticket-worker" / "appendonly.aof").exists()
    assert processes_in(tmp_path) == []  # receiver, worker and redis-server all gone


def processes_in(folder: Path) -> list[int]:
    """Pids of the processes whose working folder is `folder` (all of up's children)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cwd").resolve() == folder.resolve():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
