"""Shadow rules (rules.md "Shadow rules"): decided on live traffic, never carried out.

A `shadow: true` rule is left out of the live plan: live rules are decided as if it were
not there (its `stop:` or `first_match` never hides a live rule). Each shadow rule instead
has a view of its own, its *world*: the ruleset with that one rule live
(`Ruleset.shadow_worlds`), decided against the rule's own conversation state. So the world
holds what the live rules would do alongside it, and what the shadow rule would add; what it
imagines never reaches the live state or another shadow rule's world. A view starts as the
live state when it has none yet (a new conversation, a shadow rule just added, or a view
expired). This is "what would happen if the line `shadow: true` were removed".

For every event (and every live wait coming due) each world gives a `ShadowVerdict`: the
shadow rule's outcome, its own actions ("would have"; skipped ones keep their reason), and
where the world's actions differ from the live decision's (`shadow_only:open_ticket`: the
world would open where live did not; `live_only:close_ticket`: live closed where the world
would not). Pure, like `evaluate`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from worker.engine.decision import Decision
from worker.engine.evaluate import evaluate
from worker.engine.model import ACTION_KINDS, ConversationState, Event, PlannedAction
from worker.engine.ruleset import Ruleset
from worker.engine.timers import fire

SHADOW_ONLY: Final = "shadow_only"
LIVE_ONLY: Final = "live_only"


@dataclass(frozen=True)
class ShadowVerdict:
    """What one shadow rule's world decided for an item, against the live decision."""

    rule: str
    status: str  # the shadow rule's outcome in its world (matched, not_matched, ...)
    reason: str
    actions: tuple[PlannedAction, ...]  # the shadow rule's own actions: "would have"
    differences: tuple[str, ...]  # "shadow_only:<kind>" / "live_only:<kind>"
    state_after: ConversationState  # the rule's view after the item

    @property
    def acted(self) -> bool:
        """Would the rule have carried out an action (one not skipped)?"""
        return any(a.skip_reason is None for a in self.actions)

    def to_json(self) -> dict[str, Any]:
        """The stored form (on the delivery); the view's state is stored on its own."""
        return {
            "rule": self.rule,
            "status": self.status,
            "reason": self.reason,
            "actions": [
                {"index": a.index, "kind": a.kind, "params": dict(a.params), "skip": a.skip_reason}
                for a in self.actions
            ],
            "differences": list(self.differences),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShadowVerdict:
        rule = str(data["rule"])
        return cls(
            rule=rule,
            status=str(data.get("status", "")),
            reason=str(data.get("reason", "")),
            actions=tuple(
                PlannedAction(rule, int(a["index"]), a["kind"], a.get("params", {}), a.get("skip"))
                for a in data.get("actions", ())
            ),
            differences=tuple(data.get("differences", ())),
            state_after=ConversationState(),
        )


def describe_difference(label: str) -> str:
    """`shadow_only:open_ticket` as people read it."""
    side, _, kind = label.partition(":")
    if side == SHADOW_ONLY:
        return f"shadow would {kind} where live did not"
    return f"live did {kind} where the shadow would not"


def decide_shadows(
    ruleset: Ruleset,
    event: Event,
    live: Decision,
    views: Mapping[str, ConversationState],
    *,
    now: datetime,
) -> tuple[ShadowVerdict, ...]:
    """Each shadow rule's verdict on `event`, decided in its world from its view (`views`:
    rule name -> state; a rule without one starts from `ConversationState()`)."""
    verdicts = []
    for name, world in ruleset.shadow_worlds.items():
        state = views.get(name, ConversationState())
        decision = evaluate(world, event, state, now=now)
        verdicts.append(_verdict(name, decision, live))
    return tuple(verdicts)


def fire_shadows(
    ruleset: Ruleset,
    conversation_id: str,
    rule: str,
    due: datetime,
    live: Decision,
    views: Mapping[str, ConversationState],
    *,
    now: datetime,
) -> tuple[ShadowVerdict, ...]:
    """Each shadow rule's verdict when the live wait of `rule` due at `due` comes due: the
    same wait, if its world scheduled it too, comes due in the world (`timers.fire`). A wait
    only a world scheduled never comes due (shadow rules cannot have `after:` themselves)."""
    verdicts = []
    for name, world in ruleset.shadow_worlds.items():
        state = views.get(name, ConversationState())
        decision = fire(world, conversation_id, rule, due, state, now=now)
        verdicts.append(_verdict(name, decision, live))
    return tuple(verdicts)


def _verdict(name: str, world: Decision, live: Decision) -> ShadowVerdict:
    mine = tuple(a for a in world.actions if a.rule == name)
    if name in world.matched_rules:
        status, reason = "matched", "every condition held"
    else:
        outcome = next((o for o in world.outcomes if o.rule == name), None)
        if outcome is None:
            status, reason = "not_for_event", f"not decided on {world.event}"
        else:
            status, reason = outcome.status, outcome.reason
    return ShadowVerdict(
        name, status, reason, mine, differences(live.actions, world.actions), world.state_after
    )


def differences(
    live: tuple[PlannedAction, ...], shadow: tuple[PlannedAction, ...]
) -> tuple[str, ...]:
    """Per action kind, which side carries out more of it (skipped actions do not count)."""
    live_kinds = Counter(a.kind for a in live if a.skip_reason is None)
    shadow_kinds = Counter(a.kind for a in shadow if a.skip_reason is None)
    found = []
    for kind in ACTION_KINDS:
        if shadow_kinds[kind] > live_kinds[kind]:
            found.append(f"{SHADOW_ONLY}:{kind}")
        elif live_kinds[kind] > shadow_kinds[kind]:
            found.append(f"{LIVE_ONLY}:{kind}")
    return tuple(found)
