"""Pydantic models of a rule file's fixed-shape parts, and their errors as RuleProblems.

Each model is flat (a mapping of simple fields); condition trees, `on:` and the action
list are checked by hand in `conditions.py` and `loader.py`, where positions inside them
matter. Models are strict: YAML types are checked as written (`stop: "yes"` is refused).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from worker.engine.yaml_source import Source, did_you_mean, found


def _id_text(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _int_or_text(value: Any) -> Any:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise PydanticCustomError("int_or_text", "expected an integer or a text")


def _bool_or_text(value: Any) -> Any:
    if isinstance(value, bool | str):
        return value
    raise PydanticCustomError("bool_or_text", "expected true, false or a text")


IdText = Annotated[str, BeforeValidator(_id_text), WithJsonSchema({"type": ["string", "integer"]})]
IntOrText = Annotated[
    Any, BeforeValidator(_int_or_text), WithJsonSchema({"type": ["string", "integer", "null"]})
]
BoolOrText = Annotated[
    Any, BeforeValidator(_bool_or_text), WithJsonSchema({"type": ["string", "boolean", "null"]})
]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    what: ClassVar[str] = "a mapping"


class FileModel(Section):
    what: ClassVar[str] = "a rule file"
    version: int
    mode: Literal["first_match", "all"] = "all"
    timezone: str = "UTC"
    business_hours: Any = None
    limits: Any = None
    rules: list[Any]


class RuleModel(Section):
    what: ClassVar[str] = "a rule"
    name: str
    description: str = ""
    on: Any
    when: Any = None
    then: Any = None
    stop: bool = False
    cooldown: Any = None
    enabled: bool = True
    after: Any = None
    unless: Any = None
    shadow: bool = False


class TicketParams(Section):
    what: ClassVar[str] = "open_ticket / close_ticket"
    phone_number_id: IdText | None = None


class CreateTicketParams(Section):
    """Fields of HelpWave's POST /tickets; `customerId` is the worker's to fill."""

    what: ClassVar[str] = "helpwave.create_ticket"
    Channel: str = "Helpwave"
    name: str | None = None
    threadId: str | None = None
    emailUsed: str | None = None
    date: str | None = None
    lastMessage: str | None = None
    lastMessageTime: str | None = None
    contact_reason: str | None = None
    assigned_to: IntOrText = None
    isOpenedTicket: BoolOrText = None
    unReadChatCount: IntOrText = None
    tags: list[str] | None = None
    language_code: str | None = None
    via: str | None = None


class AddCommentParams(Section):
    """Fields of HelpWave's POST /tickets/{id}/comments."""

    what: ClassVar[str] = "helpwave.add_comment"
    text: str
    isFromShop: bool = False
    time: str | None = None
    subject: str | None = None
    fromEmail: str | None = None
    toEmails: list[str] | None = None
    Channel: str | None = None


_EXPECTED = {
    "bool_type": "true or false",
    "string_type": "a text",
    "int_type": "an integer",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "int_or_text": "an integer or a text",
    "bool_or_text": "true, false or a text",
}

M = TypeVar("M", bound=Section)


def validate(model: type[M], data: Any, node: Any, source: Source) -> M | None:
    """`data` (plain) validated as `model`; problems recorded at positions inside `node`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            _report(model, error["type"], error["loc"], error.get("input"), error, node, source)
        return None


def _report(
    model: type[Section],
    kind: str,
    loc: tuple[str | int, ...],
    value: Any,
    error: Any,
    node: Any,
    source: Source,
) -> None:
    fields = list(model.model_fields)
    name = ".".join(str(part) for part in loc)
    if kind in ("extra_forbidden", "invalid_key"):
        key = str(loc[-1]) if loc else "?"
        source.at(
            node,
            loc,
            f"unknown key '{key}' in {model.what}{did_you_mean(key, fields)} "
            f"(expected one of: {', '.join(fields)})",
            key=True,
        )
    elif kind == "missing":
        source.at(node, loc, f"missing required key '{name}' in {model.what}")
    elif kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        source.at(node, loc, f"'{name}': found {found(value)}; expected {expected}")
    else:
        expected = _EXPECTED.get(kind, error.get("msg", "a valid value"))
        source.at(node, loc, f"'{name}': found {found(value)}; expected {expected}")
