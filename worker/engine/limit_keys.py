"""A rule file's `limits:` (rules.md "the runaway breaker"), read with problems at
file:line:column.

    limits:                              at the top of at most one file of the ruleset
      tickets_per_conversation: 6/10m    opens, closes and HelpWave creates; default 6/10m
      comments_per_conversation: 60/10m  HelpWave comments; default 60/10m

A value is COUNT/DURATION: at most COUNT actions for one conversation in any DURATION.
Either key may be left out (it keeps its default). A second file setting `limits:` is
refused by the loader, naming the first.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from ruamel.yaml.comments import CommentedMap

from worker.engine.ruleset import DEFAULT_LIMITS, Cap, Limits
from worker.engine.timing import parse_duration
from worker.engine.yaml_source import Source, did_you_mean, found, to_plain

LIMIT_KEYS: Final = ("tickets_per_conversation", "comments_per_conversation")
_EXAMPLE: Final = "{tickets_per_conversation: 6/10m, comments_per_conversation: 60/10m}"
_VALUE: Final = "COUNT/DURATION like 6/10m (at most 6 actions in any 10 minutes)"


def parse_cap(text: str) -> Cap | str:
    """`6/10m` as a Cap, or what is wrong with it (a message tail)."""
    count_text, slash, window_text = text.partition("/")
    count_text, window_text = count_text.strip(), window_text.strip()
    if not slash or not count_text.isascii() or not count_text.isdigit():
        return f"expected {_VALUE}"
    window = parse_duration(window_text)
    if window is None:
        return f"expected a duration after '/' like 10m, 1h or 1h30m; {_VALUE}"
    count = int(count_text)
    if count < 1:
        return (
            "the count must be at least 1 (a cap of 0 would refuse every action; "
            "remove the rules' actions or disable them instead)"
        )
    return Cap(count, window)


def read_limits(root: CommentedMap, source: Source) -> Limits | None:
    """The file's `limits:` (None when absent, or after recording its problems)."""
    if "limits" not in root:
        return None
    node = root["limits"]
    if not isinstance(node, CommentedMap) or not node:
        source.at(
            root,
            ("limits",),
            f"'limits': found {found(to_plain(node))}; expected a mapping like {_EXAMPLE}",
        )
        return None
    before = len(source.problems)
    caps: dict[str, Cap] = {}
    for key, value in node.items():
        if key not in LIMIT_KEYS:
            source.at(
                node,
                (key,),
                f"unknown key '{key}' in limits{did_you_mean(str(key), LIMIT_KEYS)} "
                f"(expected one of: {', '.join(LIMIT_KEYS)})",
                key=True,
            )
            continue
        cap = parse_cap(value) if isinstance(value, str) else f"expected {_VALUE}"
        if isinstance(cap, str):
            source.at(node, (key,), f"'{key}': found {found(to_plain(value))}; {cap}")
        else:
            caps[key] = cap
    if len(source.problems) != before:
        return None
    return replace(DEFAULT_LIMITS, **caps)


def describe_limits(limits: Limits) -> str:
    """`tickets_per_conversation: 6/10m, comments_per_conversation: 60/10m`."""
    return ", ".join(f"{key}: {_short(getattr(limits, key))}" for key in LIMIT_KEYS)


def _short(cap: Cap) -> str:
    return cap.describe().replace(" in ", "/")
