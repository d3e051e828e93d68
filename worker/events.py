"""Typed models of incoming webhooks, parsed strictly from the raw body.

`parse_webhook(raw)` returns a `Handshake` or an engine `Event`, or raises
`PayloadError(400, reason)`. It refuses, with 400 and never an unexpected exception:

- bytes that are not UTF-8 (a byte-order mark included);
- anything but one JSON object, with a string `event` (a handshake needs no `event`);
- JSON nested deeper than `MAX_DEPTH` (checked before parsing, so no RecursionError);
- integers longer than Python's `int` digit limit (ValueError from the parser);
- `NaN`, `Infinity`, `-Infinity`, and numbers that overflow to infinity;
- duplicate keys in any object (which one wins differs between parsers);
- lone UTF-16 surrogates (`"\\ud800"`): such a string has no UTF-8 form, so the payload could
  not be stored or handed to the engine faithfully. Escaped surrogate *pairs* are fine.

Unknown event names are accepted. A missing or unreadable envelope `timestamp` gives
`Event.timestamp = None` rather than a refusal: the rules decide what it means.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from worker.engine.model import Event
from worker.errors import PayloadError

MAX_DEPTH = 64
MAX_CONVERSATION_ID_LENGTH = 200

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_LONE_SURROGATE_HINT = re.compile(rb"\\u[dD][89a-fA-F]")
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))


class Handshake(BaseModel):
    """The verification request AwalChat sends when the webhook URL is set up."""

    model_config = ConfigDict(frozen=True)

    type: Literal["verification"]
    challenge: StrictStr


def parse_webhook(raw: bytes) -> Handshake | Event:
    """Decode one webhook body; raise PayloadError(400, reason) when it is not acceptable."""
    document = decode_json_object(raw)
    if "event" not in document and document.get("type") == "verification":
        try:
            return Handshake.model_validate(document)
        except ValidationError as exc:
            raise PayloadError(400, "bad verification request") from exc
    name = document.get("event")
    if not isinstance(name, str):
        raise PayloadError(400, "no string 'event' field")
    return Event(
        name=name,
        payload=document,
        timestamp=_parse_timestamp(document.get("timestamp")),
        conversation_id=_conversation_id(document.get("data")),
    )


def decode_json_object(raw: bytes) -> dict[str, Any]:
    """Strictly decode `raw` as one UTF-8 JSON object (see the module docstring)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(400, "body is not UTF-8") from exc
    if _depth(raw) > MAX_DEPTH:
        raise PayloadError(400, f"JSON nested deeper than {MAX_DEPTH}")
    try:
        document = _DECODER.decode(text)
    except PayloadError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int digit limit
        raise PayloadError(400, "body is not valid JSON") from exc
    if not isinstance(document, dict):
        raise PayloadError(400, "body is not a JSON object")
    if b"\\u" in raw and _LONE_SURROGATE_HINT.search(raw) and _has_lone_surrogate(document):
        raise PayloadError(400, "lone surrogate in a JSON string")
    return document


def _depth(raw: bytes) -> int:
    """Maximum bracket nesting; cheap when there are few brackets (the usual case)."""
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets <= MAX_DEPTH:
        return brackets
    # Brackets inside strings do not nest: drop the strings, keep the brackets only.
    steps = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    return max(accumulate(1 if step == 1 else -1 for step in steps), default=0)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise PayloadError(400, "duplicate key in a JSON object")
    return document


def _refuse_constant(name: str) -> Any:
    raise PayloadError(400, f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(400, "number out of range")
    return value


# One decoder for every call: `json.loads` with hooks builds a new one each time.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates,
    parse_constant=_refuse_constant,
    parse_float=_finite_float,
)


def _has_lone_surrogate(document: dict[str, Any]) -> bool:
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _conversation_id(data: object) -> str | None:
    if not isinstance(data, dict):
        return None
    value = data.get("conversation_id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value)
    if not text:
        return None
    if len(text) > MAX_CONVERSATION_ID_LENGTH:
        raise PayloadError(400, "conversation_id too long")
    return text
