"""The expected actions of a regression case (`expect:`, `skipped:`) and offsets in time
(`at:`), read like the rest of a cases file (format: `worker.engine.cases`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.cases import ExpectedAction
from worker.engine.model import ACTION_KINDS
from worker.engine.timing import parse_duration
from worker.engine.yaml_source import Source, did_you_mean, found, to_plain


def read_expected(
    node: CommentedMap, key: str, source: Source
) -> tuple[ExpectedAction, ...] | None:
    """A case's `expect:` or `skipped:` list (None after recording its problems)."""
    items = node.get(key)
    if not isinstance(items, CommentedSeq):
        return None  # the model reported it
    actions = []
    for index, item in enumerate(items):
        parent: Any = items
        loc: tuple[str | int, ...] = (index,)
        at = None
        kinds = [name for name in item if name != "at"] if isinstance(item, CommentedMap) else []
        if isinstance(item, str):
            kind, params = item, None
        elif isinstance(item, CommentedMap) and len(kinds) == 1:
            kind = kinds[0]
            parent, loc = item, (kind,)
            params = to_plain(item[kind])
            if "at" in item:
                at = read_offset(item, timedelta(0), source)
                if at is None:
                    continue
        else:
            source.at(
                items,
                (index,),
                "an expected action is a name (open_ticket) or a mapping of one name to "
                "its exact params, and maybe at: (when); "
                f"found {found(to_plain(item))}",
            )
            continue
        if kind not in ACTION_KINDS:
            source.at(
                parent,
                loc,
                f"unknown action '{kind}'{did_you_mean(str(kind), ACTION_KINDS)} "
                f"(expected one of: {', '.join(ACTION_KINDS)})",
                key=parent is item,
            )
            continue
        if params is not None and not isinstance(params, dict):
            source.at(parent, loc, f"'{kind}': found {found(params)}; expected a mapping")
            continue
        actions.append(ExpectedAction(str(kind), params, at))
    return tuple(actions) if len(actions) == len(items) else None


def read_offset(node: CommentedMap, earliest: timedelta, source: Source) -> timedelta | None:
    """The `at:` of `node`, not before `earliest` (None after recording the problem)."""
    raw = node["at"]
    at = parse_offset(raw)
    if at is None:
        source.at(
            node,
            ("at",),
            f"'at': found {found(to_plain(raw))}; expected an offset from the case's "
            "start like 0, 30s, 90m or 1d2h",
        )
    elif at < earliest:
        source.at(
            node,
            ("at",),
            f"'at': {to_plain(raw)} is before the event above it; events go in time order",
        )
        return None
    return at


def parse_offset(value: Any) -> timedelta | None:
    """An `at:` offset: 0, or a duration like 90m or 1d2h."""
    if (isinstance(value, int) and not isinstance(value, bool) and value == 0) or value in (
        "0",
        "0s",
    ):
        return timedelta(0)
    return parse_duration(value) if isinstance(value, str) else None
