"""`ticket-worker up`: receiver, worker, console (when ADMIN_TOKEN or VIEWER_TOKEN is set)
and (when needed) Redis as one supervised group.

With no REDIS_URL an embedded redis-server (append-only, under `.ticket-worker/`) is
started; with no helpdesk credentials at all the group runs dry-run and says so. If any
child dies the others are stopped; Ctrl-C (or SIGTERM) stops every child cleanly.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from worker.ops.embedded_redis import STATE_DIR, EmbeddedRedis
from worker.settings import Settings

SECRET_FILE: Final = "webhook-secret"
RECEIVER_FILE: Final = "receiver.url"
STOP_TIMEOUT: Final = 10.0


def local_webhook_secret(state_dir: Path = STATE_DIR) -> str:
    """The webhook secret `up` generated for local use (created on first call)."""
    path = state_dir / SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    secret = "whsec-local-" + secrets.token_hex(16)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


def known_receiver(state_dir: Path = STATE_DIR) -> str | None:
    """The webhook URL of the receiver `up` runs from this folder, if any."""
    path = state_dir / RECEIVER_FILE
    return path.read_text().strip() if path.exists() else None


def effective_settings(settings: Settings) -> Settings:
    """The settings `up` runs its children with: an embedded Redis when REDIS_URL is unset
    (a placeholder here, the real URL once it runs) and dry-run when no credential is set."""
    changes: dict[str, object] = {}
    if not settings.redis_url:
        changes["redis_url"] = "redis://embedded"
    if not settings.dry_run and not settings.has_any_credentials():
        changes["dry_run"] = True
    return settings.model_copy(update=changes)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if `up` itself dies (Linux), so no child outlives it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # A session of its own: Ctrl-C reaches only `up`, which then stops each child once.
    return subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_die_with_parent)


def stop_processes(
    children: Sequence[subprocess.Popen[bytes]], timeout: float = STOP_TIMEOUT
) -> None:
    """SIGTERM every child, wait up to `timeout` seconds in all, then SIGKILL the stragglers."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def run_up(
    settings: Settings,
    *,
    host: str,
    port: int,
    concurrency: int,
    console_port: int = 8001,
    preflight: Callable[[str], object] | None = None,
    echo: Callable[[str], None] = print,
) -> int:
    """Run the group until Ctrl-C or a child's death; return the exit code.

    `preflight(redis_url)` runs once Redis runs (embedded or not) and before any child
    starts; whatever it raises stops `up` (the embedded Redis too) and propagates.
    """
    env = dict(os.environ)
    embedded: EmbeddedRedis | None = None
    notes: list[str] = []
    if not settings.redis_url:
        embedded = EmbeddedRedis()
        embedded.start()
        env["REDIS_URL"] = embedded.url
        notes.append(f"redis:    embedded {embedded.url} (append-only, in {STATE_DIR}/)")
    else:
        notes.append("redis:    REDIS_URL")
    if preflight is not None:
        try:
            preflight(embedded.url if embedded is not None else settings.require_redis_url())
        except BaseException:
            if embedded is not None:
                embedded.stop()
            raise
    if not settings.dry_run and not settings.has_any_credentials():
        env["DRY_RUN"] = "true"
        notes.append("mode:     DRY-RUN (no helpdesk credentials set: decisions only, no calls)")
    else:
        notes.append("mode:     " + ("DRY-RUN (DRY_RUN=true)" if settings.dry_run else "LIVE"))
    if not settings.awalchat_webhook_secrets:
        env["AWALCHAT_WEBHOOK_SECRETS"] = local_webhook_secret()
        notes.append(f"secret:   generated for local use in {STATE_DIR}/{SECRET_FILE}")
    url = f"http://{host}:{port}/webhooks/awalchat"
    cli = [sys.executable, "-m", "worker.ops.cli"]
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        children.append(_spawn([*cli, "serve", "--host", host, "--port", str(port)], env))
        children.append(_spawn([*cli, "work", "--concurrency", str(concurrency)], env))
        if settings.admin_token is not None or settings.viewer_token is not None:
            console = [*cli, "console", "--host", host, "--port", str(console_port)]
            children.append(_spawn(console, env))
            notes.append(f"console:  http://{host}:{console_port}/ (sign in with the token)")
        else:
            notes.append("console:  off (set ADMIN_TOKEN or VIEWER_TOKEN to turn it on)")
        STATE_DIR.mkdir(exist_ok=True)
        (STATE_DIR / RECEIVER_FILE).write_text(url + "\n")
        echo("ticket-worker is up")
        echo(f"webhooks: POST {url}")
        for note in notes:
            echo(note)
        echo("try:      ticket-worker send tests/fixtures/webhooks/message_received_help.json")
        echo("stop:     Ctrl-C")
        while not stopping:
            dead = [c for c in children if c.poll() is not None]
            if dead:
                echo(f"a child process exited with code {dead[0].returncode}; stopping")
                return 1
            time.sleep(0.2)
        echo("stopping...")
        return 0
    finally:
        stop_processes(children)
        (STATE_DIR / RECEIVER_FILE).unlink(missing_ok=True)
        if embedded is not None:
            embedded.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
