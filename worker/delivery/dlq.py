"""Dead letters: actions that ran out of attempts or were refused, kept for an operator.

Storage: hash `tw:dlq` (id -> JSON entry) and sorted set `tw:dlq:index` (id -> created_at)
for newest-first listing. Ids are 12 hex characters, short enough to type. An operator
replays or drops them (`ticket-worker dlq ...`); the queue is bounded like Sidekiq's dead
set: at most `max_letters` (DLQ_MAX), none older than `retention` (DLQ_RETENTION). Past
either bound the oldest letters are dropped, and each drop is reported to `on_drop` (the
worker logs and counts it). A letter is self-contained (the action with its parameters
filled, and an excerpt of its event): a replay does not need the delivery record.

Answers are stored truncated and with secrets removed: anything that looks like a
signature, an API key or an Authorization header, plus every secret value the queue was
given.
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import redis

from worker.storage import keys

ANSWER_LIMIT = 2000
REDACTED = "[redacted]"

_SECRET_PATTERNS = [
    # sha256=<hex> signatures (X-Awal-Signature-256)
    re.compile(r"(?i)(sha\d+=)[0-9a-f]{16,}"),
    # Bearer / Basic credentials
    re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"),
    # "name": "value", name=value, name: value for names that hold credentials
    re.compile(
        r"(?i)([\"']?[\w-]*(?:api[_-]?key|authorization|signature|secret|token|password)"
        r"[\w-]*[\"']?\s*[:=]\s*[\"']?)(?!\[redacted\])[^\s\"',;}&]+"
    ),
    # bare long hex runs (HMACs, keys); delivery ids (32 hex) stay readable
    re.compile(r"\b[0-9a-fA-F]{40,}\b"),
]


def redact(text: str, known_secrets: Iterable[str] = (), *, limit: int = ANSWER_LIMIT) -> str:
    """Remove secret-looking values and every `known_secrets` value, then truncate to
    `limit` characters (marked with an ellipsis)."""
    for secret in known_secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups >= 2:
            text = pattern.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
        elif pattern.groups == 1:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class DeadAction:
    """The action that failed: its kind and parameters, and the rule that planned it."""

    kind: str
    params: dict[str, Any]
    rule: str
    index: int


@dataclass(frozen=True)
class Attempt:
    """One call: when (Unix time), the HTTP status (None: no answer) and the answer text."""

    at: float
    status: int | None
    answer: str


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered action; `id` is assigned by `DeadLetterQueue.add` when empty."""

    created_at: float
    delivery_id: str
    conversation: str
    action: DeadAction
    idempotency_key: str
    reason: str
    attempts: list[Attempt] = field(default_factory=list)
    id: str = ""
    event: dict[str, Any] = field(default_factory=dict)  # worker.processing.failures.event_excerpt

    def to_json(self) -> str:
        """Compact JSON, the stored form."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        """Parse the stored form."""
        data = json.loads(raw)
        data["action"] = DeadAction(**data["action"])
        data["attempts"] = [Attempt(**a) for a in data["attempts"]]
        return cls(**data)


# KEYS: entries hash, index zset; ARGV: oldest created_at kept, most letters kept, batch.
# Drops the oldest letters past either bound; returns {id, reason, conversation, kind} each.
_TRIM = """
local dropped = {}
local function drop(id, reason)
  local raw = redis.call('HGET', KEYS[1], id)
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  local conversation, kind = '', ''
  if raw then
    local ok, letter = pcall(cjson.decode, raw)
    if ok and type(letter) == 'table' then
      conversation = tostring(letter['conversation'] or '')
      if type(letter['action']) == 'table' then kind = tostring(letter['action']['kind']) end
    end
  end
  table.insert(dropped, {id, reason, conversation, kind})
end
local batch = tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1],
                               'LIMIT', 0, batch)) do
  drop(id, 'retention')
end
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[2])
if over > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, math.min(over, batch) - 1)) do
    drop(id, 'max')
  end
end
return dropped
"""

# KEYS: entries, index, new delivery, inbox, queue
# ARGV: letter id, raw, received_at, conversation, decision, retention, message, item
_REQUEUE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], 'raw', ARGV[2], 'received_at', ARGV[3], 'dry_run', '0',
           'conversation', ARGV[4], 'decision', ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[6])
redis.call('RPUSH', KEYS[4], ARGV[8])
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('LPUSH', KEYS[5], ARGV[7])
return 1
"""

_TAKE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if raw then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return raw
"""


@dataclass(frozen=True)
class DroppedLetter:
    """A letter the bounds pushed out: `reason` is "max" (DLQ_MAX) or "retention"."""

    id: str
    reason: str
    conversation: str
    kind: str


class DeadLetterQueue:
    """Dead letters in Redis; each method is atomic."""

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        known_secrets: Iterable[str] = (),
        max_letters: int = keys.DEFAULT_DLQ_MAX,
        retention: float = keys.DEFAULT_DLQ_RETENTION,
        on_drop: Callable[[DroppedLetter], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis_client
        self._secrets = tuple(s for s in known_secrets if s)
        self._entries = keys.DLQ
        self._index = keys.DLQ_INDEX
        self.entries_key = self._entries
        self.index_key = self._index
        self._max = max_letters
        self._retention = retention
        self._on_drop = on_drop
        self._clock = clock
        self._take = redis_client.register_script(_TAKE)
        self._trim = redis_client.register_script(_TRIM)
        self._requeue = redis_client.register_script(_REQUEUE)

    def add(self, entry: DeadLetter) -> str:
        """Store `entry` (answers and reason redacted; a new id when it has none) and
        return its id, then drop what the bounds push out. Re-adding an id replaces it."""
        entry = replace(
            entry,
            id=entry.id or secrets.token_hex(6),
            reason=redact(entry.reason, self._secrets),
            attempts=[replace(a, answer=redact(a.answer, self._secrets)) for a in entry.attempts],
        )
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._entries, entry.id, entry.to_json())
        pipe.zadd(self._index, {entry.id: entry.created_at})
        pipe.execute()
        self.trim()
        return entry.id

    def trim(self, *, batch: int = 1000) -> builtins.list[DroppedLetter]:
        """Drop the letters older than the retention and the oldest past the maximum
        (at most `batch` per bound and call); report each to `on_drop` and return them."""
        oldest = self._clock() - self._retention
        raw = self._trim(keys=[self._entries, self._index], args=[repr(oldest), self._max, batch])
        dropped = [
            DroppedLetter(*(v.decode() if isinstance(v, bytes) else str(v) for v in row))
            for row in raw
        ]
        if self._on_drop is not None:
            for letter in dropped:
                self._on_drop(letter)
        return dropped

    def list(self, limit: int = 50) -> builtins.list[DeadLetter]:
        """Up to `limit` entries, newest first."""
        ids = [str(i, "utf-8") if isinstance(i, bytes) else str(i) for i in self._zrevrange(limit)]
        if not ids:
            return []
        raws = self._redis.hmget(self._entries, ids)
        return [DeadLetter.from_json(raw) for raw in raws if raw is not None]

    def _zrevrange(self, limit: int) -> builtins.list[object]:
        return builtins.list(self._redis.zrevrange(self._index, 0, limit - 1))

    def get(self, entry_id: str) -> DeadLetter | None:
        """The entry, or None."""
        raw = self._redis.hget(self._entries, entry_id)
        return None if raw is None else DeadLetter.from_json(raw)

    def drop(self, entry_id: str) -> bool:
        """Delete the entry; True if it existed."""
        return self.take(entry_id) is not None

    def take(self, entry_id: str) -> DeadLetter | None:
        """Remove and return the entry (for a replay), atomically: of two concurrent
        takers, one gets it and the other None."""
        raw = self._take(keys=[self._entries, self._index], args=[entry_id])
        return None if raw is None else DeadLetter.from_json(raw)

    def requeue(
        self,
        letter: DeadLetter,
        *,
        delivery_id: str,
        raw: str,
        decision: str,
        now: float,
        retention: int,
        message: str,
    ) -> bool:
        """Atomically: take `letter` out of the queue, store delivery `delivery_id` (body
        `raw`, stored `decision`) for `retention` seconds, queue it in the letter's
        conversation's inbox and LPUSH `message` (its drain). False when the letter is gone
        (someone replayed or dropped it first)."""
        done = self._requeue(
            keys=[
                self._entries,
                self._index,
                keys.delivery(delivery_id),
                keys.inbox(letter.conversation),
                keys.CELERY_QUEUE,
            ],
            args=[
                letter.id,
                raw,
                repr(now),
                letter.conversation,
                decision,
                retention,
                message,
                delivery_id,
            ],
        )
        return bool(done == 1)

    def count(self) -> int:
        """How many entries are held."""
        return int(self._redis.hlen(self._entries))
