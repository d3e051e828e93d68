"""Events of no conversation that no rule listens to, decided and finished in batches.

AwalChat sends three `message.status.updated` per message sent; they carry no
conversation (each is its own, `d:{delivery}`), and usually no rule listens to them. One at
a time, each costs a drain two round trips and a log line. Here (issue 13, item 2) a drain
that takes one takes up to SOLO_BATCH of them from the front of `tw:ready` in the same
step (worker.storage.drains `take_ready`, each with its lock held and marked active like any
conversation), decides the quiet ones in one pass, and finishes them all in one step
(`finish_quiet`): per event the decision and its decision-log entry, the pop, the body
dropped and the record kept QUIET_RECORD_TTL, exactly what `advance` does for one.

An event of the batch some rule (or shadow rule) listens to, one already decided, one whose
record is missing or does not parse, and the batch's other conversations (with a backlog it
holds some: `take_ready`) go to `ordinary` (worker.processing.conversation_batch).
A drain killed mid-batch leaves each event's conversation marked active with an inbox that
still holds it: recovery (worker.delivery.recovery) queues a drain for it once its lock
expires, and a decision is stored once (`finish_quiet` stores none where one exists).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from worker.engine import Ruleset
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event
from worker.errors import PayloadError
from worker.metrics import WorkerMetrics, event_label
from worker.processing import items
from worker.storage.drains import AGAIN, Batch, DrainSteps, Head, QuietItem, Taken, head_state
from worker.storage.records import is_quiet, parse_record, stored_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoloReport:
    """What a batch did: events decided quietly here, and those the ordinary path finished."""

    quiet: int
    ordinary: int


class SoloBatches:
    """Decides and finishes batches of events of no conversation (see the module doc)."""

    def __init__(
        self,
        *,
        steps: DrainSteps,
        rules: Callable[[], Ruleset],
        dry_run: bool,
        ttl_ms: int,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._steps = steps
        self._rules = rules
        self._dry_run = dry_run
        self._ttl_ms = ttl_ms
        self._metrics = metrics
        self._clock = clock

    def run(
        self,
        batch: Batch,
        token: str,
        next_token: str | None,
        ordinary: Callable[[list[tuple[str, Head]], str | None], tuple[int, Taken]],
    ) -> tuple[SoloReport, Taken]:
        """Decide the batch (its locks held with `token`): finish the quiet events in one
        step, then hand the others to `ordinary` (`ConversationBatches.run`: the
        conversations with their heads, and the next token; it returns the events it
        decided and what it took). With `next_token`, the last step takes the next ready
        work."""
        rules = self._rules()
        quiet: list[QuietItem] = []
        others: list[tuple[str, Head]] = []
        for conversation, head in batch.heads:
            decided = self.decide(rules, conversation, head)
            if decided is None:
                others.append((conversation, head))
            else:
                quiet.append(decided)
        taken: Taken = AGAIN
        stored = 0
        if quiet:
            done, taken = self._steps.finish_quiet(
                token,
                quiet,
                ttl_ms=self._ttl_ms,
                now=self._clock(),
                next_token=None if others else next_token,
            )
            stored = self._observe(quiet, done)
        processed = 0
        if others:
            processed, taken = ordinary(others, next_token)
        return SoloReport(stored, processed), taken

    def decide(self, rules: Ruleset, conversation: str, head: Head) -> QuietItem | None:
        """The event decided, when it is one no rule listens to, of no conversation and not
        decided before; None otherwise (the ordinary path takes it)."""
        if not conversation.startswith("d:") or not head.fields or b"decision" in head.fields:
            return None
        if rules.shadow_rules:
            return None
        record = parse_record(head.item, head.fields)
        try:
            event = parse_webhook(record.raw)
        except PayloadError:
            return None
        if not isinstance(event, Event) or event.conversation_id is not None:
            return None
        if rules.plan.for_event(event.name)[1]:
            return None  # some rule listens to it
        if self._dry_run and not record.dry_run:
            record = replace(record, dry_run=True)
        state = head_state(head) or ConversationState()
        decision = items.decide(rules, conversation, record, event, None, state, now=self._clock())
        if not is_quiet(decision, rules):
            return None
        return QuietItem(
            conversation,
            head.item,
            stored_texts(decision)[0],
            event.name,
            ",".join(decision.matched_rules),
        )

    def _observe(self, quiet: list[QuietItem], done: list[bool]) -> int:
        """Count the decisions stored here (and log each at DEBUG); return how many."""
        counts = Counter(event_label(q.event) for q, ok in zip(quiet, done, strict=True) if ok)
        for label, n in counts.items():
            self._metrics.events.labels(event=label).inc(n)
        if log.isEnabledFor(logging.DEBUG):
            for q, ok in zip(quiet, done, strict=True):
                if ok:
                    log.debug(
                        "event decided",
                        extra={"delivery_id": q.item, "event": q.event, "quiet": True},
                    )
        return sum(counts.values())
