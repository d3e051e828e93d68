"""The JSON Schema of a rule file, generated from the models and registries the loader uses.

    python -m worker.engine.json_schema > worker/rules.schema.json   (or: ticket-worker schema)

Editors (yaml-language-server) read it from the `# yaml-language-server: $schema=...` line
of a rule file to complete keys and flag mistakes while typing. The schema accepts every
file the loader accepts; it refuses what it can express (unknown keys, operators and
actions, wrong types, malformed durations and times) but not what needs the loader
(regex syntax, timezones, event-name typos, duplicate names across files).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from worker.engine.conditions import LOGIC_KEYS
from worker.engine.file_models import (
    AddCommentParams,
    CreateTicketParams,
    FileModel,
    RuleModel,
    Section,
    TicketParams,
)
from worker.engine.model import (
    ACTION_KINDS,
    CLOSE_TICKET,
    HELPWAVE_ADD_COMMENT,
    HELPWAVE_CREATE_TICKET,
    KNOWN_EVENTS,
    OPEN_TICKET,
)
from worker.engine.operators import OPERATORS
from worker.engine.timing import DAYS

SCHEMA_ID: Final = "https://ticket-worker.local/rules.schema.json"
_NOT_BLANK: Final = r"\S"
_PATH: Final = r"^(?!(" + "|".join(LOGIC_KEYS) + r")$)[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
_CLOCK: Final = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
_DURATION: Final = r"^\s*([0-9]+[smhd])+\s*$"
_CLOCK_SECONDS: Final = r"^(([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?|24:00(:00)?)$"
_DATE: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_CAP: Final = r"^\s*[0-9]+\s*/\s*([0-9]+[smhd])+\s*$"
_TEXT_ARG: Final = {"type": ["string", "number"]}
_NUMBER_ARG: Final = {"type": "number"}
_OPERATOR_ARGS: Final[dict[str, dict[str, Any]]] = {
    "equals": {},
    "not_equals": {},
    "in": {"type": "array"},
    "not_in": {"type": "array"},
    "contains": _TEXT_ARG,
    "not_contains": _TEXT_ARG,
    "contains_any": {"type": "array", "minItems": 1, "items": _TEXT_ARG},
    "starts_with": _TEXT_ARG,
    "ends_with": _TEXT_ARG,
    "matches": {"type": "string", "description": "a regular expression, RE2 syntax"},
    "gt": _NUMBER_ARG,
    "gte": _NUMBER_ARG,
    "lt": _NUMBER_ARG,
    "lte": _NUMBER_ARG,
    "exists": {"type": "boolean"},
}


def _model(model: type[Section], **overrides: Any) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema.pop("title", None)
    for name, prop in schema["properties"].items():
        prop.pop("title", None)
        prop.update(overrides.get(name, {}))
    return schema


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


def _actions() -> dict[str, Any]:
    comment = _model(AddCommentParams, text={"pattern": _NOT_BLANK})
    params = {
        OPEN_TICKET: _model(TicketParams),
        CLOSE_TICKET: _model(TicketParams),
        HELPWAVE_CREATE_TICKET: _model(CreateTicketParams),
        HELPWAVE_ADD_COMMENT: comment,
    }
    assert set(params) == set(ACTION_KINDS)
    bare = [kind for kind, schema in params.items() if not schema.get("required")]
    one_of: list[dict[str, Any]] = [{"enum": bare}]
    for kind, schema in params.items():
        value = schema if schema.get("required") else {"anyOf": [schema, {"type": "null"}]}
        one_of.append(
            {
                "type": "object",
                "properties": {kind: value},
                "required": [kind],
                "additionalProperties": False,
            }
        )
    return {"oneOf": one_of}


def _condition_defs() -> dict[str, Any]:
    conditions = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/condition"}}
    return {
        "condition": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "all": conditions,
                "any": conditions,
                "not": {"$ref": "#/$defs/condition"},
                "ticket": {"enum": ["open", "closed"]},
                "time": {"$ref": "#/$defs/time"},
                "session": {
                    "enum": ["open", "expired"],
                    "description": "the WhatsApp 24 h window since the last message.received",
                },
            },
            "patternProperties": {_PATH: {"$ref": "#/$defs/field"}},
            "additionalProperties": False,
        },
        "field": {
            "anyOf": [
                {
                    "type": "object",
                    "minProperties": 1,
                    "properties": {op: _OPERATOR_ARGS[op] for op in OPERATORS},
                    "additionalProperties": False,
                },
                {"not": {"type": "object"}, "description": "the field equals this value"},
            ]
        },
        "time": {
            "type": "object",
            "minProperties": 1,
            "properties": {
                "days": {"$ref": "#/$defs/days"},
                "between": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "items": {"type": "string", "pattern": _CLOCK},
                },
            },
            "additionalProperties": False,
        },
    }


def _time_defs() -> dict[str, Any]:
    duration = {"type": "string", "pattern": _DURATION}
    return {
        "days": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "string",
                "pattern": "^(" + "|".join(_any_case(d) for d in DAYS) + ")$",
            },
        },
        "business_hours": {
            "type": "object",
            "description": "open hours for business: durations (after: {business: 4h})",
            "required": ["between"],
            "properties": {
                "timezone": {"type": "string", "description": "default: the file's timezone"},
                "days": {"$ref": "#/$defs/days"},
                "between": {
                    "type": "array",
                    "minItems": 2,
                    "maxItems": 2,
                    "items": {"type": "string", "pattern": _CLOCK_SECONDS},
                },
                "holidays": {"type": "array", "items": {"type": "string", "pattern": _DATE}},
            },
            "additionalProperties": False,
        },
        "after": {
            "anyOf": [
                duration,
                {
                    "type": "object",
                    "properties": {"business": duration},
                    "required": ["business"],
                    "additionalProperties": False,
                },
                {"type": "null"},
            ],
            "description": "the actions wait this long (restarted by each matching event)",
        },
    }


def _limits() -> dict[str, Any]:
    cap = {
        "type": "string",
        "pattern": _CAP,
        "description": "COUNT/DURATION: at most COUNT actions for one conversation in any DURATION",
    }
    return {
        "type": "object",
        "description": "the runaway breaker's caps (one file of the ruleset may set them)",
        "properties": {
            "tickets_per_conversation": {**cap, "default": "6/10m"},
            "comments_per_conversation": {**cap, "default": "60/10m"},
        },
        "additionalProperties": False,
    }


def rules_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one rule file."""
    event = {
        "type": "string",
        "pattern": _NOT_BLANK,
        "examples": [*KNOWN_EVENTS, "*"],
    }
    rule = _model(
        RuleModel,
        name={"pattern": _NOT_BLANK},
        on={"anyOf": [event, {"type": "array", "minItems": 1, "items": event}]},
        when={"anyOf": [{"$ref": "#/$defs/condition"}, {"type": "null"}]},
        then={"type": ["array", "null"], "items": {"$ref": "#/$defs/action"}},
        cooldown={"type": ["string", "null"], "pattern": _DURATION},
        after={"$ref": "#/$defs/after"},
        unless={
            "anyOf": [event, {"type": "array", "minItems": 1, "items": event}, {"type": "null"}],
            "description": "events that cancel the rule's wait (needs after:)",
        },
        shadow={
            "description": "decided on live traffic, its actions recorded as 'would have' and "
            "never carried out (ticket-worker shadow-report); not with after:"
        },
    )
    document = _model(
        FileModel,
        version={"const": 1},
        rules={"type": "array", "items": {"$ref": "#/$defs/rule"}},
        business_hours={"anyOf": [{"$ref": "#/$defs/business_hours"}, {"type": "null"}]},
        limits={"$ref": "#/$defs/limits"},
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ticket-worker rule file",
        **document,
        "$defs": {
            "rule": rule,
            "action": _actions(),
            "limits": _limits(),
            **_condition_defs(),
            **_time_defs(),
        },
    }


def render() -> str:
    """The schema as committed in worker/rules.schema.json."""
    return json.dumps(rules_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
