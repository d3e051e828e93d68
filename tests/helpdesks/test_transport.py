"""KeepAliveTransport against a scripted socket server: what crosses the wire, keep-alive,
stale connections, timeouts, malformed and oversized answers, threads."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from worker.errors import HelpdeskUnavailableError
from worker.helpdesks.awalchat import AwalChatClient
from worker.helpdesks.http import HelpdeskHttpClient, new_http_client
from worker.helpdesks.transport import MAX_ANSWER_BYTES, KeepAliveTransport

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Seen:
    """What the server read: each request's raw bytes, and per connection how many."""

    requests: list[bytes] = field(default_factory=list)
    connections: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


Answer = Callable[[socket.socket, int], bool]  # (connection, request number) -> keep going?


def read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head + b"\r\n\r\n" + body


@contextmanager
def server(answer: Answer) -> Iterator[tuple[str, Seen]]:
    """A local HTTP/1.1 server whose every request `answer` answers by hand."""
    seen = Seen()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve(conn: socket.socket, index: int) -> None:
        with conn:
            while not stop.is_set():
                try:
                    request = read_request(conn)
                except OSError:
                    return
                if request is None:
                    return
                with seen.lock:
                    seen.requests.append(request)
                    seen.connections[index] += 1
                    number = len(seen.requests)
                if not answer(conn, number):
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with seen.lock:
                seen.connections.append(0)
                index = len(seen.connections) - 1
            threading.Thread(target=serve, args=(conn, index), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def answering(raw: bytes, *, keep: bool = True) -> Answer:
    def answer(conn: socket.socket, _: int) -> bool:
        conn.sendall(raw)
        return keep

    return answer


def client(timeout: float = 5.0) -> httpx.Client:
    return httpx.Client(timeout=timeout, transport=KeepAliveTransport())


def test_head_and_body_cross_as_built_and_the_connection_is_kept() -> None:
    with server(answering(OK)) as (url, seen), client() as http:
        for n in range(5):
            response = http.post(f"{url}/a/b%2Fc?x={n}", content=b'{"route":"openTicket"}')
            assert response.status_code == 200
            assert response.json() == {}
    assert seen.connections == [5]
    head, _, body = seen.requests[2].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /a/b%2Fc?x=2 HTTP/1.1"
    assert f"host: {url.removeprefix('http://')}".encode() in [line.lower() for line in lines]
    assert b"content-length: 22" in [line.lower() for line in lines]
    assert body == b'{"route":"openTicket"}'


def test_a_connection_the_server_closed_while_idle_is_replaced_before_writing() -> None:
    with server(answering(OK, keep=False)) as (url, seen), client() as http:
        assert http.post(url, content=b"1").status_code == 200
        time.sleep(0.1)  # the server has closed it, with no `Connection: close`
        assert http.post(url, content=b"2").status_code == 200
    assert len(seen.requests) == 2  # written once each: nothing was retried
    assert seen.connections == [1, 1]


def test_an_answer_saying_close_closes_the_connection() -> None:
    closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    with server(answering(closing)) as (url, seen), client() as http:
        http.get(url)
        http.get(url)
    assert seen.connections == [1, 1]


def test_chunked_and_gzip_answers_are_read_whole() -> None:
    packed = gzip.compress(b'{"ok": true}')
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n"
        + f"{len(packed):x}\r\n".encode()
        + packed
        + b"\r\n0\r\n\r\n"
    )
    with server(answering(raw)) as (url, _), client() as http:
        assert http.get(url).json() == {"ok": True}
        assert http.get(url).json() == {"ok": True}  # the same connection, read to its end


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"HTTP/1.1 abc\r\n\r\n", httpx.RemoteProtocolError),
        (b"garbage\r\n\r\n", httpx.RemoteProtocolError),
        (
            f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_ANSWER_BYTES + 1}\r\n\r\n".encode()
            + b"x" * (MAX_ANSWER_BYTES + 1),
            httpx.RemoteProtocolError,
        ),
        (b"", httpx.RemoteProtocolError),  # closed without an answer
    ],
    ids=["bad status", "no status line", "oversized", "no answer"],
)
def test_malformed_answers_raise_httpx_errors(raw: bytes, error: type[Exception]) -> None:
    with server(answering(raw, keep=False)) as (url, _), client() as http, pytest.raises(error):
        http.get(url)


def test_a_silent_server_times_out_on_read() -> None:
    def silent(conn: socket.socket, number: int) -> bool:
        time.sleep(2)
        return False

    with server(silent) as (url, _), client(timeout=0.2) as http:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            http.post(url, content=b"x")
        assert time.monotonic() - started < 1.5


def test_a_refused_connection_is_a_connect_error_and_the_client_says_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with client() as http:
        with pytest.raises(httpx.ConnectError):
            http.get(f"http://127.0.0.1:{port}/")
        awalchat = AwalChatClient(
            http, base_url=f"http://127.0.0.1:{port}", hmac_secret="s", client_id="c", domain="d"
        )
        with pytest.raises(HelpdeskUnavailableError, match="no answer"):
            awalchat.open_ticket("1", "2")


def test_threads_never_share_a_connection() -> None:
    with server(answering(OK)) as (url, seen), client() as http:
        errors: list[BaseException] = []

        def calls() -> None:
            try:
                for _ in range(20):
                    assert http.post(url, content=b"x").status_code == 200
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=calls) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert len(seen.requests) == 80
    assert sorted(seen.connections) == [20, 20, 20, 20]


def test_a_proxy_in_the_environment_keeps_httpx_own_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with new_http_client(timeout_seconds=1) as http:
        assert isinstance(http._transport, KeepAliveTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    with new_http_client(timeout_seconds=1) as http:
        assert not isinstance(http._transport, KeepAliveTransport)


def test_a_cookie_an_answer_sets_is_not_sent_back() -> None:
    setting = OK.replace(b"Content-Length", b"Set-Cookie: session=abc; Path=/\r\nContent-Length")
    with server(answering(setting)) as (url, seen), new_http_client(timeout_seconds=5) as http:
        http.get(url)
        http.get(url)
    assert all(b"cookie:" not in request.lower() for request in seen.requests)
    assert len(http.cookies) == 0


def test_the_helpdesk_client_sends_straight_through_its_hooks_and_transport() -> None:
    seen_hooks: list[str] = []
    with server(answering(OK)) as (url, seen), new_http_client(timeout_seconds=5) as http:
        assert isinstance(http, HelpdeskHttpClient)
        http.event_hooks = {
            "request": [lambda request: seen_hooks.append(f"request {request.method}")],
            "response": [lambda response: seen_hooks.append(f"response {response.status_code}")],
        }
        response = http.send(http.build_request("POST", url, content=b"x"))  # the direct path
        assert response.json() == {}
        assert response.request.method == "POST"
        assert http.post(url, content=b"y").status_code == 200  # httpx's own send (options)
    assert seen_hooks == ["request POST", "response 200"] * 2
    assert len(seen.requests) == 2
    with pytest.raises(RuntimeError, match="closed"):
        http.send(http.build_request("GET", url))


def test_a_failing_response_hook_closes_the_answer_and_raises() -> None:
    def refuse(response: httpx.Response) -> None:
        raise ValueError("no")

    with server(answering(OK)) as (url, _), new_http_client(timeout_seconds=5) as http:
        http.event_hooks = {"request": [], "response": [refuse]}
        with pytest.raises(ValueError, match="no"):
            http.send(http.build_request("GET", url))


def test_a_kept_connection_is_reused_when_its_descriptor_is_past_1024() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("this machine allows too few descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    fillers = [socket.socket() for _ in range(1030)]  # the connection's descriptor comes after
    try:
        with server(answering(OK)) as (url, seen), client() as http:
            for _ in range(3):
                assert http.post(url, content=b"x").status_code == 200
        assert seen.connections == [3]
    finally:
        for filler in fillers:
            filler.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
