"""uvicorn with the guarded protocol: a request's head must arrive in time and stay small,
and slow or bloated heads never hold up other requests (worker/serving.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from tests.helpers_redis import free_port
from worker.receiver.handlers import READ_TIMEOUT_SECONDS
from worker.receiver.serving import (
    DEFAULT_HTTP_PROTOCOL,
    HEAD_TIMEOUT_SECONDS,
    MAX_HEAD_BYTES,
    guarded_http_protocol,
)

HEAD_TIMEOUT = 0.5
HEAD = b"POST /echo HTTP/1.1\r\nhost: test\r\ncontent-length: %d\r\n\r\n"


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 with the request body."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """A uvicorn server in a thread, its heads bounded by HEAD_TIMEOUT and MAX_HEAD_BYTES."""
    chosen = free_port()
    config = uvicorn.Config(
        echo,
        host="127.0.0.1",
        port=chosen,
        http=guarded_http_protocol(head_timeout=HEAD_TIMEOUT),
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield chosen
    server.should_exit = True
    thread.join(10)


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def request(body: bytes) -> bytes:
    return HEAD % len(body) + body


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until its answer is complete or it closes."""
    received = b""
    while True:
        head, _, body = received.partition(b"\r\n\r\n")
        lengths = [line for line in head.lower().split(b"\r\n") if b"content-length" in line]
        if lengths and len(body) >= int(lengths[0].split(b":")[1]):
            return received
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


def closed_after(sock: socket.socket, trickle: bytes = b"") -> float:
    """Seconds until the server closes `sock`, sending `trickle` a byte every 50 ms."""
    started = time.monotonic()
    sock.settimeout(0.05)
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
            if sock.recv(1) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:  # reset: closed
            return time.monotonic() - started
    sock.settimeout(5)
    with contextlib.suppress(ConnectionResetError):  # a reset is a close too
        assert sock.recv(1) == b""
    return time.monotonic() - started


def test_a_request_is_answered(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(request(b"hello"))
        assert answer(sock).startswith(b"HTTP/1.1 200 ")


def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(port: int) -> None:
    with connect(port) as sock:
        assert HEAD_TIMEOUT - 0.05 <= closed_after(sock) < HEAD_TIMEOUT + 1


def test_a_head_trickling_past_the_head_timeout_is_closed(port: int) -> None:
    with connect(port) as sock:
        endless = b"POST /echo HTTP/1.1\r\nx-slow: " + b"a" * 1000
        assert HEAD_TIMEOUT - 0.05 <= closed_after(sock, endless) < HEAD_TIMEOUT + 1


def test_a_kept_alive_connection_gets_the_head_timeout_again_for_each_request(
    port: int,
) -> None:
    with connect(port) as sock:
        for _ in range(3):
            time.sleep(HEAD_TIMEOUT * 0.6)  # idle between requests: the time is per request
            sock.sendall(request(b"again"))
            assert answer(sock).endswith(b"again")
        sock.sendall(HEAD[:20])
        assert closed_after(sock) < HEAD_TIMEOUT + 1


def test_a_head_over_the_size_limit_is_431_and_closed(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nx-big: " + b"a" * MAX_HEAD_BYTES)
        refused = answer(sock)
        assert refused.startswith(b"HTTP/1.1 431 ")
        assert b'"error":"headers_too_large"' in refused
        assert sock.recv(1) == b""


def test_a_body_sent_with_its_head_does_not_count_as_head(port: int) -> None:
    body = b"b" * (MAX_HEAD_BYTES * 8)
    with connect(port) as sock:
        sock.sendall(request(body))
        assert answer(sock).endswith(body)


def test_slow_heads_never_hold_up_other_requests(port: int) -> None:
    tricklers = [connect(port) for _ in range(20)]
    try:
        for sock in tricklers:
            sock.sendall(b"POST /echo HTTP/1.1\r\nx-slow: a")
        for _ in range(5):
            started = time.monotonic()
            with connect(port) as sock:
                sock.sendall(request(b"prompt"))
                assert answer(sock).endswith(b"prompt")
            assert time.monotonic() - started < 1.0
    finally:
        for sock in tricklers:
            sock.close()


def test_heads_get_as_long_as_bodies_by_default() -> None:
    assert HEAD_TIMEOUT_SECONDS == READ_TIMEOUT_SECONDS == 10.0


def test_the_default_protocol_can_be_named_on_uvicorns_command_line() -> None:
    config = uvicorn.Config(echo, http="worker.receiver.serving:DEFAULT_HTTP_PROTOCOL")
    config.load()
    assert config.http_protocol_class is DEFAULT_HTTP_PROTOCOL
