"""Deciding the shadow rules of an item once its live decision is stored (`engine.shadow`).

The processor calls `ShadowRunner.run` for every item it decides, in the conversation's
order and under its lock. With no shadow rule in the ruleset it returns at once (no Redis
call). Otherwise each shadow rule's world decides the item from the rule's own view (the
live state the item was decided from when the rule has no view yet), and `ShadowLog.record`
stores the verdicts, the views they lead to and the report's counters, once per item.
Replays (an operator's choice, decided by nobody) get no verdict; an item whose verdicts
are stored already is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from worker.engine import Ruleset
from worker.engine.decision import Decision
from worker.engine.model import ConversationState, Event, Wait
from worker.engine.shadow import decide_shadows, fire_shadows
from worker.processing.failures import REPLAY_VERSION
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord
from worker.storage.shadow_log import ShadowLog


class ShadowRunner:
    """Decides and records the shadow rules' verdicts (see the module docstring)."""

    def __init__(self, store: ConversationStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._log = ShadowLog(store.client)
        self._clock = clock

    def run(
        self,
        ruleset: Ruleset,
        record: DeliveryRecord,
        event: Event,
        wait: Wait | None,
        decision: Decision,
    ) -> None:
        """Decide and store the shadow verdicts on `record`'s item, if it needs them."""
        names = ruleset.shadow_rules
        if not names or record.shadow is not None or decision.ruleset_version == REPLAY_VERSION:
            return
        conversation = decision.conversation_id
        start = record.state_before or ConversationState()
        stored = (
            {} if conversation is None else self._log.views(record.conversation, names, record.view)
        )
        views = {name: stored.get(name, start) for name in names}
        now = self._clock()
        if wait is not None and conversation is not None:
            moment = datetime.fromtimestamp(now, UTC)
            verdicts = fire_shadows(
                ruleset, conversation, wait.rule, wait.due, decision, views, now=moment
            )
        else:
            moment = datetime.fromtimestamp(record.received_at or now, UTC)
            verdicts = decide_shadows(ruleset, event, decision, views, now=moment)
        self._log.record(
            record.delivery_id,
            None if conversation is None else record.conversation,
            record.view,
            [(v, self._store.state_ttl(v.state_after)) for v in verdicts],
            now=now,
        )
