"""The starting state `ticket-worker explain --state WORD ...` describes."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.engine import Ruleset
from worker.engine.model import ConversationState, Wait
from worker.errors import PayloadError


def parse_state(values: list[str], ruleset: Ruleset | None = None) -> ConversationState:
    """`--state` words: open | closed | helpwave=ID | cooldown=RULE:ISO-UNTIL |
    wait=RULE:ISO-DUE (a pending wait of that rule, as `ruleset` defines it) |
    last_message=ISO (the conversation's last message.received)."""
    state = ConversationState()
    cooldowns = {}
    waits = {}
    for value in values:
        if value.startswith(("wait=", "last_message=")):
            name, _, rest = value.partition("=")
            rule, due = rest.partition(":")[::2] if name == "wait" else ("-", rest)
            moment = _moment(due)
            if not rule or moment is None:
                raise PayloadError(
                    400, f"--state {value!r}: expected wait=RULE:ISO-DUE or last_message=ISO"
                )
            if name == "last_message":
                state = state.evolve(last_customer_message=moment)
                continue
            found = ruleset.plan.by_name.get(rule) if ruleset is not None else None
            definition = found.definition if found is not None else ""
            business = found.business if found is not None else False
            waits[rule] = Wait(rule, moment, definition, business)
            continue
        if value in ("open", "closed"):
            state = state.evolve(ticket_open=value == "open")
        elif value.startswith("helpwave="):
            state = state.evolve(helpwave_ticket_id=value[9:])
        elif value.startswith("cooldown="):
            rule, _, until = value[9:].partition(":")
            try:
                moment = datetime.fromisoformat(until)
            except ValueError:
                moment = None
            if not rule or moment is None:
                raise PayloadError(400, f"--state {value!r}: expected cooldown=RULE:ISO-UNTIL")
            cooldowns[rule] = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        else:
            raise PayloadError(
                400,
                f"--state {value!r}: expected open, closed, helpwave=ID, cooldown=RULE:UNTIL, "
                "wait=RULE:DUE or last_message=ISO",
            )
    return state.evolve(cooldowns=cooldowns, waits=waits)


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
