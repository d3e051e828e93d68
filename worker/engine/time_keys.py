"""The time keys of a rule file, read from YAML with every problem at file:line:column.

    business_hours:                 per file (BusinessCalendar)
      timezone: Asia/Riyadh         default: the file's timezone
      days: [sun, mon, tue]         default: every day
      between: ["09:00", "17:00"]   required; HH:MM or HH:MM:SS, 00:00 to 24:00, may wrap
      holidays: [2026-12-18]        whole local days off (dates)
    after: 30m | {business: 4h}     per rule: how long its actions wait
    unless: [conversation.updated]  per rule with after: the events that cancel its wait

`definition` is the fingerprint of what a rule does, kept in its waits: a later ruleset
whose rule has another one cancels them (`scheduling`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.business_hours import DAY_SECONDS, BusinessCalendar
from worker.engine.model import KNOWN_EVENTS
from worker.engine.ruleset import WILDCARD, ActionSpec
from worker.engine.timing import MAX_DURATION, parse_clock, parse_days, parse_duration
from worker.engine.yaml_source import (
    Loc,
    Source,
    did_you_mean,
    found,
    levenshtein,
    position,
    to_plain,
)

BUSINESS_HOURS_KEYS: Final = ("timezone", "days", "between", "holidays")
AFTER_KEYS: Final = ("business",)
_DURATION_LIKE: Final = "a duration like 30s, 10m, 4h, 2d or 1h30m"
_MAX: Final = f"{MAX_DURATION.days}d"
TYPO_DISTANCE: Final = 2  # a name this close to a known event is a typo


def zone_named(name: str, node: Any, loc: Loc, source: Source) -> ZoneInfo | None:
    """The IANA zone `name`, or None after recording the problem (with a did-you-mean)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    hint = difflib.get_close_matches(name, available_timezones(), n=1)
    suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
    source.at(
        node,
        loc,
        f"unknown timezone '{name}'{suggestion} (expected an IANA name like UTC or Asia/Riyadh)",
    )
    return None


def event_typo(name: str) -> str | None:
    """The known event `name` is a typo of (within two edits), if any."""
    if name in KNOWN_EVENTS:
        return None
    distance, near = min((levenshtein(name, known), known) for known in KNOWN_EVENTS)
    return near if distance <= TYPO_DISTANCE else None


def read_business_hours(
    root: CommentedMap, file_zone: str, source: Source
) -> BusinessCalendar | None:
    """The file's `business_hours:` (None when absent, or after recording its problems)."""
    node = root.get("business_hours")
    if node is None:
        return None
    if not isinstance(node, CommentedMap) or not node:
        source.at(
            root,
            ("business_hours",),
            f"'business_hours': found {found(to_plain(node))}; expected a mapping like "
            '{days: [mon, tue], between: ["09:00", "17:00"]}',
        )
        return None
    before = len(source.problems)
    for key in node:
        if key not in BUSINESS_HOURS_KEYS:
            hint = did_you_mean(str(key), BUSINESS_HOURS_KEYS)
            source.at(
                node,
                (key,),
                f"unknown key '{key}' in business_hours{hint} "
                f"(expected one of: {', '.join(BUSINESS_HOURS_KEYS)})",
                key=True,
            )
    zone_name = node.get("timezone", file_zone)
    zone = None
    if not isinstance(zone_name, str):
        source.at(node, ("timezone",), f"'timezone': found {found(to_plain(zone_name))}")
    else:
        zone = zone_named(zone_name, node, ("timezone",), source)
    days = parse_days(node, source) if "days" in node else frozenset(range(7))
    span = _span(node, source)
    holidays = _holidays(node, source)
    if len(source.problems) != before or zone is None or days is None or span is None:
        return None
    return BusinessCalendar(days, span, holidays, zone, str(zone_name))


def _span(node: CommentedMap, source: Source) -> tuple[int, int] | None:
    expected = 'expected two times like ["09:00", "17:00"] (HH:MM or HH:MM:SS)'
    if "between" not in node:
        source.add(
            position(node, ()), f"business_hours needs 'between' (its daily hours); {expected}"
        )
        return None
    value = node["between"]
    if not isinstance(value, CommentedSeq) or len(value) != 2:
        source.at(node, ("between",), f"'between': found {found(to_plain(value))}; {expected}")
        return None
    seconds = [parse_clock(to_plain(item)) for item in value]
    for index, (item, clock) in enumerate(zip(value, seconds, strict=True)):
        if clock is None:
            source.at(
                value,
                (index,),
                f"bad time {found(to_plain(item))}; expected HH:MM or HH:MM:SS from 00:00 to 24:00",
            )
    opens, closes = seconds
    if opens is None or closes is None:
        return None
    if opens == DAY_SECONDS:
        source.at(value, (0,), "business hours cannot open at 24:00; write 00:00")
        return None
    if opens == closes:
        source.at(node, ("between",), f"'between' opens and closes at the same time; {expected}")
        return None
    return opens, closes


def _holidays(node: CommentedMap, source: Source) -> frozenset[date]:
    value = node.get("holidays")
    if value is None:
        return frozenset()
    if not isinstance(value, CommentedSeq):
        source.at(
            node,
            ("holidays",),
            f"'holidays': found {found(to_plain(value))}; expected a list of dates like "
            "[2026-12-18]",
        )
        return frozenset()
    days = set()
    for index, item in enumerate(value):
        day = _date(item)
        if day is None:
            source.at(
                value,
                (index,),
                f"holiday {found(to_plain(item))} is not a date; expected YYYY-MM-DD like "
                "2026-12-18",
            )
        else:
            days.add(day)
    return frozenset(days)


def _date(item: Any) -> date | None:
    if isinstance(item, date) and not isinstance(item, datetime):
        return item
    if isinstance(item, str) and len(item) == 10:
        try:
            return date.fromisoformat(item)
        except ValueError:
            return None
    return None


def read_after(
    node: CommentedMap, calendar: BusinessCalendar | None, source: Source
) -> tuple[timedelta, bool] | None:
    """A rule's `after:` as (duration, counted in business hours); None when absent or bad
    (problems recorded)."""
    value = node.get("after")
    if value is None:
        return None
    if isinstance(value, CommentedMap):
        return _business(node, value, calendar, source)
    duration = parse_duration(value) if isinstance(value, str) else None
    if duration is None:
        source.at(
            node,
            ("after",),
            f"'after': found {found(to_plain(value))}; expected {_DURATION_LIKE} (at most "
            f"{_MAX}), or {{business: 4h}} to count only business hours",
        )
        return None
    return duration, False


def _business(
    node: CommentedMap, value: CommentedMap, calendar: BusinessCalendar | None, source: Source
) -> tuple[timedelta, bool] | None:
    if list(value) != ["business"]:
        for key in value:
            if key != "business":
                hint = did_you_mean(str(key), AFTER_KEYS)
                source.at(
                    value,
                    (key,),
                    f"unknown key '{key}' in after{hint} (expected business: a duration)",
                    key=True,
                )
        if "business" not in value:
            return None
    raw = value["business"]
    duration = parse_duration(raw) if isinstance(raw, str) else None
    if duration is None:
        source.at(
            value,
            ("business",),
            f"'business': found {found(to_plain(raw))}; expected {_DURATION_LIKE} of business "
            f"time (at most {_MAX})",
        )
        return None
    if calendar is None:
        source.at(
            value,
            ("business",),
            "a business duration needs business_hours: at the top of this file "
            '(e.g. business_hours: {days: [mon, tue, wed, thu, fri], between: ["09:00", '
            '"17:00"]})',
            key=True,
        )
        return None
    return duration, True


def read_unless(
    node: CommentedMap,
    events: frozenset[str] | Literal["*"] | None,
    has_after: bool,
    source: Source,
) -> frozenset[str]:
    """A rule's `unless:` names (problems recorded; empty when absent or bad)."""
    if "unless" not in node or node["unless"] is None:
        return frozenset()
    value = node["unless"]
    expected = "expected an event name or a list of names"
    if isinstance(value, str):
        names: list[tuple[Any, Loc, Any]] = [(value, ("unless",), node)]
    elif isinstance(value, CommentedSeq) and value:
        names = [(item, (i,), value) for i, item in enumerate(value)]
    else:
        source.at(node, ("unless",), f"'unless': found {found(to_plain(value))}; {expected}")
        return frozenset()
    if not has_after:
        source.at(
            node,
            ("unless",),
            "'unless' cancels a rule's wait, and this rule has no 'after:' (it acts at "
            "once, so there is nothing to cancel): add after: or remove unless:",
            key=True,
        )
    picked: set[str] = set()
    for name, loc, parent in names:
        if not isinstance(name, str) or not name.strip() or name == WILDCARD:
            source.at(parent, loc, f"'unless': found {found(to_plain(name))}; {expected}")
            continue
        near = event_typo(name)
        if near is not None:
            source.at(parent, loc, f"unknown event '{name}'; did you mean '{near}'?")
        elif events is not None and events != WILDCARD and name in events:
            source.at(
                parent,
                loc,
                f"'{name}' is both in on: and unless: (an event either restarts the wait "
                "or cancels it); remove it from one",
            )
        picked.add(name)
    return frozenset(picked)


def definition(
    events: frozenset[str] | Literal["*"],
    when: Any,
    after: tuple[timedelta, bool] | None,
    unless: frozenset[str],
    actions: tuple[ActionSpec, ...],
) -> str:
    """First 12 hex of sha256 over what the rule does: on, when (as written), after (its
    seconds, business or not), unless and then (kinds and params, defaults filled). Its
    name, description, cooldown, stop and enabled do not count."""
    document = {
        "on": events if events == WILDCARD else sorted(events),
        "when": to_plain(when),
        "after": None if after is None else [after[0].total_seconds(), after[1]],
        "unless": sorted(unless),
        "then": [[spec.kind, dict(spec.params)] for spec in actions],
    }
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
