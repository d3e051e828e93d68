"""Give expiries to keys written before storage was bounded (earlier versions left some
without one): every worker runs `expire_legacy_keys` once at start, in the background.

    tw:state:d:*                      deleted (an event of no conversation keeps no state)
    tw:state:*, tw:inbox:*,           expire STATE_RETENTION from now
    tw:delivery:*, tw:decisions:conv:*

Only keys with no expiry are touched, and it is idempotent. The walk reads every key once, so
it runs about once a day per Redis: a walk that finishes marks `tw:upgraded` (24 h) and the
starts after it skip the walk (`force=True` walks anyway); one cut short marks nothing.

`convert_decision_log` (run with it) turns the global decision log of an earlier version, a
list of delivery ids at `tw:decisions` (or moved aside to `tw:decisions:v1` by the first
decision stored since), into the stream entries of `worker.storage.decision_index`, oldest
first, before the entries written since.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import redis

from worker.engine.decision import Decision
from worker.storage import keys

log = logging.getLogger(__name__)

_EXPIRE: tuple[str, ...] = (
    keys.state("*"),
    keys.inbox("*"),
    keys.delivery("*"),
    keys.conversation_log("*"),
)
_DELETE = keys.state("d:*")


def _scan(client: redis.Redis, pattern: str, batch: int) -> Iterator[list[bytes | str]]:
    cursor = 0
    while True:
        cursor, found = client.scan(cursor, match=pattern, count=batch)
        if found:
            yield list(found)
        if cursor == 0:
            return


def expire_legacy_keys(
    client: redis.Redis, *, retention: int, batch: int = 1000, force: bool = False
) -> int:
    """Delete or give an expiry to every listed key that has none; return how many.

    Skipped (0) when a walk finished within `UPGRADE_CHECK_TTL`, unless `force`.
    """
    if not force and client.exists(keys.UPGRADED):
        return 0
    changed = 0
    for pattern in (_DELETE, *_EXPIRE):
        for found in _scan(client, pattern, batch):
            pipe = client.pipeline(transaction=False)
            for key in found:
                pipe.ttl(key)
            ttls = pipe.execute()
            stale = [key for key, ttl in zip(found, ttls, strict=True) if ttl == -1]
            if not stale:
                continue
            pipe = client.pipeline(transaction=False)
            for key in stale:
                if pattern == _DELETE:
                    pipe.delete(key)
                else:
                    pipe.expire(key, retention, nx=True)
            pipe.execute()
            changed += len(stale)
    client.set(keys.UPGRADED, "1", ex=keys.UPGRADE_CHECK_TTL)  # only once the walk is done
    if changed:
        log.info("gave an expiry to %d keys written by an earlier version", changed)
    return changed


_MOVE_LIST = """
if redis.call('TYPE', KEYS[1]).ok == 'list' then redis.call('RENAME', KEYS[1], KEYS[2]) end
"""


def _legacy_entries(client: redis.Redis, ids: list[bytes]) -> list[tuple[str, dict[str, str]]]:
    """(stream id, fields) of the listed deliveries still stored, oldest first."""
    pipe = client.pipeline(transaction=False)
    for delivery_id in ids:
        pipe.hmget(keys.delivery(delivery_id.decode()), "received_at", "decision")
    entries: list[tuple[str, dict[str, str]]] = []
    last_ms, seq = 0, 0
    for delivery_id, (received, stored) in reversed(list(zip(ids, pipe.execute(), strict=True))):
        if stored is None:
            continue
        decision = Decision.from_json(json.loads(stored))
        ms = max(int(float(received or 0) * 1000), last_ms)
        seq = seq + 1 if ms == last_ms else 0
        last_ms = ms
        fields = {
            "d": delivery_id.decode(),
            "c": decision.conversation_id or "",
            "e": decision.event,
            "r": ",".join(decision.matched_rules),
        }
        entries.append((f"{ms}-{seq}", fields))
    return entries


def convert_decision_log(client: redis.Redis) -> int:
    """Convert an old list-form decision log into the stream; return the entries added."""
    client.register_script(_MOVE_LIST)(keys=[keys.DECISIONS, keys.LEGACY_DECISIONS])
    ids = [i for i in client.lrange(keys.LEGACY_DECISIONS, 0, -1) if isinstance(i, bytes)]
    if not ids:
        client.delete(keys.LEGACY_DECISIONS)
        return 0
    entries = _legacy_entries(client, ids)
    with client.pipeline(transaction=True) as pipe:
        while True:
            try:
                pipe.watch(keys.DECISIONS)  # type: ignore[no-untyped-call]
                current: list[Any] = pipe.xrange(keys.DECISIONS) or []
                pipe.multi()
                pipe.delete(keys.DECISIONS)
                newest = [(e[0].decode(), e[1]) for e in current]
                first = newest[0][0] if newest else None
                for entry_id, fields in entries:
                    if first is None or _older(entry_id, first):
                        pipe.xadd(keys.DECISIONS, fields, id=entry_id)  # type: ignore[arg-type]
                for entry_id, fields in newest:
                    pipe.xadd(keys.DECISIONS, fields, id=entry_id)
                pipe.delete(keys.LEGACY_DECISIONS)
                pipe.execute()
                break
            except redis.WatchError:
                continue
    log.info("converted %d decision log entries to the stream form", len(entries))
    return len(entries)


def _older(a: str, b: str) -> bool:
    ams, aseq = (int(x) for x in a.split("-"))
    bms, bseq = (int(x) for x in b.split("-"))
    return (ams, aseq) < (bms, bseq)
