"""One rule file compiled: its options and its rules, or None after recording its problems.

Compilation carries on past a problem wherever it can, so one run reports them all.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from worker.engine.conditions import ALWAYS, ConditionCompiler
from worker.engine.file_models import (
    AddCommentParams,
    CreateTicketParams,
    FileModel,
    RuleModel,
    Section,
    TicketParams,
    validate,
)
from worker.engine.limit_keys import read_limits
from worker.engine.model import (
    ACTION_KINDS,
    CLOSE_TICKET,
    HELPWAVE_ADD_COMMENT,
    HELPWAVE_CREATE_TICKET,
    OPEN_TICKET,
)
from worker.engine.ruleset import WILDCARD, ActionSpec, Rule, RuleFile
from worker.engine.templates import bad_placeholders, compile_params
from worker.engine.time_keys import (
    definition,
    event_typo,
    read_after,
    read_business_hours,
    read_unless,
    zone_named,
)
from worker.engine.timing import parse_duration
from worker.engine.yaml_source import (
    Loc,
    Position,
    Source,
    did_you_mean,
    found,
    levenshtein,
    position,
    to_plain,
)

__all__ = ["RuleFileCompiler", "levenshtein"]
from worker.errors import RuleProblem

_PARAMS: Final[dict[str, type[Section]]] = {
    OPEN_TICKET: TicketParams,
    CLOSE_TICKET: TicketParams,
    HELPWAVE_CREATE_TICKET: CreateTicketParams,
    HELPWAVE_ADD_COMMENT: AddCommentParams,
}
_ACTION_SHAPE: Final = (
    "an action is a name (close_ticket) or a mapping of one name to its fields "
    "(helpwave.add_comment: {text: ...})"
)


class RuleFileCompiler:
    """Compiles one file's text; problems go to the shared list given."""

    def __init__(self, name: str, problems: list[RuleProblem]) -> None:
        self.name = name
        self.source = Source(name, problems)

    def compile(self, text: str) -> tuple[RuleFile, list[tuple[Rule, Position]]] | None:
        """The file's options and its rules with their names' positions; None if it is bad."""
        problems = self.source.problems
        before = len(problems)
        root = self.source.parse(text)
        if len(problems) != before:
            return None
        if not isinstance(root, CommentedMap):
            self.source.add(
                (1, 1),
                "a rule file must be a mapping with version and rules; "
                f"found {found(to_plain(root))}",
            )
            return None
        model = validate(FileModel, to_plain(root), root, self.source)
        if model is not None and model.version != 1:
            self.source.at(root, ("version",), f"unsupported version {model.version}; expected 1")
        rule_file = self._options(root, model)
        rules = self._rules(root, rule_file)
        if len(problems) != before:
            return None
        return rule_file, rules

    def _options(self, root: CommentedMap, model: FileModel | None) -> RuleFile:
        if model is None:
            return RuleFile(self.name, zone=ZoneInfo("UTC"))
        zone = zone_named(model.timezone, root, ("timezone",), self.source) or ZoneInfo("UTC")
        calendar = read_business_hours(root, model.timezone, self.source)
        limits = read_limits(root, self.source)
        limits_at = position(root, ("limits",), key=True)
        return RuleFile(self.name, model.mode, model.timezone, zone, calendar, limits, limits_at)

    def _rules(self, root: CommentedMap, rule_file: RuleFile) -> list[tuple[Rule, Position]]:
        items = root.get("rules")
        if not isinstance(items, CommentedSeq):
            return []
        assert rule_file.zone is not None
        conditions = ConditionCompiler(self.source, rule_file.zone, rule_file.timezone)
        compiled = []
        for index, node in enumerate(items):
            rule = self._rule(node, position(items, (index,)), conditions, rule_file)
            if rule is not None:
                compiled.append(rule)
        return compiled

    def _rule(
        self, node: Any, where: Position, conditions: ConditionCompiler, rule_file: RuleFile
    ) -> tuple[Rule, Position] | None:
        if not isinstance(node, CommentedMap):
            self.source.add(
                where,
                "a rule must be a mapping with name, on, when, then; "
                f"found {found(to_plain(node))}",
            )
            return None
        before = len(self.source.problems)
        model = validate(RuleModel, to_plain(node), node, self.source)
        if model is not None and not model.name.strip():
            self.source.at(node, ("name",), "a rule's name must not be empty")
        events = self._events(node) if "on" in node else None
        when = node.get("when")
        condition = ALWAYS if when is None else conditions.compile(when, position(node, ("when",)))
        actions = self._actions(node)
        cooldown = None
        if node.get("cooldown") is not None:
            raw = node["cooldown"]
            cooldown = parse_duration(raw) if isinstance(raw, str) else None
            if cooldown is None:
                self.source.at(
                    node,
                    ("cooldown",),
                    f"'cooldown': found {found(to_plain(raw))}; expected a duration like "
                    "30s, 10m, 2h or 1d",
                )
        after = read_after(node, rule_file.calendar, self.source)
        has_after = after is not None or node.get("after") is not None
        unless = read_unless(node, events, has_after, self.source)
        if has_after and node.get("shadow") is True:
            self.source.at(
                node,
                ("shadow",),
                "a shadow rule cannot have 'after:' (its waits would need timers of their own); "
                "try the rule live with a short 'after:' in a test ruleset, or shadow it "
                "without 'after:'",
                key=True,
            )
        if len(self.source.problems) != before:
            return None
        if model is None or events is None or condition is None or actions is None:
            return None
        rule = Rule(
            name=model.name,
            description=model.description,
            file=self.name,
            line=where[0],
            column=where[1],
            events=events,
            condition=condition,
            actions=actions,
            stop=model.stop,
            cooldown=cooldown,
            enabled=model.enabled,
            after=None if after is None else after[0],
            business=after is not None and after[1],
            unless=unless,
            definition=definition(events, when, after, unless, actions),
            calendar=rule_file.calendar,
            shadow=model.shadow,
        )
        return rule, position(node, ("name",))

    def _events(self, node: CommentedMap) -> frozenset[str] | Literal["*"] | None:
        value = node["on"]
        expected = 'expected an event name, a list of names, or "*"'
        if isinstance(value, str):
            names: list[tuple[Any, Loc, Any]] = [(value, ("on",), node)]
        elif isinstance(value, CommentedSeq) and value:
            names = [(item, (i,), value) for i, item in enumerate(value)]
        else:
            self.source.at(node, ("on",), f"'on': found {found(to_plain(value))}; {expected}")
            return None
        picked: set[str] = set()
        ok = True
        for name, loc, parent in names:
            if not isinstance(name, str) or not name.strip():
                self.source.at(parent, loc, f"'on': found {found(to_plain(name))}; {expected}")
                ok = False
            elif name != WILDCARD and (near := event_typo(name)) is not None:
                self.source.at(parent, loc, f"unknown event '{name}'; did you mean '{near}'?")
                ok = False
            picked.add(str(name))
        if not ok:
            return None
        return WILDCARD if WILDCARD in picked else frozenset(picked)

    def _actions(self, node: CommentedMap) -> tuple[ActionSpec, ...] | None:
        items = node.get("then")
        if items is None:
            return ()
        if not isinstance(items, CommentedSeq):
            self.source.at(
                node,
                ("then",),
                f"'then': found {found(to_plain(items))}; expected a list of actions",
            )
            return None
        actions = [self._action(items, index) for index in range(len(items))]
        valid = [action for action in actions if action is not None]
        return tuple(valid) if len(valid) == len(actions) else None

    def _action(self, items: CommentedSeq, index: int) -> ActionSpec | None:
        item = items[index]
        parent: Any
        if isinstance(item, str):
            kind, fields, parent, loc = item, None, items, (index,)
        elif isinstance(item, CommentedMap) and len(item) == 1:
            kind = next(iter(item))
            fields, parent, loc = item[kind], item, (kind,)
        else:
            self.source.at(items, (index,), f"{_ACTION_SHAPE}; found {found(to_plain(item))}")
            return None
        if kind not in _PARAMS:
            name = str(kind)
            self.source.at(
                parent,
                loc,
                f"unknown action '{name}'{did_you_mean(name, ACTION_KINDS)} "
                f"(expected one of: {', '.join(ACTION_KINDS)})",
                key=parent is item,
            )
            return None
        if fields is None:
            data: dict[str, Any] = {}
            fields_node: Any = item
        elif isinstance(fields, CommentedMap):
            data, fields_node = to_plain(fields), fields
        else:
            self.source.at(
                parent, loc, f"'{kind}' takes a mapping of fields; found {found(to_plain(fields))}"
            )
            return None
        return self._params(kind, data, fields_node)

    def _params(self, kind: str, data: dict[str, Any], node: Any) -> ActionSpec | None:
        before = len(self.source.problems)
        if kind == HELPWAVE_CREATE_TICKET and "customerId" in data:
            self.source.at(
                node,
                ("customerId",),
                "'customerId' is filled in by the worker from the customer's phone number; "
                "remove it",
                key=True,
            )
            data = {k: v for k, v in data.items() if k != "customerId"}
        params_model = _PARAMS[kind]
        model = validate(params_model, data, node, self.source)
        self._check_placeholders(data, node, ())
        text = data.get("text")
        if kind == HELPWAVE_ADD_COMMENT and isinstance(text, str) and not text.strip():
            self.source.at(node, ("text",), "'text' must not be empty")
        if model is None or len(self.source.problems) != before:
            return None
        params = model.model_dump(exclude_unset=True)
        for name, info in params_model.model_fields.items():
            if not info.is_required() and info.default is not None:
                params.setdefault(name, info.default)
        return ActionSpec(kind, MappingProxyType(params), compile_params(params))

    def _check_placeholders(self, value: Any, node: Any, loc: Loc) -> None:
        if isinstance(value, str):
            for bad in bad_placeholders(value):
                self.source.at(
                    node,
                    loc,
                    f"bad placeholder {bad!r}; expected {{{{ path }}}} like {{{{ data.body }}}}",
                )
        elif isinstance(value, dict):
            for key, item in value.items():
                self._check_placeholders(item, node, (*loc, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._check_placeholders(item, node, (*loc, i))
