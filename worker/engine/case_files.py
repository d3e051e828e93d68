"""Reading cases files (`rules/tests/*.yaml`, format in `worker.engine.cases`) like rule
files: every problem is reported at file:line:column and the file is refused whole."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.case_actions import read_expected, read_offset
from worker.engine.cases import Case, TimedEvent
from worker.engine.envelope import parse_webhook
from worker.engine.file_models import IdText, Section, validate
from worker.engine.model import ConversationState, Event
from worker.engine.timing import parse_duration
from worker.engine.yaml_source import Source, found, position, to_plain
from worker.errors import PayloadError, RuleProblem, RulesError


class CasesFileModel(Section):
    what: ClassVar[str] = "a cases file"
    version: Literal[1] = 1
    cases: list[Any]


class CaseModel(Section):
    what: ClassVar[str] = "a case"
    name: str
    description: str = ""
    event: Any = None
    events: list[Any] | None = None
    state: Any = None
    now: str | None = None
    expect: list[Any] | None
    skipped: list[Any] | None = None


class StateModel(Section):
    what: ClassVar[str] = "a case's state"
    ticket: Literal["open", "closed"] = "closed"
    helpwave_ticket: Literal["none", "open", "closed"] = "none"
    helpwave_ticket_id: IdText | None = None
    cooldowns: dict[str, str] = {}


def find_case_files(path: Path) -> list[Path]:
    """The cases files at `path`: the file itself, or a folder's `*.yaml` in name order."""
    if path.is_dir():
        return sorted(p for p in path.glob("*.yaml") if p.is_file() and not p.name.startswith("."))
    return [path] if path.is_file() else []


def is_case_file(path: Path) -> bool:
    """Does the YAML file at `path` look like a cases file (a top-level `cases:` key)?"""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.startswith("cases:") for line in text.splitlines())


def load_cases(path: Path) -> list[Case]:
    """The cases of one file; RulesError with every problem at file:line:column."""
    name = str(path)
    problems: list[RuleProblem] = []
    source = Source(name, problems)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([RuleProblem(name, 1, 1, f"cannot read the file: {exc}")]) from exc
    root = source.parse(text)
    if problems:
        raise RulesError(problems)
    if not isinstance(root, CommentedMap):
        source.add((1, 1), f"a cases file must be a mapping with cases; found {found(root)}")
        raise RulesError(problems)
    validate(CasesFileModel, to_plain(root), root, source)
    items = root.get("cases")
    cases = []
    if isinstance(items, CommentedSeq):
        reader = _CaseReader(path, source)
        for index, node in enumerate(items):
            case = reader.case(node, position(items, (index,)))
            if case is not None:
                cases.append(case)
    if problems:
        raise RulesError(problems)
    return cases


class _CaseReader:
    def __init__(self, path: Path, source: Source) -> None:
        self.path = path
        self.source = source

    def case(self, node: Any, where: tuple[int, int]) -> Case | None:
        if not isinstance(node, CommentedMap):
            self.source.add(where, f"a case must be a mapping; found {found(to_plain(node))}")
            return None
        before = len(self.source.problems)
        model = validate(CaseModel, to_plain(node), node, self.source)
        events = self._events(node)
        state = self._state(node)
        expect = read_expected(node, "expect", self.source)
        skipped = (
            read_expected(node, "skipped", self.source) if node.get("skipped") is not None else None
        )
        if model is None or not events or state is None or expect is None:
            return None
        first = events[0].event
        now = self._now(node, model.now, first)
        if now is None or len(self.source.problems) != before:
            return None
        return Case(
            file=self.source.file,
            line=where[0],
            name=model.name,
            event=first,
            state=_with_cooldowns(state, now),
            now=now,
            expect=expect,
            skipped=skipped,
            events=tuple(events) if "events" in node else (),
        )

    def _events(self, node: CommentedMap) -> list[TimedEvent] | None:
        """The case's `event:` (at 0), or its `events:` with their offsets."""
        if ("event" in node) == ("events" in node):
            self.source.add(
                position(node, ()),
                "a case gives either 'event:' (one event) or 'events:' (a list of "
                "{at: 90m, event: ...}), not both nor neither",
            )
            return None
        if "event" in node:
            event = self._event(node, "event")
            return None if event is None else [TimedEvent(timedelta(0), event)]
        items = node["events"]
        if not isinstance(items, CommentedSeq) or not items:
            return None  # the model reported it, or there is nothing to run
        timed: list[TimedEvent] = []
        at = timedelta(0)
        for index, item in enumerate(items):
            if not isinstance(item, CommentedMap) or "event" not in item:
                self.source.at(
                    items,
                    (index,),
                    "an item of 'events' is a mapping like {at: 90m, event: events/help.json}; "
                    f"found {found(to_plain(item))}",
                )
                continue
            for key in item:
                if key not in ("at", "event"):
                    self.source.at(
                        item, (key,), f"unknown key '{key}' in an event (expected at, event)"
                    )
            if "at" in item:
                later = read_offset(item, at, self.source)
                at = later if later is not None else at
            event = self._event(item, "event")
            if event is not None:
                timed.append(TimedEvent(at, event))
        return timed if len(timed) == len(items) else None

    def _event(self, node: CommentedMap, key: str) -> Event | None:
        value = node[key]
        if isinstance(value, str):
            file = self.path.parent / value
            try:
                raw = file.read_bytes()
            except OSError as exc:
                self.source.at(node, (key,), f"cannot read the event file {file}: {exc}")
                return None
        elif isinstance(value, CommentedMap):
            raw = json.dumps(to_plain(value), ensure_ascii=False).encode()
        else:
            self.source.at(
                node,
                (key,),
                f"'event': found {found(to_plain(value))}; expected a webhook body "
                "(a mapping with event, data, ...) or the path of a JSON file",
            )
            return None
        try:
            parsed = parse_webhook(raw)
        except PayloadError as exc:
            self.source.at(node, (key,), f"not a webhook the receiver accepts: {exc.reason}")
            return None
        if not isinstance(parsed, Event):
            self.source.at(node, (key,), "a verification handshake, not an event")
            return None
        return parsed

    def _state(self, node: CommentedMap) -> _State | None:
        value = node.get("state")
        if value is None:
            return _State(ConversationState(), {})
        model = validate(StateModel, to_plain(value), value, self.source)
        if model is None:
            return None
        ticket_id = model.helpwave_ticket_id
        state = ConversationState(
            ticket_open=model.ticket == "open",
            helpwave_ticket_id=ticket_id,
            # A ticket named without its id: one whose id the worker is about to store.
            helpwave_ticket_planned=ticket_id is None and model.helpwave_ticket != "none",
        )
        cooldowns: dict[str, timedelta | datetime] = {}
        for rule, text in model.cooldowns.items():
            until = _until(text)
            if until is None:
                self.source.at(
                    value,
                    ("cooldowns", rule),
                    f"cooldown of '{rule}': found {found(text)}; expected the time left "
                    "(30s, 10m, 2h) or when it ends (2024-05-14T10:00:00Z)",
                )
                return None
            cooldowns[rule] = until
        return _State(state, cooldowns)

    def _now(self, node: CommentedMap, text: str | None, event: Event) -> datetime | None:
        if text is None:
            if event.timestamp is None:
                self.source.at(
                    node, ("event",), "the event has no timestamp; give the case a 'now:'"
                )
            return event.timestamp
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.source.at(
                node, ("now",), f"'now': found {found(text)}; expected 2024-05-14T09:30:00Z"
            )
            return None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _State:
    state: ConversationState
    cooldowns: Mapping[str, timedelta | datetime]


def _until(text: str) -> timedelta | datetime | None:
    left = parse_duration(text)
    if left is not None:
        return left
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _with_cooldowns(start: _State, now: datetime) -> ConversationState:
    cooldowns = {
        rule: now + until if isinstance(until, timedelta) else until
        for rule, until in start.cooldowns.items()
    }
    return start.state.evolve(cooldowns=cooldowns)
