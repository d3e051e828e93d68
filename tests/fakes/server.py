"""Start the fake providers as a real process and drive them over HTTP.

    with run_fake_providers(limit=5, window=2.0) as fake:
        client = AwalChatClient(http, base_url=fake.awalchat_base_url,
                                hmac_secret=fake.awalchat_secret,
                                client_id=fake.awalchat_client_id, domain=fake.awalchat_domain)
        fake.control.configure(awalchat={"fail_ratio": 0.2})
        fake.control.calls("awalchat")          # -> list[CallRecord]

`FakeControl` takes any httpx.Client pointed at the server, so it drives a Starlette
TestClient of `providers.create_app()` just as well.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from tests.fakes.awalchat_fake import DEFAULT_CLIENT_ID, DEFAULT_DOMAIN, DEFAULT_SECRET, PREFIX
from tests.fakes.common import CallRecord
from tests.fakes.helpwave_fake import DEFAULT_API_KEY
from tests.fakes.providers import READY

REPO_ROOT = Path(__file__).resolve().parents[2]
PHONE_NUMBER_ID = "100200300"  # the fake accepts any non-empty phone_number_id


class FakeControl:
    """The `/_fake/` control API through an httpx.Client whose base_url is the server."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def _checked(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def calls(self, vendor: str | None = None) -> list[CallRecord]:
        """Every vendor call so far, oldest first (only `vendor`'s when given)."""
        params = {"vendor": vendor} if vendor else {}
        body = self._checked(self.http.get("/_fake/calls", params=params))
        return [CallRecord.model_validate(call) for call in body["calls"]]

    def count(self, vendor: str | None = None) -> int:
        """How many vendor calls so far (only `vendor`'s when given); cheap to poll."""
        params = {"vendor": vendor} if vendor else {}
        return int(self._checked(self.http.get("/_fake/count", params=params))["count"])

    def configure(
        self,
        *,
        awalchat: dict[str, Any] | None = None,
        helpwave: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Change knobs (see AwalChatConfig, HelpWaveConfig); returns the new config."""
        changes: dict[str, Any] = {"awalchat": awalchat or {}, "helpwave": helpwave or {}}
        if seed is not None:
            changes["seed"] = seed
        result: dict[str, Any] = self._checked(self.http.post("/_fake/config", json=changes))
        return result

    def reset(self) -> None:
        """Startup config, no state, empty call log."""
        self._checked(self.http.post("/_fake/reset"))

    def state(self) -> dict[str, Any]:
        """{"awalchat": {"tickets": {conv: {...}}, ...}, "helpwave": {...}}."""
        result: dict[str, Any] = self._checked(self.http.get("/_fake/state"))
        return result

    def close_helpwave_ticket(self, ticket_id: str) -> None:
        """Close a HelpWave ticket's HumanTicket, as an agent would."""
        self._checked(self.http.post(f"/_fake/helpwave/tickets/{ticket_id}/close"))


@dataclass(frozen=True)
class FakeProvidersServer:
    """A running fake: where to point each client, its credentials and its control API."""

    base_url: str
    awalchat_secret: str
    helpwave_api_key: str
    control: FakeControl
    awalchat_domain: str = DEFAULT_DOMAIN
    awalchat_client_id: str = DEFAULT_CLIENT_ID
    phone_number_id: str = PHONE_NUMBER_ID
    pid: int | None = None  # the fake's process, for benchmarks that count its CPU time

    @property
    def awalchat_base_url(self) -> str:
        return f"{self.base_url}{PREFIX}"

    @property
    def helpwave_base_url(self) -> str:
        return self.base_url

    def env(self) -> dict[str, str]:
        """The ticket-worker settings (environment names) that point at this fake."""
        return {
            "AWALCHAT_BASE_URL": self.awalchat_base_url,
            "AWALCHAT_HMAC_SECRET": self.awalchat_secret,
            "AWALCHAT_CLIENT_ID": self.awalchat_client_id,
            "AWALCHAT_DOMAIN": self.awalchat_domain,
            "AWALCHAT_PHONE_NUMBER_ID": self.phone_number_id,
            "HELPWAVE_BASE_URL": self.helpwave_base_url,
            "HELPWAVE_API_KEY": self.helpwave_api_key,
        }


def _wait_ready(proc: subprocess.Popen[str], log: IO[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([proc.stdout], [], [], left)
        line = proc.stdout.readline() if readable else ""
        if line.startswith(READY):
            return line.removeprefix(READY).strip()
        if readable and not line:  # EOF: the process is gone
            break
    log.seek(0)
    raise RuntimeError(f"fake providers did not start:\n{log.read().decode(errors='replace')}")


@contextmanager
def run_fake_providers(
    *,
    awalchat_secret: str = DEFAULT_SECRET,
    helpwave_key: str = DEFAULT_API_KEY,
    limit: int | None = None,
    window: float | None = None,
    seed: int = 0,
    ready_timeout: float = 15.0,
) -> Iterator[FakeProvidersServer]:
    """Run `python -m tests.fakes.providers` on a free port until the block exits."""
    command = [sys.executable, "-m", "tests.fakes.providers", "--port", "0", "--seed", str(seed)]
    command += ["--awalchat-secret", awalchat_secret, "--helpwave-key", helpwave_key]
    if limit is not None:
        command += ["--limit", str(limit)]
    if window is not None:
        command += ["--window", str(window)]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with (
        tempfile.TemporaryFile() as log,
        subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        ) as proc,
    ):
        try:
            base_url = _wait_ready(proc, log, ready_timeout)
            with httpx.Client(base_url=base_url, timeout=10.0) as http:
                yield FakeProvidersServer(
                    base_url=base_url,
                    awalchat_secret=awalchat_secret,
                    helpwave_api_key=helpwave_key,
                    control=FakeControl(http),
                    pid=proc.pid,
                )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
