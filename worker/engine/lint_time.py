"""Lint findings about time (rules.md "Time"), as warnings; `lint.lint_ruleset` runs them.

- a wait longer than STATE_RETENTION (when the caller gives it): the conversation's state,
  which holds the wait, expires first unless another event of the conversation comes; a
  business wait is measured by its longest wall-clock length over a week without holidays;
- `business_hours:` with no open hour for a long stretch (holidays covering every day of
  it): a business wait starting then schedules nothing;
- `after:` on a rule whose events carry no conversation: it can never schedule (waits are
  per conversation);
- an `unless:` event AwalChat is not known to send.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.business_hours import MAX_CLOSED_DAYS, BusinessCalendar
from worker.engine.model import KNOWN_EVENTS
from worker.engine.ruleset import WILDCARD, Rule
from worker.engine.yaml_source import Position, position
from worker.errors import RuleProblem

# Events whose `data` carries no conversation_id: each is its own conversation.
NO_CONVERSATION_EVENTS: Final = frozenset({"message.status.updated"})
_WEEK_START: Final = datetime(2001, 1, 1, tzinfo=UTC)  # a Monday, far from any holiday


def lint_wait(
    rule: Rule, node: CommentedMap, retention: timedelta | None, problems: list[RuleProblem]
) -> None:
    """The findings about one rule's `after:` and `unless:`."""

    def add(where: Position, message: str) -> None:
        problems.append(RuleProblem(rule.file, where[0], where[1], message, "warning"))

    if rule.after is None:
        return
    at_after = position(node, ("after",), key=True)
    events = rule.events
    if events != WILDCARD and events <= NO_CONVERSATION_EVENTS:
        names = ", ".join(sorted(events))
        add(
            at_after,
            f"after: on a rule whose events carry no conversation ({names}): it can "
            "never schedule (waits are per conversation)",
        )
    length = wall_clock(rule)
    if retention is not None and length is not None and length > retention:
        what = (
            f"lasts up to {_days(length)} of wall-clock time"
            if rule.business
            else (f"is {_days(length)}")
        )
        add(
            at_after,
            f"this wait {what}, longer than STATE_RETENTION ({_days(retention)}): the "
            "conversation's state, and the wait with it, expires first unless another event "
            "of the conversation comes",
        )
    unless = node.get("unless")
    listed = isinstance(unless, CommentedSeq)
    for index, name in enumerate(unless if listed else [unless]):
        if isinstance(name, str) and name not in KNOWN_EVENTS:
            where = position(unless, (index,)) if listed else position(node, ("unless",))
            add(
                where,
                f"unless: event '{name}' is not one AwalChat is known to send "
                f"(known: {', '.join(KNOWN_EVENTS)})",
            )


def wall_clock(rule: Rule) -> timedelta | None:
    """How long a wait of `rule` lasts in real time: its duration, or for business time the
    longest over starts at each hour of a week without holidays (None: never ends)."""
    if rule.after is None or not rule.business:
        return rule.after
    calendar = rule.calendar
    if calendar is None:
        return None
    calendar = BusinessCalendar(calendar.days, calendar.span, frozenset(), calendar.zone)
    longest = timedelta(0)
    step = 1 if rule.after <= timedelta(days=1) else 6
    for hour in range(0, 7 * 24, step):
        start = _WEEK_START + timedelta(hours=hour)
        due = calendar.add(start, rule.after)
        if due is None:
            return None
        longest = max(longest, due - start)
    return longest


def lint_calendar(
    calendar: BusinessCalendar, file: str, root: CommentedMap, problems: list[RuleProblem]
) -> None:
    """A finding when the file's business hours have a long stretch with no open hour."""
    starts = sorted(calendar.holidays)
    for day in starts:
        start = datetime.combine(day, datetime.min.time(), calendar.zone)
        if calendar.next_open(start) is None:
            where = position(root, ("business_hours",), key=True)
            problems.append(
                RuleProblem(
                    file,
                    where[0],
                    where[1],
                    f"business_hours have no open hour for {MAX_CLOSED_DAYS} days from "
                    f"{day.isoformat()} (holidays cover every open day): a business wait "
                    "starting then schedules nothing",
                    "warning",
                )
            )
            return


def _days(length: timedelta) -> str:
    days = length / timedelta(days=1)
    return f"{days:.0f}d" if days >= 1 and days == int(days) else f"{days:.1f}d"
