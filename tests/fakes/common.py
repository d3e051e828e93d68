"""What both fake vendors share: the call log, seeded faults, JSON answers, dropped connections.

A vendor handler runs `Hub.run(vendor, faults, request, decide)`:

    record the call -> drop before acting? -> decide (checks, then maybe the effect)
    -> fail_ratio: 503 instead (checked inside `decide`, before the effect) -> delay
    -> drop after acting? -> answer

A drop answers nothing: `DroppingApp` makes uvicorn close the connection without a single
byte of response, so an httpx client sees `RemoteProtocolError`. Without that wrapper (e.g.
under Starlette's TestClient) a drop raises ConnectionAbortedError out of the app instead.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

Vendor = Literal["awalchat", "helpwave", "unknown"]
SECRET_HEADERS = frozenset({"x-api-key", "authorization"})
_DROP_KEY = "fake.drop"


class Faults(BaseModel):
    """Fault knobs of one fake vendor; ratios are probabilities drawn from the seeded RNG.

    `auth`: "verify" checks credentials, "skip" accepts anything (unsigned calls included),
    "reject" answers 401 to everything.
    """

    model_config = ConfigDict(extra="forbid")

    fail_ratio: float = Field(default=0.0, ge=0.0, le=1.0)  # 503, no effect
    delay: float = Field(default=0.0, ge=0.0)  # seconds before answering (after the effect)
    drop_before_act: float = Field(default=0.0, ge=0.0, le=1.0)  # no effect, no answer
    drop_after_act: float = Field(default=0.0, ge=0.0, le=1.0)  # effect applied, no answer
    auth: Literal["verify", "skip", "reject"] = "verify"


class CallRecord(BaseModel):
    """One call a fake vendor received, as `GET /_fake/calls` lists it."""

    seq: int
    vendor: Vendor
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: str
    time: float
    status: int | None = None  # the status answered (or that would have been, when dropped)
    outcome: Literal["pending", "answered", "dropped"] = "pending"
    applied: bool = False  # the call changed the fake's state


def json_error(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


class DropResponse(Response):
    """Answer nothing: tells `DroppingApp` to have the server close the connection."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        drops = scope.get(_DROP_KEY)
        if drops is None:  # not under DroppingApp (e.g. TestClient): fail loudly instead
            raise ConnectionAbortedError("fake provider dropped the connection")
        drops.append(True)


class DroppingApp:
    """Outermost ASGI wrapper: after a DropResponse, return a value so uvicorn closes the
    transport without answering (uvicorn does so for any app that returns non-None)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        drops: list[bool] = []
        if scope["type"] == "http":
            scope[_DROP_KEY] = drops
        await self.app(scope, receive, send)
        return "dropped" if drops else None


class Hub:
    """The fakes' shared log, RNG and clock (injectable for tests)."""

    def __init__(self, *, seed: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.seed = seed
        self.clock = clock
        self.rng = random.Random(seed)
        self.calls: list[CallRecord] = []

    def reset(self) -> None:
        self.reset_rng()
        self.calls.clear()

    def reset_rng(self) -> None:
        self.rng = random.Random(self.seed)

    def chance(self, ratio: float) -> bool:
        return ratio > 0 and self.rng.random() < ratio

    async def run(
        self,
        vendor: Vendor,
        faults: Faults,
        request: Request,
        decide: Callable[[CallRecord, bytes], Awaitable[Response]],
    ) -> Response:
        """Record the call, apply the faults around `decide`, and return the answer."""
        body = await request.body()
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        call = CallRecord(
            seq=len(self.calls) + 1,
            vendor=vendor,
            method=request.method,
            path=raw_path.decode("latin-1"),
            query=request.scope.get("query_string", b"").decode("latin-1"),
            headers={
                name: "<redacted>" if name.lower() in SECRET_HEADERS else value
                for name, value in request.headers.items()
            },
            body=body.decode("utf-8", errors="replace"),
            time=self.clock(),
        )
        self.calls.append(call)
        if self.chance(faults.drop_before_act):
            call.outcome = "dropped"
            return DropResponse()
        response = await decide(call, body)
        call.status = response.status_code
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if self.chance(faults.drop_after_act):
            call.outcome = "dropped"
            return DropResponse()
        call.outcome = "answered"
        return response

    def unavailable(self, faults: Faults) -> bool:
        """Draw the fail_ratio: True means answer 503 without any effect."""
        return self.chance(faults.fail_ratio)


def parse_json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
