"""A lean HTTP/1.1 transport for the helpdesk clients: the standard library's `http.client`
under the `httpx.Client` API.

    new_http_client(timeout_seconds=10)   # an httpx.Client sending through KeepAliveTransport

Why: a helpdesk call is small (a JSON body of a few dozen bytes, a short answer). httpx's
default transport (httpcore + h11) writes the head and the body in two socket writes and
spends most of a call's CPU time in its own machinery; `http.client` writes both in one and
parses the answer in C-backed code. Same answers, timeouts and errors (`bench.e2e` counts
the CPU time per event).

What it keeps from httpx's transport:
- keep-alive: one connection per thread and origin (the clients are shared by a worker's
  threads; a connection is never used by two at once), closed when the answer says so;
- no retries (one retry layer: `worker.delivery.retry`): a request is written once. A kept
  connection the server has closed while idle is noticed *before* writing (it reads as
  readable with nothing pending) and replaced, so a stale socket never costs a request;
- the request's timeouts (`request.extensions["timeout"]`, set by the client): connect,
  write and read, each per socket operation as in httpcore;
- errors as httpx raises them: ConnectTimeout/WriteTimeout/ReadTimeout, ConnectError,
  WriteError/ReadError, RemoteProtocolError (a malformed or oversized answer);
- TLS with `httpx.create_ssl_context()` (the same trust store and `SSL_CERT_FILE`).

Answers are read whole and refused past `MAX_ANSWER_BYTES` (a helpdesk's answers are small).
`http.client` bounds header lines (64 KiB) and their count (100) and parses with no
backtracking regular expression. Proxies: `new_http_client` keeps httpx's own transport
when the environment names a proxy (`HTTP_PROXY`, `HTTPS_PROXY`, ...), which this one does
not speak.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import urllib.request
from typing import Final

import httpx

MAX_ANSWER_BYTES: Final = 1 << 20

Origin = tuple[str, str, int]


class KeepAliveTransport(httpx.BaseTransport):
    """`http.client` connections kept per thread and origin (see the module docstring)."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._local = threading.local()
        self._all: set[http.client.HTTPConnection] = set()
        self._all_lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        connection = self._connection(origin, timeouts.get("connect"))
        try:
            return self._exchange(connection, request, timeouts)
        except BaseException:
            self._drop(origin, connection)
            raise

    def close(self) -> None:
        with self._all_lock:
            connections, self._all = self._all, set()
        for connection in connections:
            connection.close()

    def _connections(self) -> dict[Origin, http.client.HTTPConnection]:
        kept: dict[Origin, http.client.HTTPConnection] | None = getattr(self._local, "kept", None)
        if kept is None:
            kept = self._local.kept = {}
        return kept

    def _connection(
        self, origin: Origin, connect_timeout: float | None
    ) -> http.client.HTTPConnection:
        kept = self._connections()
        connection = kept.get(origin)
        if (
            connection is not None
            and connection.sock is not None
            and not _idle_and_open(connection.sock)
        ):
            self._drop(origin, connection)
            connection = None
        if connection is None:
            scheme, host, port = origin
            if scheme == "https":
                context = self._ssl_context or httpx.create_ssl_context()
                self._ssl_context = context
                connection = http.client.HTTPSConnection(
                    host, port, timeout=connect_timeout, context=context
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
            kept[origin] = connection
            with self._all_lock:
                self._all.add(connection)
        if connection.sock is None:
            connection.timeout = connect_timeout
            try:
                connection.connect()
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(str(exc) or "connect timed out") from exc
            except OSError as exc:
                raise httpx.ConnectError(str(exc)) from exc
        return connection

    def _drop(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        connection.close()
        kept = self._connections()
        if kept.get(origin) is connection:
            del kept[origin]
        with self._all_lock:
            self._all.discard(connection)

    @staticmethod
    def _exchange(
        connection: http.client.HTTPConnection,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        sock = connection.sock
        assert sock is not None  # connected by _connection
        body = request.read()
        _timeout(sock, timeouts.get("write"))
        try:
            connection.putrequest(
                request.method,
                request.url.raw_path.decode("ascii"),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for name, value in request.headers.raw:
                connection.putheader(name, value)
            connection.endheaders(body)  # head and body in one write
        except TimeoutError as exc:
            raise httpx.WriteTimeout(str(exc) or "write timed out", request=request) from exc
        except OSError as exc:
            raise httpx.WriteError(str(exc), request=request) from exc
        _timeout(sock, timeouts.get("read"))
        try:
            answer = connection.getresponse()
            content = answer.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except (http.client.HTTPException, ValueError) as exc:
            message = f"malformed answer ({type(exc).__name__})"
            raise httpx.RemoteProtocolError(message, request=request) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        if len(content) > MAX_ANSWER_BYTES or not answer.isclosed():
            raise httpx.RemoteProtocolError(
                f"answer longer than {MAX_ANSWER_BYTES} bytes", request=request
            )
        if answer.will_close:
            connection.close()
        return httpx.Response(
            answer.status,
            headers=answer.getheaders(),
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason.encode()},
        )


def _timeout(sock: socket.socket, seconds: float | None) -> None:
    """Set the socket's timeout when it changes (each set is a system call; the write and
    read timeouts are usually the same)."""
    if sock.gettimeout() != seconds:
        sock.settimeout(seconds)


def _idle_and_open(sock: socket.socket) -> bool:
    """A kept connection is reusable when nothing is waiting to be read on it: readable
    while idle means the server closed it (or sent what no request asked for). `poll`, not
    `select`: a process holding more than 1,024 descriptors would have every connection
    refused by `select` (ValueError) and reconnect on every call."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def proxy_configured() -> bool:
    """Whether the environment names a proxy (httpx's transport honours it; ours does not)."""
    return bool(urllib.request.getproxies())
