"""The timed paths of `bench.engine`: the worker's real path and its parts, and the
hand-written function's, each as events per second (best of `repeat` runs)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bench.engine_report import Rates
from worker.engine import Ruleset, evaluate
from worker.engine.evaluate import explain
from worker.engine.model import ConversationState, Event
from worker.storage.records import compact, stored_texts


def best_rate(run: Callable[[], None], count: int, repeat: int) -> float:
    """Events per second of the fastest of `repeat` runs over `count` events."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return count / best


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

    decided = [
        evaluate(ruleset, event, ConversationState(ticket_open=ticket_open), now=now)
        for event, ticket_open in events
    ]

    def run_explain() -> None:
        for event, ticket_open in events:
            explain(ruleset, event, ConversationState(ticket_open=ticket_open), now)

    def run_stored_texts() -> None:
        for decision in decided:
            stored_texts(decision)

    return Rates(
        real=best_rate(run_real, len(events), repeat),
        hand_real=best_rate(run_hand_real, len(events), repeat),
        engine=best_rate(run_engine, len(events), repeat),
        hand=best_rate(run_hand, len(events), repeat),
        explain=best_rate(run_explain, len(events), repeat),
        stored_texts=best_rate(run_stored_texts, len(events), repeat),
    )
