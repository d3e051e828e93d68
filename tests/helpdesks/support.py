"""Helpers for the helpdesk client tests: an httpx.MockTransport handler that records."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that keeps every request and answers with `answer`."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def body(self, index: int = 0) -> Any:
        """The JSON body of the `index`th request."""
        return json.loads(self.requests[index].content)


def recorded_http(answer: Handler) -> tuple[Recorder, httpx.Client]:
    """An httpx.Client whose every request `answer` answers and a Recorder keeps."""
    recorder = Recorder(answer)
    return recorder, httpx.Client(transport=httpx.MockTransport(recorder), timeout=5.0)
