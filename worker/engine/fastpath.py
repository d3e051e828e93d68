"""Deciders: the listening rules of one event name compiled into one Python function.

`evaluate` calls the decider of the event's name to learn which rules act and to plan their
actions; explanations come from the compiled checks (`checks.py`), run again only when
someone reads them (`evaluate.explain`). A decider is generated from the conditions' shapes
as straight-line Python: each distinct path is resolved once per event (sharing prefixes),
its text casefolded or parsed as a number once, and its `matches` patterns searched together
(`patternsets`) when the first is needed; then every rule's bool-only
predicate runs in ruleset order, honouring `first_match`, `stop` and running cooldowns
exactly as the explaining loop does, and a rule that acts plans its actions inline: each
action kind's skips and effect compiled from its entry in `planning.PLANNING` (the one
statement of them), the projected state held in locals. An action whose params have no
placeholder is planned as one of its objects built here, one per skip reason, shared by
every decision; a blank-text skip the rule alone decides is left out of the code.

SAFETY: no text from a rule file ever appears in generated source. Every value a rule holds
(operator arguments, path segments, rule names, compiled patterns, tests, windows), and
every text of `planning` (skip reasons, parameter names), is passed in as a constant and
referenced by an identifier this module makes up (`c17`); the source is made only of those
identifiers, our own locals (`v3`, `f3`, `g0`), small integers we count, operators and
keywords. A condition too deep to compile as one expression, or of a shape this
module does not know, calls its explaining check instead. The namespace the code runs in
holds nothing but the helpers below, so a rule value such as `__import__('os')` stays a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from worker.engine.checks import Check, Shape
from worker.engine.codegen import HELPERS, SourceBuilder, condition_expression
from worker.engine.model import PlannedAction, planned_action
from worker.engine.multi_match import PatternSet
from worker.engine.planning import (
    NO_CONVERSATION,
    BlankText,
    NoHelpWaveTicket,
    SkipTest,
    TicketIs,
    is_blank,
    planning_of,
)
from worker.engine.templates import compile_value, text_pieces

# Called as decide(payload, ticket open when the event arrived, its moment, running
# cooldowns, event has no conversation, then the projection (planning.Projection): ticket
# open, HelpWave ticket id, HelpWave ticket planned; then whether the WhatsApp session is
# open); returns (names of the rules that act, their planned actions, the projected ticket
# open and HelpWave ticket planned after them, ((rule, cooldown) started, ...), (names of
# the rules with `after:` that matched and schedule their actions, ...)). The HelpWave
# ticket id is only read: no action sets it.
#
# A rule with `after:` plans nothing here: when it matches it counts as acting (for
# `first_match` and `stop`), its cooldown is not looked at (that is done when its wait
# comes due, `timers.fire`), and it is named in the last item; `scheduling` builds its
# wait. On an event with no conversation it is named with the rules that act instead (it
# matched; nothing can be scheduled for no conversation).
Decided = tuple[
    list[str],
    list[PlannedAction],
    bool,
    bool,
    tuple[tuple[str, timedelta], ...],
    tuple[str, ...],
]
Decider = Callable[
    [
        Mapping[str, Any],
        bool,
        datetime,
        Mapping[str, datetime],
        bool,
        bool,
        str | None,
        bool,
        bool,
    ],
    Decided,
]


@dataclass(frozen=True)
class ActionStep:
    """One action of a rule, ready to plan: `fixed` params (copied) unless it has `render`."""

    index: int
    kind: str
    fixed: Mapping[str, Any]
    render: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None


@dataclass(frozen=True)
class RuleEntry:
    """One listening rule as a decider sees it."""

    name: str
    shape: Shape | None
    check: Check  # the explaining check, for opaque shapes
    group: int | None = None  # its file's number when the file is in first_match mode
    stop: bool = False
    actions: tuple[ActionStep, ...] = ()
    cooldown: timedelta | None = None
    after: bool = False  # has `after:`: schedules instead of acting


_RESULT: Final = "return names, acts, to, hp, started, sch"


def _skip_test(src: SourceBuilder, test: SkipTest) -> str:
    """A bool expression for `test` (see `planning.holds`) over the projection's locals
    `to`, `hid`, `hp` and the action's params `p`."""
    if isinstance(test, TicketIs):
        return "to" if test.open else "not to"
    if isinstance(test, NoHelpWaveTicket):
        return "hid is None and not hp"
    # BlankText: decided inline for a plain str, by `is_blank` for anything else
    return f"not (type(x := p.get({src.const(test.param)})) is str and x.strip()) and B(x)"


def _known_blank(step: ActionStep) -> dict[str, bool]:
    """Whether each of the step's params is blank (`is_blank`), where the rule alone tells:
    a value without placeholders, or a text with one and a literal not all whitespace."""
    known = {}
    for key, value in step.fixed.items():
        if step.render is None or compile_value(value) is None:
            known[key] = is_blank(value)
        elif isinstance(value, str):
            split = text_pieces(value)
            if split is not None and any(text.strip() for text in split[0]):
                known[key] = False
    return known


def _planning(
    src: SourceBuilder, step: ActionStep, chosen: Callable[[str | None], str]
) -> list[str]:
    """Lines choosing the skip reason of the step's action (`chosen(reason)`: the statement
    for it; the params are in `p`), and applying its effect to the projection when it is not
    skipped (`planning.plan_action`). A skip test the rule alone decides is left out."""
    planning = planning_of(step.kind)
    known = _known_blank(step)
    lines = ["if nc:", f"    {chosen(NO_CONVERSATION)}"]
    for skip in planning.skips:
        test = skip.test
        if isinstance(test, BlankText) and (test.param in known or step.render is None):
            if known.get(test.param, True):  # no such param: None, blank
                return [*lines, "else:", f"    {chosen(skip.reason)}"]
            continue
        lines += [f"elif {_skip_test(src, test)}:", f"    {chosen(skip.reason)}"]
    lines += ["else:", f"    {chosen(None)}"]
    if planning.sets_ticket_open is not None:
        lines.append(f"    to = {'True' if planning.sets_ticket_open else 'False'}")
    if planning.plans_helpwave_ticket:
        lines.append("    hp = True")
    return lines


def _params(src: SourceBuilder, step: ActionStep) -> list[str]:
    """Lines setting `p` to a new dict of the step's params, placeholders filled.

    A top-level text with placeholders is built inline from the resolved paths; anything
    else with placeholders (inside a list, say) calls the step's renderer.
    """
    if step.render is None:
        return [f"p = {src.const(dict(step.fixed))}.copy()"]
    texts = {key: text_pieces(value) for key, value in step.fixed.items() if isinstance(value, str)}
    if any(
        compile_value(value) is not None and texts.get(key) is None
        for key, value in step.fixed.items()
    ):
        return [f"p = {src.const(step.render)}(payload)"]
    lines = [f"p = {src.const(dict(step.fixed))}.copy()"]
    for key, split in texts.items():
        if split is None:
            continue
        literals, paths = split
        parts = [src.const(literals[0])] if literals[0] else []
        for segments, literal in zip(paths, literals[1:], strict=True):
            value = src.path(segments)
            parts.append(f"({value} if type({value}) is str else T({value}))")
            if literal:
                parts.append(src.const(literal))
        lines.append(f"p[{src.const(key)}] = {' + '.join(parts)}")
    return lines


def _shared(src: SourceBuilder, rule: str, step: ActionStep) -> Callable[[str | None], str]:
    """For a step without placeholders: one action object per skip reason, built here and
    shared by every decision that plans it (immutable; its params are never changed)."""
    params = dict(step.fixed)

    def chosen(reason: str | None) -> str:
        action = planned_action(rule, step.index, step.kind, params, reason)
        return f"acts.append({src.const(action)})"

    return chosen


def _plan(src: SourceBuilder, entry: RuleEntry) -> list[str]:
    """Lines planning `entry`'s actions once it acts (PlannedAction built as in model)."""
    name = src.const(entry.name)
    lines = [f"names.append({name})"]
    for step in entry.actions:
        if step.render is None:
            lines += _planning(src, step, _shared(src, entry.name, step))
            continue
        lines += _params(src, step)
        lines += _planning(src, step, lambda why: f"s = {why and src.text(why)}")
        lines += [
            "a = NEW(PA)",
            "d = a.__dict__",
            f"d['rule'] = {name}",
            f"d['index'] = {int(step.index)}",
            f"d['kind'] = {src.const(step.kind)}",
            "d['params'] = p",
            "d['skip_reason'] = s",
            "acts.append(a)",
        ]
    if entry.cooldown is not None:
        lines.append(f"started += (({name}, {src.const(entry.cooldown)}),)")
    return lines


def generate(entries: Sequence[RuleEntry], *, opaque: bool = False) -> tuple[str, list[Any]]:
    """The source of a decider for `entries` (in ruleset order) and the constants it uses.

    `opaque`: every predicate calls its explaining check (the fallback, see `compile_decider`).
    """
    src = SourceBuilder()
    body: list[str] = []
    groups = sorted({e.group for e in entries if e.group is not None})
    for entry in entries:
        shape = None if opaque else entry.shape
        predicate = condition_expression(src, shape, entry.check)
        guard = "" if entry.group is None else f"not g{int(entry.group)} and "
        body.append(f"if {guard}{predicate}:")
        if entry.after:
            name = src.const(entry.name)
            acting = ["if nc:", f"    names.append({name})", "else:", f"    sch += ({name},)"]
            indent = "    "
        else:
            body.append(f"    if not cool or {src.const(entry.name)} not in cool:")
            acting = _plan(src, entry)
            indent = "        "
        if entry.group is not None:
            acting.append(f"g{int(entry.group)} = True")
        if entry.stop:
            acting.append(_RESULT)
        body += [f"{indent}{line}" for line in acting]
    head = ["names = []", "acts = []", "started = ()", "sch = ()"]
    head += [f"g{int(group)} = False" for group in groups]
    head += src.prefetch
    lines = [f"def build({', '.join(f'c{i}' for i in range(len(src.constants)))}):"]
    lines.append("    def decide(payload, t, moment, cool, nc, to, hid, hp, so):")
    lines += [f"        {line}" for line in (*head, *body, _RESULT)]
    lines.append("    return decide")
    for constant, patterns in src.pattern_sets.values():
        src.constants[int(constant[1:])] = PatternSet(patterns)
    return "\n".join(lines) + "\n", src.constants


def compile_decider(entries: Sequence[RuleEntry], *, opaque: bool = False) -> Decider:
    """The decider of `entries`: which act on an event, and their planned actions.

    Same answers as running each entry's explaining check in order (see the module doc).
    With `opaque`, or should the generated code not compile (a pathological ruleset), every
    predicate calls its explaining check instead.
    """
    if not opaque:
        try:
            return _build(*generate(entries))
        except Exception:  # whatever went wrong, the opaque form is simpler
            pass
    return _build(*generate(entries, opaque=True))


def _build(source: str, constants: list[Any]) -> Decider:
    namespace = dict(HELPERS)
    exec(compile(source, "<rules decider>", "exec"), namespace)  # our source, see the module doc
    return namespace["build"](*constants)  # type: ignore[no-any-return]


def compile_predicate(shape: Shape | None, check: Check) -> Callable[..., bool]:
    """`(payload, ticket_open, moment, session_open=False) -> bool` for one condition
    (tests compare it to check)."""
    decide = compile_decider([RuleEntry("", shape, check)])
    empty: dict[str, datetime] = {}

    def holds(
        payload: Mapping[str, Any], ticket_open: bool, moment: datetime, session: bool = False
    ) -> bool:
        names = decide(payload, ticket_open, moment, empty, True, False, None, False, session)[0]
        return bool(names)

    return holds
