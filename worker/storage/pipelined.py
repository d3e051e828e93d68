"""Lua scripts that cost no extra round trip when queued on a pipeline.

redis-py's `Script` queued on a pipeline makes the pipeline ask `SCRIPT EXISTS` (and load
what is missing) in a round trip of its own before every `execute`: the drain's steps, whose
whole point is one round trip each, paid two. A script registered here is queued as `EVAL`
with its text instead: the server hashes the text and runs its cached compiled script, so
the pipeline stays one round trip, and a Redis that restarted empty or a replica promoted
by a failover (whose script cache is empty) runs it all the same, with no NOSCRIPT to
recover from halfway through a pipeline. Called on its own (no pipeline) it is redis-py's
`EVALSHA`, re-loaded on NOSCRIPT.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.typing import EncodableT, KeyT


class PipelinedScript(Script):
    """A `Script` sent as EVAL (one round trip) when queued on a pipeline."""

    def __init__(self, client: redis.Redis, text: str) -> None:
        super().__init__(client, text)
        self._text = text.encode()  # sent with every EVAL: encoded once

    def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Any = None,
    ) -> Any:
        if isinstance(client, redis.client.Pipeline):
            names = list(keys or [])
            return client.execute_command(  # type: ignore[no-untyped-call]
                "EVAL", self._text, len(names), *names, *(args or [])
            )
        return super().__call__(keys, args, client)


def register_script(client: redis.Redis, text: str) -> PipelinedScript:
    """`client.register_script(text)`, one round trip on a pipeline too. The text is sent
    without its comment lines and indentation (`compact`)."""
    return PipelinedScript(client, compact(text))


def compact(text: str) -> str:
    """The Lua `text` without indentation, blank lines and whole-line `--` comments (our
    scripts hold no multi-line strings or block comments, which this would break)."""
    if "[[" in text:
        raise ValueError("a Lua long string or block comment: compact() would change it")
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))
