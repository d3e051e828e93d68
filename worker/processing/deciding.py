"""Decides one item of a conversation's inbox: once, with what needs no call recorded at once.

`ItemDecider.process` opens the item (`worker.processing.items`), decides it unless its
stored decision holds (a redelivery or replay carries that one out, never deciding again),
queues the decision, the breaker's admissions and the outcomes of skipped and dry-run
actions on one pipeline, runs the shadow rules, and says which lanes (destinations) carry
out the rest. The drains (`processor`, `conversation_batch`) send that pipeline with their
step to the next item. Dry runs decide in their own view of the tickets, shadow rules in
views of their own (`shadow_runner`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import redis

from worker.delivery.breaker import Verdict
from worker.engine import Ruleset
from worker.metrics import WorkerMetrics
from worker.processing import items
from worker.processing.action_runner import ActionRunner
from worker.processing.items import Decided
from worker.processing.lane_fields import destination
from worker.processing.shadow_runner import ShadowRunner
from worker.storage.conversations import ConversationStore
from worker.storage.drains import Head
from worker.storage.records import is_quiet


class ItemDecider:
    """Decides items for the drains of one worker (see the module docstring)."""

    def __init__(
        self,
        *,
        store: ConversationStore,
        rules: Callable[[], Ruleset],
        runner: ActionRunner,
        dry_run: bool,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._rules = rules
        self._runner = runner
        self._dry_run = dry_run
        self._metrics = metrics
        self._clock = clock
        self._shadows = ShadowRunner(store, clock=clock)

    def process(
        self,
        conversation: str,
        head: Head,
        writes: redis.client.Pipeline | None = None,
        ruleset: Ruleset | None = None,
    ) -> Decided:
        """Decide the item (once), record at once what needs no call (skipped actions, a
        dry run's), and say which lanes carry out the rest. Its writes are queued on
        `writes` (a new pipeline when None), sent with the step to the next item. Decided
        by `ruleset` (the rules now when None): a batch decides all its items by the one
        it checked has no shadow rules, whose decisions would send `writes` early."""
        rules = ruleset if ruleset is not None else self._rules()
        opened = items.open_item(
            self._store, conversation, head, dry_run=self._dry_run, metrics=self._metrics
        )
        if opened is None:
            return Decided(conversation)
        record, event, wait = opened
        state, before_text = items.state_of(self._store, conversation, record, head)
        decision = record.decision
        if writes is None:
            writes = self._store.client.pipeline(transaction=False)
        new = None
        verdicts: list[tuple[str, Verdict]] = []
        if decision is None:
            new = items.decide(rules, conversation, record, event, wait, state, now=self._clock())
            self._store.store_decision(record, new, state, before_text=before_text, pipe=writes)
            verdicts = self._runner.queue_admissions(writes, record, new, self._clock())
            decision = new
            if rules.shadow_rules:  # shadows are decided after the live decision
                answers = writes.execute()
                decision = self._store.decision_that_holds(new, answers[0])
                new, verdicts = None, []
            record = replace(record, decision=decision, state_before=state, stored=True)
            quiet = is_quiet(decision, rules)
            items.observe(
                self._metrics, record, event, wait, decision, now=self._clock(), quiet=quiet
            )
        self._shadows.run(rules, record, event, wait, decision)
        lanes = set()
        for action in decision.actions:
            if action.key in record.done:
                continue
            if action.skip_reason is not None or record.dry_run:
                self._runner.run(record, event, action, state, None, writes)
            else:
                lanes.add(destination(action.kind))
        return Decided(
            conversation,
            quiet=is_quiet(decision, rules),
            has_conversation=event.conversation_id is not None,
            writes=writes,
            lanes="".join(sorted(lanes)),  # "a" first: the drain itself takes it
            delivery_id=record.delivery_id,
            new=new,
            verdicts=verdicts,
            record=record,
            event=event,
        )
