"""interface.md, "Hostile cost", on a real `ticket-worker serve`: every body under the size
limit, signed or not, is answered within 2 s while /healthz keeps answering within 1 s; slow
senders never delay other webhooks, and a body not complete in time gets 408.

These tests time the answers: the contract itself is a time bound, and these are its numbers.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.helpers_redis import RedisServer, start_redis_server
from tests.hostile_bodies import HOSTILE_BODIES, HostileBody
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

ANSWER_WITHIN = 2.0  # seconds, for each hostile body
HEALTHZ_WITHIN = 1.0  # seconds, meanwhile
READ_TIMEOUT = 2.0  # RECEIVER_READ_TIMEOUT_SECONDS for the slow-sender test (10 s in production)
URL = "/webhooks/awalchat"


@pytest.fixture(scope="module")
def module_redis() -> Iterator[RedisServer]:
    with start_redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def receiver(module_redis: RedisServer) -> Iterator[Deployment]:
    """`ticket-worker serve` alone (no worker: nothing here needs one)."""
    with Deployment(module_redis.url, env={"DRY_RUN": "true"}, workers=0) as dep:
        yield dep


@dataclass
class Timed:
    status: int | None = None  # None: no answer (a timeout)
    seconds: float = float("inf")
    healthz: list[float] = field(default_factory=list)


def post_while_polling_healthz(dep: Deployment, body: bytes, headers: dict[str, str]) -> Timed:
    """POST `body` from a thread and poll /healthz until it is answered (at least once)."""
    timed = Timed()

    def post() -> None:
        started = time.monotonic()
        with httpx.Client(base_url=dep.url, timeout=10) as client:
            try:
                timed.status = client.post(URL, content=body, headers=headers).status_code
            except httpx.TimeoutException:
                return
        timed.seconds = time.monotonic() - started

    poster = threading.Thread(target=post)
    poster.start()
    with httpx.Client(base_url=dep.url, timeout=5) as client:
        while poster.is_alive() or not timed.healthz:
            started = time.monotonic()
            try:
                assert client.get("/healthz").status_code == 200
            except httpx.TimeoutException:
                timed.healthz.append(float("inf"))
                break
            timed.healthz.append(time.monotonic() - started)
    poster.join()
    return timed


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("hostile", HOSTILE_BODIES, ids=[h.name for h in HOSTILE_BODIES])
def test_a_costly_body_is_answered_within_2_s_while_healthz_answers_within_1_s(
    receiver: Deployment, hostile: HostileBody, signed: bool
) -> None:
    timed = post_while_polling_healthz(
        receiver, hostile.body, receiver.headers(hostile.body, signed=signed)
    )
    assert timed.status == (hostile.signed_status if signed else 401)
    assert timed.seconds < ANSWER_WITHIN
    assert max(timed.healthz) < HEALTHZ_WITHIN, timed.healthz


@dataclass
class SlowSender:
    """One connection sending `head` at once, then `trickle` a byte at a time until the
    server answers or closes."""

    head: bytes
    trickle: bytes
    started: float = 0.0
    ended: float | None = None  # when the server answered or closed
    answer: bytes = b""  # all it sent until it closed

    @property
    def seconds(self) -> float:
        assert self.ended is not None, "the server neither answered nor closed"
        return self.ended - self.started


def trickle(port: int, senders: list[SlowSender], *, interval: float, until: float) -> None:
    """Run `senders` side by side, a byte each every `interval` seconds, until the server
    has closed every connection or `until` (monotonic) passes."""
    sockets = {}
    for sender in senders:
        sockets[socket.create_connection(("127.0.0.1", port), timeout=5)] = sender
        sender.started = time.monotonic()
    for sock, sender in sockets.items():
        sock.sendall(sender.head)
    sent = 0
    try:
        while sockets and time.monotonic() < until:
            readable, _, _ = select.select(list(sockets), [], [], 0)
            for sock in readable:
                sender = sockets[sock]
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                sender.ended = sender.ended or time.monotonic()
                sender.answer += chunk
                if not chunk:
                    del sockets[sock]
                    sock.close()
            for sock, sender in sockets.items():
                if sender.ended is None and sent < len(sender.trickle):
                    sock.sendall(sender.trickle[sent : sent + 1])
            sent += 1
            time.sleep(interval)
    finally:
        for sock in sockets:
            sock.close()


def test_slow_senders_get_408_or_are_closed_and_never_delay_other_webhooks(
    module_redis: RedisServer,
) -> None:
    env = {"DRY_RUN": "true", "RECEIVER_READ_TIMEOUT_SECONDS": str(READ_TIMEOUT)}
    with Deployment(module_redis.url, env=env, workers=0) as dep:
        body = json.dumps({"event": "slow", "text": "s" * 1000}).encode()  # 20 s at this pace
        head = f"POST {URL} HTTP/1.1\r\nhost: receiver\r\ncontent-length: {len(body)}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in dep.headers(body).items())
        trickling_bodies = [SlowSender(head.encode() + b"\r\n", body) for _ in range(8)]
        slow_head = f" HTTP/1.1\r\nhost: receiver\r\nx-slow: {'s' * 1000}".encode()
        trickling_heads = [SlowSender(f"POST {URL}".encode(), slow_head) for _ in range(2)]
        senders = trickling_bodies + trickling_heads
        tricklers = threading.Thread(
            target=trickle,
            args=(dep.port, senders),
            kwargs={"interval": 0.05, "until": time.monotonic() + READ_TIMEOUT + 5},
        )
        tricklers.start()
        try:
            for n in range(6):
                time.sleep(READ_TIMEOUT / 5)
                started = time.monotonic()
                other = json.dumps({"event": "other", "data": {"conversation_id": n}}).encode()
                assert dep.post(other).status_code == 202
                assert time.monotonic() - started < 1.0  # promptly, trickle or not
        finally:
            tricklers.join()

    for sender in trickling_bodies:
        response_head, _, answer = sender.answer.partition(b"\r\n\r\n")
        assert response_head.startswith(b"HTTP/1.1 408 "), sender.answer
        assert b"connection: close" in response_head.lower()
        assert json.loads(answer) == {
            "error": "request_timeout",
            "message": f"body not complete within {READ_TIMEOUT:g} s",
        }
        assert READ_TIMEOUT - 0.05 <= sender.seconds < READ_TIMEOUT + 1.5
    for sender in trickling_heads:
        assert sender.answer == b""  # closed without an answer
        assert READ_TIMEOUT - 0.05 <= sender.seconds < READ_TIMEOUT + 1.5
