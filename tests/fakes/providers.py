"""Both fake vendors on one Starlette app, with a control API, runnable as a process.

    /api/developer/...   fake AwalChat (awalchat_fake.py)   base_url: {server}/api/developer
    /api/v1/...          fake HelpWave (helpwave_fake.py)   base_url: {server}
    /_fake/calls         GET: every vendor call (?vendor=awalchat|helpwave), secrets redacted
    /_fake/count         GET: how many calls (?vendor=...), cheap to poll
    /_fake/config        POST {"awalchat": {...}, "helpwave": {...}, "seed": n}: change knobs
                         (unknown knobs -> 400); answers the new config
    /_fake/reset         POST: back to the startup config, empty state and log, RNG reseeded
    /_fake/state         GET: tickets, customers, comments and config (secrets left out)
    /_fake/helpwave/tickets/{id}/close   POST: close a HelpWave HumanTicket as an agent would

    python -m tests.fakes.providers --port 0 [--awalchat-secret S] [--helpwave-key K]
                                    [--limit N --window W] [--seed N]

prints `fake-providers ready http://HOST:PORT` once it accepts connections (port 0 picks a
free one). `tests.fakes.server.run_fake_providers` starts it for tests.
"""

from __future__ import annotations

import argparse
import socket
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.awalchat_fake import AwalChatConfig, AwalChatFake
from tests.fakes.common import CallRecord, DroppingApp, Faults, Hub, parse_json_object
from tests.fakes.helpwave_fake import HelpWaveConfig, HelpWaveFake

READY = "fake-providers ready"


class FakeProviders:
    """The state behind the app: `hub` (log, RNG, clock), `awalchat`, `helpwave`."""

    def __init__(
        self,
        *,
        awalchat: AwalChatConfig | None = None,
        helpwave: HelpWaveConfig | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = Hub(seed=seed, clock=clock)
        self.awalchat = AwalChatFake(self.hub, awalchat or AwalChatConfig())
        self.helpwave = HelpWaveFake(self.hub, helpwave or HelpWaveConfig())

    def reset(self) -> None:
        self.hub.reset()
        self.awalchat.reset()
        self.helpwave.reset()

    def config(self) -> dict[str, Any]:
        return {
            "awalchat": self.awalchat.config.model_dump(exclude={"secret"}),
            "helpwave": self.helpwave.config.model_dump(exclude={"api_key"}),
            "seed": self.hub.seed,
        }


def create_app(providers: FakeProviders | None = None) -> Starlette:
    """The combined fake; `app.state.providers` is the FakeProviders behind it."""
    fake = providers or FakeProviders()

    async def calls(request: Request) -> Response:
        vendor = request.query_params.get("vendor")
        listed = [c.model_dump() for c in fake.hub.calls if vendor in (None, c.vendor)]
        return JSONResponse({"calls": listed})

    async def count(request: Request) -> Response:
        vendor = request.query_params.get("vendor")
        return JSONResponse({"count": sum(vendor in (None, c.vendor) for c in fake.hub.calls)})

    async def configure(request: Request) -> Response:
        changes = parse_json_object(await request.body())
        if changes is None or changes.keys() - {"awalchat", "helpwave", "seed"}:
            return JSONResponse({"error": "expected {awalchat?, helpwave?, seed?}"}, 400)
        try:
            fake.awalchat.configure(dict(changes.get("awalchat") or {}))
            fake.helpwave.configure(dict(changes.get("helpwave") or {}))
        except (ValidationError, TypeError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        if isinstance(changes.get("seed"), int):
            fake.hub.seed = changes["seed"]
            fake.hub.reset_rng()
        return JSONResponse(fake.config())

    async def reset(request: Request) -> Response:
        fake.reset()
        return JSONResponse({"ok": True})

    async def state(request: Request) -> Response:
        return JSONResponse(
            {"awalchat": fake.awalchat.snapshot(), "helpwave": fake.helpwave.snapshot()}
        )

    async def close_helpwave(request: Request) -> Response:
        closed = fake.helpwave.close_ticket(request.path_params["ticket_id"])
        return JSONResponse({"closed": closed}, 200 if closed else 404)

    async def unknown(request: Request) -> Response:
        async def not_found(call: CallRecord, body: bytes) -> Response:
            return JSONResponse({"error": "Not found"}, 404)

        return await fake.hub.run("unknown", Faults(), request, not_found)

    routes = [
        *fake.awalchat.routes(),
        *fake.helpwave.routes(),
        Route("/_fake/calls", calls, methods=["GET"]),
        Route("/_fake/count", count, methods=["GET"]),
        Route("/_fake/config", configure, methods=["POST"]),
        Route("/_fake/reset", reset, methods=["POST"]),
        Route("/_fake/state", state, methods=["GET"]),
        Route("/_fake/helpwave/tickets/{ticket_id}/close", close_helpwave, methods=["POST"]),
        Route("/api/{rest:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.providers = fake
    return app


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self.url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        print(f"{READY} {self.url}", flush=True)


def main(argv: list[str] | None = None) -> None:
    """Serve both fakes on one port until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.providers")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--awalchat-secret", default=AwalChatConfig().secret)
    parser.add_argument("--helpwave-key", default=HelpWaveConfig().api_key)
    parser.add_argument("--limit", type=int, default=AwalChatConfig().limit)
    parser.add_argument("--window", type=float, default=AwalChatConfig().window)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    fake = FakeProviders(
        awalchat=AwalChatConfig(secret=args.awalchat_secret, limit=args.limit, window=args.window),
        helpwave=HelpWaveConfig(api_key=args.helpwave_key),
        seed=args.seed,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(
        DroppingApp(create_app(fake)),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    with sock:
        _Server(config, f"http://{host}:{port}").run(sockets=[sock])


if __name__ == "__main__":
    main()
