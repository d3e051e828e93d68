"""The Celery wire format: a task message exactly as kombu's Redis transport stores one.

The receiver, the parked releaser, recovery and replays queue drains with one LPUSH inside
their Lua scripts, so they build the message themselves instead of going through
`app.send_task` (a round trip and a kombu producer per message). `tests/storage/test_wire.py`
compares `celery_message` with what kombu itself produces for the same task, field by
field: a kombu or Celery upgrade that changes the format fails that test, not production.

    LPUSH celery celery_message(DRAIN_TASK, [conversation])

`DRAIN_TASK` is the name the drain task is registered under; it is part of the format (a
message queued before an upgrade must still find its task).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import random
import socket
from typing import Final

from worker.storage.keys import CELERY_QUEUE

DRAIN_TASK: Final = "worker.tasks.drain"
DRAIN_READY_TASK: Final = "worker.tasks.drain_ready"

_ORIGIN = f"gen{os.getpid()}@{socket.gethostname()}"


def drain_message(conversation: str) -> str:
    """The message that drains `conversation`."""
    return celery_message(DRAIN_TASK, [conversation])


def wake_message() -> str:
    """The message that wakes a worker to drain ready conversations (`tw:ready`)."""
    return celery_message(DRAIN_READY_TASK, [])


def celery_message(task_name: str, args: list[str], queue: str = CELERY_QUEUE) -> str:
    """A Celery protocol-2 message calling `task_name(*args)`, as kombu's Redis transport
    stores it in the list named `queue` (LPUSH it there; workers BRPOP the other end).

    Each call has a fresh task id and delivery tag.
    """
    body, argsrepr = _args_fields(args) if args else _NO_ARGS
    return _message_template(task_name, queue) % {
        "id": _uuid4(),
        "tag": _uuid4(),
        "body": body,
        "argsrepr": argsrepr,
    }


def _args_fields(args: list[str]) -> tuple[str, str]:
    """The message's body (base64) and argsrepr for `args`."""
    body = f"[{json.dumps(args)}, {{}}, {_EMBED}]".encode()
    return base64.b64encode(body).decode("ascii"), json.dumps(repr(args))[1:-1]


_EMBED: Final = json.dumps({"callbacks": None, "errbacks": None, "chain": None, "chord": None})
_NO_ARGS: Final = _args_fields([])  # a wake message's: the same every time, built once


def _uuid4() -> str:
    """A random (version 4) UUID string like str(uuid.uuid4()), at a fraction of its cost.

    The bits come from `random`, not the OS (a syscall per id was a visible share of the
    request path): ids must be unique, not unpredictable; `random` is seeded from the OS and
    re-seeded in forked children.
    """
    h = f"{_random_bits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_random_bits = random.getrandbits
_UUID4_CLEAR: Final = ~(0xF000 << 64 | 0xC000 << 48)  # version and variant bits
_UUID4_SET: Final = 0x4000 << 64 | 0x8000 << 48


@functools.lru_cache(maxsize=32)
def _message_template(task_name: str, queue: str) -> str:
    """The message serialised once, its per-call fields left as %(name)s slots."""
    message = {
        "body": "@body@",
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": "@id@",
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": "@id@",
            "parent_id": None,
            "argsrepr": "@argsrepr@",
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": "@id@",
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": "@tag@",
        },
    }
    template = json.dumps(message).replace("%", "%%")
    for slot in ("body", "id", "argsrepr", "tag"):
        template = template.replace(f'"@{slot}@"', f'"%({slot})s"')
    return template
