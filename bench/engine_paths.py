"""The timed paths of `bench.engine`: the worker's real path and its parts, and the
hand-written function's, each as events per second.

Timed in CPU time (`time.process_time`: what another process on the shared machine takes
is not counted), in rounds: each round runs every path once, the engine's and the
hand-written ones interleaved, in the opposite order every other round, so a slow spell
of the machine falls on both sides; each path's figure is its fastest of `repeat` rounds.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bench.engine_report import Rates
from worker.engine import Ruleset, evaluate
from worker.engine.decision import Decision
from worker.engine.evaluate import explain
from worker.engine.model import ConversationState, Event
from worker.storage.records import compact, stored_texts


def best_rates(
    runs: dict[str, Callable[[], None]],
    count: int,
    repeat: int,
    prepare: dict[str, Callable[[], None]],
) -> dict[str, float]:
    """Events per second of each run: its fastest of `repeat` rounds over `count` events,
    in CPU time, the runs interleaved (reversed every other round). `prepare[name]`, if
    any, runs untimed before each round of `name`."""
    best = dict.fromkeys(runs, float("inf"))
    names = list(runs)
    for round_ in range(repeat):
        for name in names if round_ % 2 == 0 else names[::-1]:
            if name in prepare:
                prepare[name]()
            gc.collect()  # untimed: no run pays for the garbage of the one before
            started = time.process_time()
            runs[name]()
            best[name] = min(best[name], time.process_time() - started)
    return {name: count / seconds for name, seconds in best.items()}


def time_paths(
    ruleset: Ruleset,
    decide: Callable[..., list[Any]],
    events: list[tuple[Event, bool]],
    repeat: int,
    now: datetime,
) -> Rates:
    """Every path over the same `events` (with the ticket open or not), in one run."""

    def run_real() -> None:
        # the state before is stored as the text it was loaded as (`Head.state`): not encoded
        for event, ticket_open in events:
            state = ConversationState(ticket_open=ticket_open)
            decision = evaluate(ruleset, event, state, now=now)
            stored_texts(decision)

    def run_hand_real() -> None:
        for event, ticket_open in events:
            compact(decide(event.payload, ticket_open))

    def run_engine() -> None:
        for event, ticket_open in events:
            evaluate(ruleset, event, ConversationState(ticket_open=ticket_open), now=now)

    def run_hand() -> None:
        for event, ticket_open in events:
            decide(event.payload, ticket_open)

    decided: list[Decision] = []

    def decide_all() -> None:
        # decisions made afresh for every round: a planned action keeps its text once
        # encoded (`json_text`), and on the worker's path each decision is stored once
        decided[:] = [
            evaluate(ruleset, event, ConversationState(ticket_open=ticket_open), now=now)
            for event, ticket_open in events
        ]

    def run_explain() -> None:
        for event, ticket_open in events:
            explain(ruleset, event, ConversationState(ticket_open=ticket_open), now)

    def run_stored_texts() -> None:
        for decision in decided:
            stored_texts(decision)

    runs = {
        "real": run_real,
        "hand_real": run_hand_real,
        "engine": run_engine,
        "hand": run_hand,
        "stored_texts": run_stored_texts,
        "explain": run_explain,
    }
    return Rates(**best_rates(runs, len(events), repeat, {"stored_texts": decide_all}))
