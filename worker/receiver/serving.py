"""How `ticket-worker serve` runs the receiver under uvicorn, bounding slow and bloated heads.

uvicorn bounds neither how long a request's head (request line and headers) may take to
arrive nor, with httptools, how large it may grow: `timeout_keep_alive` runs only between
requests and any byte received disarms it, and httptools buffers header bytes until a line
ends. One client could hold a connection for ever with a header byte every few seconds, or
grow a header without end. `guarded_http_protocol()` is uvicorn's httptools protocol with
both bounds added:

- a head must be complete within `HEAD_TIMEOUT_SECONDS` of the connection opening (first
  request) or of its first byte (later requests on a kept-alive connection), else the
  connection is closed without an answer;
- a head over `MAX_HEAD_BYTES` is answered 431 and the connection closed.

The body then has `worker.receiver.handlers.READ_TIMEOUT_SECONDS` (408 past it). Together: no
request holds its connection longer than about 20 s before it is answered, and none of this
waiting blocks the event loop, so a trickling sender never delays anyone else's webhook.

What only the network in front can do: limit how many connections one client opens. Each
open connection costs a file descriptor and up to about `MAX_HEAD_BYTES` + 1 MiB of memory;
a reverse proxy or load balancer with per-client connection limits belongs in front of any
receiver exposed to the internet.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from worker.receiver.deadlines import Deadlines
from worker.receiver.handlers import READ_TIMEOUT_SECONDS

HEAD_TIMEOUT_SECONDS = READ_TIMEOUT_SECONDS
MAX_HEAD_BYTES = 16 * 1024  # h11's default limit, which uvicorn applies with `--http h11`
SHUTDOWN_SECONDS = 5

_HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
)


class _GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a deadline and a size bound on each request's head."""

    heads: ClassVar[Deadlines[_GuardedHttpToolsProtocol]]
    max_head_bytes: ClassVar[int]
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.heads.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.heads.discard(self)
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self not in self.heads:  # the first request's time started with the connection
            self.heads.add(self)

    def on_headers_complete(self) -> None:
        self.heads.discard(self)
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self in self.heads:  # all of `data` went to a head that is still incomplete
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes and not self.transport.is_closing():
                self.heads.discard(self)
                message = b'{"error":"headers_too_large","message":"request head over %d bytes"}'
                body = message % self.max_head_bytes
                self.transport.write(_HEAD_TOO_LARGE % (len(body), body))
                self.transport.close()

    def head_too_slow(self) -> None:
        """Close the connection: its request's head did not arrive in time."""
        if not self.transport.is_closing():
            self.transport.close()


def guarded_http_protocol(
    *, head_timeout: float = HEAD_TIMEOUT_SECONDS, max_head_bytes: int = MAX_HEAD_BYTES
) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol bounding each request's head (see the module docstring).

    Pass it as `uvicorn.run(..., http=...)`; the connections of one server share one timer.
    """

    class GuardedHttpToolsProtocol(_GuardedHttpToolsProtocol):
        heads = Deadlines(head_timeout, _GuardedHttpToolsProtocol.head_too_slow)

    GuardedHttpToolsProtocol.max_head_bytes = max_head_bytes
    return GuardedHttpToolsProtocol


DEFAULT_HTTP_PROTOCOL = guarded_http_protocol()
"""With the default bounds, by name: `uvicorn --http worker.receiver.serving:DEFAULT_HTTP_PROTOCOL`
(bench/receiver.py runs the receiver so)."""


def serve(app: ASGIApp, *, host: str, port: int, read_timeout: float) -> None:
    """Serve `app` until SIGTERM or SIGINT, heads and bodies each bounded by `read_timeout`."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=guarded_http_protocol(head_timeout=read_timeout),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_SECONDS,
    )
