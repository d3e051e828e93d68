"""`ticket-worker up` as a new user runs it: embedded Redis, dry-run without credentials,
`send` shows the decision, Ctrl-C stops every child."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers_redis import free_port
from tests.integration.harness import REPO_ROOT

pytestmark = pytest.mark.integration


def test_up_runs_dry_run_on_an_embedded_redis_and_stops_cleanly(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "rules", tmp_path / "rules")
    sample = REPO_ROOT / "tests" / "fixtures" / "webhooks" / "message_received_help.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWALCHAT_", "HELPWAVE_", "REDIS_", "DRY_RUN", "RULES_"))
    }
    env.update(PYTHONPATH=str(REPO_ROOT), WORKER_METRICS_PORT="0")
    port = free_port()
    cli = [sys.executable, "-m", "worker.ops.cli"]
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [*cli, "up", "--port", str(port)], cwd=tmp_path, env=env, stdout=out, stderr=out
        )
        try:
            deadline = time.monotonic() + 30
            while b"celery@" not in log.read_bytes() or b" ready." not in log.read_bytes():
                assert up.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            text = log.read_text()
            assert f"POST http://127.0.0.1:{port}/webhooks/awalchat" in text
            assert "DRY-RUN" in text
            sent = subprocess.run(
                [*cli, "send", str(sample)],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert sent.returncode == 0, sent.stderr
            assert sent.stdout.startswith("202 ")
            assert "open_ticket              dry_run" in sent.stdout
            assert len(processes_in(tmp_path)) >= 3  # receiver, worker, redis-server
        finally:
            up.send_signal(signal.SIGINT)
            assert up.wait(timeout=20) == 0, log.read_text()
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
