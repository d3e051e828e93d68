"""Every rule's outcome for a decision stored compact, worked out again when it is read.

The worker stores what it decided, not why (`records.stored_form`): a rule's outcome is a
pure function of the event, the state before, the moment it was decided and the ruleset,
and the delivery keeps the first three. `explain_decision` runs the engine's explaining
checks on them with the ruleset of the decision's version, which `RulesetArchive` finds in
`tw:rules:history` (`rules_publication.ruleset_files`). A decision stored with its outcomes
(older records, waits coming due, replays) is shown as stored.

    explain_decision(record, ruleset)  (outcomes, how they were found)
    RulesetArchive(client).get(v)      the accepted ruleset of version v, or None
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Literal

import redis
import redis.asyncio

from worker.engine import Ruleset, load_ruleset_from_texts
from worker.engine.decision import RuleOutcome, rule_outcome
from worker.engine.envelope import parse_webhook
from worker.engine.evaluate import explain
from worker.engine.model import ConversationState, Event
from worker.errors import PayloadError, RulesError
from worker.storage import keys
from worker.storage.records import DeliveryRecord
from worker.storage.rules_publication import files_of, ruleset_files

Source = Literal["stored", "on read", "unavailable", "disagrees"]
"""How a record's outcomes were found: stored with it; worked out on read; the ruleset of
its version is no longer kept (only the matched rules are known); worked out on read, but
they do not agree with the stored decision (the engine changed since: shown, flagged)."""

KEPT_LOADED = 4  # rulesets an archive keeps loaded (a page of records shares a few versions)


def explain_decision(
    record: DeliveryRecord, ruleset: Ruleset | None
) -> tuple[tuple[RuleOutcome, ...], Source]:
    """The outcome of every rule for the record's decision, and how it was found.

    `ruleset`: the ruleset of the decision's version (None, or another version: unknown).
    """
    decision = record.decision
    assert decision is not None
    decided_at = decision.decided_at
    if decided_at is None:
        return decision.outcomes, "stored"
    if ruleset is None or ruleset.version != decision.ruleset_version:
        reason = (
            f"every condition held (why other rules did not act is unknown: ruleset "
            f"{decision.ruleset_version} is no longer kept)"
        )
        matched = tuple(
            rule_outcome(name, "matched", reason, None, "", 0) for name in decision.matched_rules
        )
        return matched, "unavailable"
    outcomes = explain(
        ruleset, _event_of(record), record.state_before or ConversationState(), decided_at
    )
    agreed = tuple(o.rule for o in outcomes if o.status == "matched") == decision.matched_rules
    return outcomes, "on read" if agreed else "disagrees"


def _event_of(record: DeliveryRecord) -> Event:
    """The event as the worker decided it; an event no rule listened to may have had its
    raw body dropped (records.is_quiet): its name is then all the checks look at."""
    decision = record.decision
    assert decision is not None
    try:
        event = parse_webhook(record.raw) if record.raw else None
    except PayloadError:
        event = None
    if isinstance(event, Event) and event.name == decision.event:
        return event
    return Event(decision.event, {}, None, decision.conversation_id)


class RulesetArchive:
    """The accepted rulesets by version, read from Redis and loaded once each (the
    `KEPT_LOADED` most recently used stay loaded; a version not found is asked again).
    `local`: a ruleset this process already has (its version is not read from Redis)."""

    def __init__(
        self,
        client: redis.Redis | redis.asyncio.Redis,
        *,
        local: Ruleset | None = None,
    ) -> None:
        self._client = client
        self._loaded: OrderedDict[str, Ruleset] = OrderedDict()
        self._lock = threading.Lock()  # a console serves pages from several threads
        if local is not None:
            self._loaded[local.version] = local

    def get(self, version: str) -> Ruleset | None:
        """The ruleset of `version`, or None when it is no longer kept.

        Raises redis.RedisError when Redis cannot be reached. Sync clients only.
        """
        with self._lock:
            if version in self._loaded:
                self._loaded.move_to_end(version)
                return self._loaded[version]
            assert isinstance(self._client, redis.Redis)
            return self._remember(version, ruleset_files(self._client, version))

    async def aget(self, version: str) -> Ruleset | None:
        """`get` with an asyncio client."""
        if version in self._loaded:
            self._loaded.move_to_end(version)
            return self._loaded[version]
        assert isinstance(self._client, redis.asyncio.Redis)
        client = self._client
        kept = await client.hget(keys.RULES_HISTORY, version)
        if kept is None:
            current = await client.hmget(keys.RULES, ["version", "files"])
            kept = current[1] if current[0] in (version, version.encode()) else None
        return self._remember(version, None if kept is None else files_of(kept))

    def _remember(self, version: str, files: Mapping[str, str] | None) -> Ruleset | None:
        ruleset = None
        if files is not None:
            try:
                ruleset = load_ruleset_from_texts(files)
            except RulesError:
                ruleset = None
        if ruleset is None:
            return None  # not cached: it may be published later
        self._loaded[version] = ruleset
        while len(self._loaded) > KEPT_LOADED:
            self._loaded.popitem(last=False)
        return ruleset
