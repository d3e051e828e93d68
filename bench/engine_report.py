"""The `## Engine` section of BENCHMARKS.md from `bench.engine`'s figures."""

from __future__ import annotations

import argparse
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

GOAL = 0.5


@dataclass(frozen=True)
class Rates:
    """Events per second of each timed path, all measured in one run."""

    real: float  # evaluate + the texts the worker stores (the decision, the state after)
    hand_real: float  # the hand-written function + its planned actions as JSON
    engine: float  # evaluate alone (actions, state, matched rules)
    hand: float  # the hand-written function alone
    explain: float  # every rule's outcome (the explaining checks), now done on read
    stored_texts: float  # the decision's compact stored form and the state after, as JSON


def us(rate: float) -> str:
    return f"{1e6 / rate:.1f}"


def table(rates: Rates) -> str:
    rows = [
        (
            "**engine, worker's path** (evaluate + stored decision + state after, as JSON)",
            rates.real,
        ),
        ("**hand-written, worker's path** (decide + actions as JSON)", rates.hand_real),
        ("engine, `evaluate` alone (actions, state, matched rules)", rates.engine),
        ("hand-written function alone", rates.hand),
        ("of the worker's path: the stored texts (`stored_texts`)", rates.stored_texts),
        ("on read, not on the path: every rule's outcome (`explain`)", rates.explain),
    ]
    lines = ["| | events/s | µs/event |", "|---|---|---|"]
    lines += [f"| {name} | {rate:,.0f} | {us(rate)} |" for name, rate in rows]
    return "\n".join(lines)


def render(
    rates: Rates,
    held: int,
    peak: int,
    listening: float,
    matched: int,
    size: float,
    args: argparse.Namespace,
) -> str:
    ratio = rates.real / rates.hand_real
    decide_ratio = rates.engine / rates.hand
    verdict = "met" if ratio >= GOAL else "NOT met"
    return f"""## Engine

`.venv/bin/python -m bench.engine` ({datetime.now(UTC).date()}, Python
{platform.python_version()}, one core, {args.events} events per run). Timed in CPU time
(`time.process_time`: what other processes take on this shared 2-core machine is not
counted), in {args.repeat} rounds; each round runs every path below once, the engine's and
the hand-written ones interleaved (in reverse order every other round, garbage collected
before each run, untimed), and each figure is its path's fastest round, so a slow spell of
the machine falls on both sides rather than on one.
A generated 200-rule ruleset (4 files x 50 rules, one file per AwalChat event, one file in
`first_match`; equals, in, not_equals, contains, contains_any, starts_with, ends_with,
matches, gt/gte/lt, exists, `any`, `not`, `ticket:`) against a hand-written Python function
of the same 200 rules (straight-line ifs, no explanations) in the same run. Events cycle
through the four kinds; on average {listening:.0f} rules listen to an event, and the
{args.events} events plan {matched} actions (the two sides plan exactly the same ones).

The headline is the worker's real path: what `processing/processor.py` does between loading
the state and storing the decision, i.e. `evaluate` and the two JSON texts
`ConversationStore.store_decision` encodes (`records.stored_texts`: the decision's compact
stored form, and the state after, encoded once for both; the state before is stored as the
text it was read as). The hand-written function on that path decides and writes its planned
actions as JSON (what a worker without explanations would store).

{table(rates)}

- Ratio on the worker's path, engine / hand-written: **{ratio:.2f}** (goal >= {GOAL}:
  **{verdict}**). Deciding alone: {decide_ratio:.2f}.
- The stored decision is compact: matched rules, actions (rule, index, kind, params, skip
  reason), the state after, waits, the ruleset version and `decided_at`; no rule outcomes
  ({size / 1024:.2f} KiB of JSON per event on average here). Every rule's outcome, with the
  first failing condition and the value it saw, is worked out again when a record is read
  (`ticket-worker decisions`, `GET /decisions`, the console: `storage.explanations`) from
  the delivery's raw event, its state before and `decided_at`, with the ruleset of the
  decision's version (accepted rulesets are kept by version in `tw:rules:history`, the
  newest 50). Records stored whole by older versions read as before.
- Where the rest goes: `evaluate` alone costs about 1.5 times the hand-written function
  (the compiled deciders plan each action with its skip reason and track the projected
  state; an action whose params have no placeholder is one object per skip reason, built
  with the ruleset, not per event); the stored texts carry more than the hand-written
  actions (index and skip reason per action, the matched rules, the state after). They
  are joined from cached fragments (`storage.json_text`: each such prebuilt action's JSON
  encoded once, a rule action's and a skip reason's fragments around params with
  placeholders, the state's frame), byte for byte what the encoder writes
  (`tests/storage/test_json_text.py`). The hand-written side's JSON goes through
  `records.compact` (the same reused C encoder, made once).
- Explanations stay complete: for every event of the run, every rule's outcome is checked
  to be there, agreeing with `matched_rules`, and every miss names its first failing
  condition with the value it saw.
- Memory of the loaded ruleset (tracemalloc, held after loading and planning, deciders
  included): **{held / 1024:,.0f} KiB** for 200 rules ({held / 200 / 1024:.1f} KiB per
  rule; peak while loading and planning {peak / 1024 / 1024:.1f} MiB).
"""
