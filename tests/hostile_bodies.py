"""Webhook bodies built to be expensive to parse, each near the 1 MiB size limit, and what the
receiver must answer to each when it is correctly signed (interface.md, "Hostile cost").

Unsigned, every one of them is a 401 (none is a handshake). Shared by the unit tests of
`worker.engine.envelope` and the integration tests against a real `ticket-worker serve`.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.engine.envelope import MAX_DEPTH
from worker.receiver.handlers import MAX_BODY_BYTES

_ROOM = MAX_BODY_BYTES - 200  # what the repeated part may fill, leaving room for the frame
_DEEPER = b"[" * (MAX_DEPTH + 1)  # more brackets than MAX_DEPTH: the nesting is looked at


@dataclass(frozen=True)
class HostileBody:
    """A body and the status a signed delivery of it gets (202 accepted, 400 refused)."""

    name: str
    body: bytes
    signed_status: int


def _repeat(unit: bytes, room: int = _ROOM) -> bytes:
    return unit * (room // len(unit))


def _keys(count: int) -> bytes:
    value = b'"' + b"v" * (_ROOM // count - 14) + b'"'
    return b",".join(b'"k%06d":%s' % (i, value) for i in range(count))


FROZE_THE_RECEIVER = (
    b'{"type":"verification","x":' + b"[" * (MAX_DEPTH + 1) + b'"' + b'\\"' * 200_000
)
"""The reported body (390 KiB): a regex that skipped strings backtracked on it for minutes."""

HOSTILE_BODIES = [
    HostileBody("the reported verification body", FROZE_THE_RECEIVER, 400),
    HostileBody(
        "escaped quotes in an unterminated string",
        b'{"event":"x","d":' + _DEEPER + b'"' + _repeat(b'\\"'),
        400,
    ),
    HostileBody(
        "escaped quotes in a string",
        b'{"event":"x","d":"' + _DEEPER + _repeat(b'\\"') + b'"}',
        202,
    ),
    HostileBody(
        "backslashes in an unterminated string",
        b'{"event":"x","d":' + _DEEPER + b'"' + _repeat(b"\\\\"),
        400,
    ),
    HostileBody(
        "backslashes before quotes",
        b'{"event":"x","d":' + _DEEPER + _repeat(b'"\\\\",'),
        400,
    ),
    HostileBody(
        "brackets inside a string",
        b'{"event":"x","d":"' + _repeat(b"[{") + b'"}',
        202,
    ),
    HostileBody(
        "brackets inside an unterminated string",
        b'{"event":"x","d":"' + _repeat(b"[{"),
        400,
    ),
    HostileBody("50k keys", b'{"event":"x",' + _keys(50_000) + b"}", 202),
    HostileBody(
        "50k keys, the last one twice",
        b'{"event":"x",' + _keys(50_000) + b',"k049999":1}',
        400,
    ),
    HostileBody(
        "150k \\u escapes",
        b'{"event":"x","d":"' + b"\\u00e9" * 150_000 + b'"}',
        202,
    ),
    HostileBody(
        "150k \\u escapes of lone surrogates",
        b'{"event":"x","d":"' + b"\\ud800" * 150_000 + b'"}',
        400,
    ),
    HostileBody(
        "75k \\u escaped surrogate pairs",
        b'{"event":"x","d":"' + b"\\ud83d\\ude00" * 75_000 + b'"}',
        202,
    ),
    HostileBody(
        "nesting 900 deep, under the decoder's recursion limit",
        b'{"event":"x","d":' + b"[" * 900 + b"]" * 900 + b"}",
        400,
    ),
    HostileBody("unclosed nesting 1 MiB deep", b'{"event":"x","d":' + _repeat(b"["), 400),
    HostileBody(
        "350k empty arrays side by side",
        b'{"event":"x","d":[' + _repeat(b"[],")[:-1] + b"]}",
        202,
    ),
    HostileBody(
        "250k objects side by side",
        b'{"event":"x","d":[' + _repeat(b"{},")[:-1] + b"]}",
        202,
    ),
    HostileBody(
        "250k floats",
        b'{"event":"x","d":[' + _repeat(b"0.5,")[:-1] + b"]}",
        202,
    ),
]

assert all(len(hostile.body) <= MAX_BODY_BYTES for hostile in HOSTILE_BODIES)
