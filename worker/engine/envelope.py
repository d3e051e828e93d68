"""Typed models of incoming webhooks, parsed strictly from the raw body.

`parse_webhook(raw)` returns a `Handshake` or an engine `Event`, or raises
`PayloadError(400, reason)`. It refuses, with 400 and never an unexpected exception:

- bytes that are not UTF-8 (a byte-order mark included);
- anything but one JSON object, with a string `event` (a handshake needs no `event`);
- JSON nested deeper than `MAX_DEPTH`;
- integers longer than Python's `int` digit limit (ValueError from the parser);
- `NaN`, `Infinity`, `-Infinity`, and numbers that overflow to infinity;
- duplicate keys in any object (which one wins differs between parsers);
- lone UTF-16 surrogates (`"\\ud800"`): such a string has no UTF-8 form, so the payload could
  not be stored or handed to the engine faithfully. Escaped surrogate *pairs* are fine.

Every step costs time linear in the body's length, whatever its bytes (interface.md,
"Hostile cost"): the C `json` decoder parses, and the checks are byte counts and searches or
one walk of the parsed document. No regular expression reads the body: the one that skipped
strings to measure nesting backtracked quadratically on a string of escaped quotes (390 KiB
held the event loop for minutes).

Unknown event names are accepted. A missing or unreadable envelope `timestamp` gives
`Event.timestamp = None` rather than a refusal: the rules decide what it means.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from worker.engine.model import Event
from worker.errors import PayloadError

MAX_DEPTH = 64
MAX_CONVERSATION_ID_LENGTH = 200

_CONTAINERS = (dict, list)


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
    try:
        document = _DECODER.decode(text)
    except PayloadError:
        raise
    except RecursionError as exc:  # the C decoder stops some hundreds of levels deep
        raise PayloadError(400, f"JSON nested deeper than {MAX_DEPTH}") from exc
    except ValueError as exc:  # JSONDecodeError, int digit limit
        raise PayloadError(400, "body is not valid JSON") from exc
    if not isinstance(document, dict):
        raise PayloadError(400, "body is not a JSON object")
    # A body with at most MAX_DEPTH brackets cannot nest deeper: the usual one needs no walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _nested_deeper_than(MAX_DEPTH, document):
        raise PayloadError(400, f"JSON nested deeper than {MAX_DEPTH}")
    if _may_escape_a_surrogate(raw) and _has_lone_surrogate(document):
        raise PayloadError(400, "lone surrogate in a JSON string")
    return document


def _nested_deeper_than(limit: int, document: dict[str, Any]) -> bool:
    """True when arrays and objects nest more than `limit` levels (`document` is level 1).

    Level by level, without recursion: each value is looked at once, however deep they nest.
    """
    level: list[Any] = [document]
    for _ in range(limit):
        level = [
            child
            for container in level
            for child in (container.values() if type(container) is dict else container)
            if isinstance(child, _CONTAINERS)
        ]
        if not level:
            return False
    return True


def _may_escape_a_surrogate(raw: bytes) -> bool:
    """A cheap pre-check: UTF-8 cannot encode a surrogate, so one can only come from an
    escape `\\uD800`-`\\uDFFF`, and each of those starts `\\ud` or `\\uD`."""
    return b"\\ud" in raw or b"\\uD" in raw


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


EXCERPT_FIELDS: Final = ("conversation_id", "from", "phone_number")


def excerpt(event: Event) -> dict[str, Any]:
    """What carrying out an action later needs of its event, and no more: the name, the
    time and the fields actions read (the conversation and the customer's phone). Rule
    templates are filled when an action is planned, so the body need not be kept.
    `parse_webhook` reads an excerpt back as an Event."""
    data = event.payload.get("data")
    kept = {}
    if isinstance(data, dict):
        kept = {k: data[k] for k in EXCERPT_FIELDS if k in data}
    result: dict[str, Any] = {"event": event.name, "data": kept}
    if "timestamp" in event.payload:
        result["timestamp"] = event.payload["timestamp"]
    return result
