"""Every Redis key the project writes: its name, type, owner, and its expiry or fixed bound.

This module is the one place that knows key names. Each key either expires (`expires=True`:
every write sets or refreshes its TTL) or is bounded by construction (`expires=False`: the
bound says what keeps it small). `tests/integration/test_storage_bounds.py` walks a Redis
after a mixed run and fails on any key that is not listed here, and on any key without an
expiry that is not listed as bounded.

    key                              type    owner             expiry or bound
    tw:seen:{delivery}               string  receiver          SEEN_TTL (24 h): duplicate detection
    tw:delivery:{delivery}           hash    receiver, worker  STATE_RETENTION while pending and
                                                               for a conversation's records;
                                                               QUIET_RECORD_TTL once an event of
                                                               no conversation is decided
    tw:inbox:{conv}                  list    receiver, worker  STATE_RETENTION after the last push
    tw:state:{conv}                  string  worker            STATE_RETENTION after the last event
    tw:dry:state:{conv}              string  worker            the same, for the dry-run view
    tw:shadow:state:{tag}:{conv}     string  worker            the same, for one shadow rule's view
    tw:dry:shadow:state:{tag}:{conv} string  worker            (tag: 6 hex of the rule's name);
                                                               the dry run's shadow views
    tw:shadow:hour:{tag}:{hour}      hash    worker            SHADOW_REPORT_RETENTION (8 days)
                                                               after its hour; fields bounded by
                                                               the action kinds (counters and
                                                               SHADOW_EXAMPLES examples each)
    tw:lock:{conv}                   string  worker            the lock's TTL (renewed while held)
    tw:decisions                     stream  worker            ~DECISION_LOG_LIMIT newest entries
                                                               (XADD MAXLEN ~): delivery id,
                                                               conversation, event, rules
    tw:decisions:v1                  list    worker            the log in its old form, moved
                                                               aside; converted and deleted by
                                                               worker.storage.upgrade
    tw:decisions:conv:{conv}         list    worker            DECISION_LOG_CONV_LIMIT ids, and
                                                               STATE_RETENTION after the last event
    tw:parked                        zset    worker            a member per conversation waiting
                                                               for a time; removed on release
    tw:active                        zset    worker            a member per conversation being
                                                               drained; removed when its inbox
                                                               empties (recovery sweeps the rest)
    tw:ready                         list    receiver, worker  a conversation per accepted webhook
                                                               not yet taken by a drain: bounded
                                                               by the backlog, like the queue
    tw:wakes                         string  receiver, worker  the count of queued wake messages;
                                                               WAKES_TTL after the last one
    tw:lane:{d}:{conv}               list    worker            delivery ids whose actions for
                                                               destination d (a: AwalChat,
                                                               h: HelpWave) wait; STATE_RETENTION
                                                               after the last push
    tw:lanelock:{d}:{conv}           string  worker            the lane lock's TTL (renewed)
    tw:ready:lanes                   list    worker            a lane member ("d:conv") per lane
                                                               made ready: one per lane at most
                                                               (pushed when its lane was empty)
    tw:parked:lanes                  zset    worker            a member per lane waiting for a time
    tw:active:lanes                  zset    worker            a member per lane being drained
    tw:timers                        zset    worker            a member per pending wait (rules
                                                               with `after:`); removed when it is
                                                               released, restarted or cancelled
    tw:rl:{destination}              hash    worker            RATE_TTL (2 days) after the last call
    tw:worker:{host}:{pid}           string  worker            WORKER_HEARTBEAT_TTL (30 s): a live
                                                               worker's heartbeat
    tw:caps:{kind}:{conv}            zset    worker            the runaway breaker's window: at
                                                               most its cap, expiring one window
                                                               after the last action
    tw:dlq, tw:dlq:index             hash,   worker            DLQ_MAX letters, none older than
                                     zset                      DLQ_RETENTION
    tw:dlq:audit:{letter}            string  console           DLQ_RETENTION after the last
                                                               replay or drop: the letter and who
                                                               replayed or dropped it, when, why
    tw:upgraded                      string  worker            UPGRADE_CHECK_TTL (24 h): the last
                                                               finished walk for keys without an
                                                               expiry (later starts skip it)
    tw:rules                         hash    every process     one: the newest accepted ruleset
    tw:rules:history                 hash    every process     RULES_HISTORY_LIMIT accepted rulesets
    tw:rules:history:order           zset    every process     by version (their files), the newest
                                                               by seq: decisions stored compact are
                                                               explained on read with their version

Celery's own keys (kombu's Redis transport) are listed too: the queue list and its
unacknowledged-message bookkeeping, each bounded by the work in flight.

Conversation keys `{conv}` are `data.conversation_id`, or `d:{delivery}` for an event that
belongs to no conversation (its inbox only; such an event writes no state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

PREFIX: Final = "tw:"

SEEN_TTL: Final = 24 * 3600
QUIET_RECORD_TTL: Final = 24 * 3600
RATE_TTL: Final = 2 * 86400
WAKES_TTL: Final = 30
DECISION_LOG_LIMIT: Final = 100_000
DECISION_LOG_CONV_LIMIT: Final = 200
DEFAULT_STATE_RETENTION: Final = 30 * 86400
DEFAULT_DLQ_MAX: Final = 10_000
DEFAULT_DLQ_RETENTION: Final = 90 * 86400
SHADOW_REPORT_RETENTION: Final = 8 * 86400  # `shadow-report --since` reaches 7 days back
SHADOW_EXAMPLES: Final = 3  # example items kept per shadow rule, hour and disagreement
WORKER_HEARTBEAT_TTL: Final = 30
RULES_HISTORY_LIMIT: Final = 50  # accepted rulesets kept by version (explaining on read)
UPGRADE_CHECK_TTL: Final = 24 * 3600  # a worker start looks for unbounded keys once a day

CELERY_QUEUE: Final = "celery"
DECISIONS: Final = f"{PREFIX}decisions"
LEGACY_DECISIONS: Final = f"{PREFIX}decisions:v1"
PARKED: Final = f"{PREFIX}parked"
ACTIVE: Final = f"{PREFIX}active"
TIMERS: Final = f"{PREFIX}timers"
READY_LANES: Final = f"{PREFIX}ready:lanes"
PARKED_LANES: Final = f"{PREFIX}parked:lanes"
ACTIVE_LANES: Final = f"{PREFIX}active:lanes"
READY: Final = f"{PREFIX}ready"
WAKES: Final = f"{PREFIX}wakes"
DLQ: Final = f"{PREFIX}dlq"
DLQ_INDEX: Final = f"{PREFIX}dlq:index"
RULES: Final = f"{PREFIX}rules"
RULES_HISTORY: Final = f"{PREFIX}rules:history"
RULES_HISTORY_ORDER: Final = f"{PREFIX}rules:history:order"
RATE_PREFIX: Final = f"{PREFIX}rl:"
WORKER_PREFIX: Final = f"{PREFIX}worker:"
DLQ_AUDIT_PREFIX: Final = f"{PREFIX}dlq:audit:"
UPGRADED: Final = f"{PREFIX}upgraded"

View = Literal["live", "dry"]
"""Whose picture of the tickets a state key holds: live calls, or what a dry run imagined."""


def seen(delivery_id: str) -> str:
    return f"{PREFIX}seen:{delivery_id}"


def delivery(delivery_id: str) -> str:
    return f"{PREFIX}delivery:{delivery_id}"


def inbox(conversation: str) -> str:
    return f"{PREFIX}inbox:{conversation}"


def state(conversation: str, view: View = "live") -> str:
    if view == "dry":
        return f"{PREFIX}dry:state:{conversation}"
    return f"{PREFIX}state:{conversation}"


def shadow_state(tag: str, conversation: str, view: View = "live") -> str:
    """One shadow rule's view of a conversation (`tag`: `storage.timers.rule_tag`)."""
    if view == "dry":
        return f"{PREFIX}dry:shadow:state:{tag}:{conversation}"
    return f"{PREFIX}shadow:state:{tag}:{conversation}"


def shadow_hour(tag: str, hour: int) -> str:
    """The shadow report's counters of one shadow rule for one hour (Unix time // 3600)."""
    return f"{PREFIX}shadow:hour:{tag}:{hour}"


def lock(conversation: str) -> str:
    return f"{PREFIX}lock:{conversation}"


def lane(member: str) -> str:
    """A lane's list of delivery ids; `member` is "d:conv" (`lane_member`)."""
    return f"{PREFIX}lane:{member}"


def lane_lock(member: str) -> str:
    return f"{PREFIX}lanelock:{member}"


def lane_member(destination: str, conversation: str) -> str:
    """A lane's name: its destination letter (a: AwalChat, h: HelpWave), then the conversation."""
    return f"{destination}:{conversation}"


def conversation_log(conversation: str) -> str:
    return f"{PREFIX}decisions:conv:{conversation}"


def rate(destination: str) -> str:
    return RATE_PREFIX + destination


def caps(kind: str, conversation: str) -> str:
    return f"{PREFIX}caps:{kind}:{conversation}"


def worker_heartbeat(host: str, pid: int) -> str:
    return f"{WORKER_PREFIX}{host}:{pid}"


def dlq_audit(letter_id: str) -> str:
    return DLQ_AUDIT_PREFIX + letter_id


@dataclass(frozen=True)
class KeySpec:
    """One kind of key: `prefix` (the whole name when `exact`), and how it stays small."""

    prefix: str
    type: str
    owner: str
    expires: bool
    bound: str
    exact: bool = False

    def matches(self, key: str) -> bool:
        return key == self.prefix if self.exact else key.startswith(self.prefix)


KEYS: Final = (
    KeySpec(f"{PREFIX}seen:", "string", "receiver", True, "SEEN_TTL: 24 h"),
    KeySpec(
        f"{PREFIX}delivery:",
        "hash",
        "receiver, worker",
        True,
        "STATE_RETENTION; QUIET_RECORD_TTL once an event of no conversation is decided",
    ),
    KeySpec(f"{PREFIX}inbox:", "list", "receiver, worker", True, "STATE_RETENTION after a push"),
    KeySpec(f"{PREFIX}state:", "string", "worker", True, "STATE_RETENTION after an event"),
    KeySpec(f"{PREFIX}dry:state:", "string", "worker", True, "STATE_RETENTION after an event"),
    KeySpec(f"{PREFIX}shadow:state:", "string", "worker", True, "STATE_RETENTION after an event"),
    KeySpec(
        f"{PREFIX}dry:shadow:state:", "string", "worker", True, "STATE_RETENTION after an event"
    ),
    KeySpec(
        f"{PREFIX}shadow:hour:",
        "hash",
        "worker",
        True,
        "SHADOW_REPORT_RETENTION after its hour; counters and examples per action kind",
    ),
    KeySpec(f"{PREFIX}lock:", "string", "worker", True, "the lock TTL, renewed while held"),
    KeySpec(
        f"{PREFIX}decisions:conv:",
        "list",
        "worker",
        True,
        f"{DECISION_LOG_CONV_LIMIT} ids; STATE_RETENTION after an event",
    ),
    KeySpec(DECISIONS, "stream", "worker", False, f"~{DECISION_LOG_LIMIT} entries", exact=True),
    KeySpec(LEGACY_DECISIONS, "list", "worker", False, "converted at start", exact=True),
    KeySpec(PARKED, "zset", "worker", False, "one member per waiting conversation", exact=True),
    KeySpec(ACTIVE, "zset", "worker", False, "one member per draining conversation", exact=True),
    KeySpec(READY, "list", "receiver, worker", False, "the backlog not yet taken", exact=True),
    KeySpec(WAKES, "string", "receiver, worker", True, "WAKES_TTL: 30 s", exact=True),
    KeySpec(f"{PREFIX}lane:", "list", "worker", True, "STATE_RETENTION after a push"),
    KeySpec(f"{PREFIX}lanelock:", "string", "worker", True, "the lock TTL, renewed while held"),
    KeySpec(READY_LANES, "list", "worker", False, "one member per ready lane", exact=True),
    KeySpec(PARKED_LANES, "zset", "worker", False, "one member per waiting lane", exact=True),
    KeySpec(ACTIVE_LANES, "zset", "worker", False, "one member per draining lane", exact=True),
    KeySpec(TIMERS, "zset", "worker", False, "one member per pending wait", exact=True),
    KeySpec(RATE_PREFIX, "hash", "worker", True, "RATE_TTL: 2 days after the last call"),
    KeySpec(WORKER_PREFIX, "string", "worker", True, "WORKER_HEARTBEAT_TTL: 30 s"),
    KeySpec(DLQ_AUDIT_PREFIX, "string", "console", True, "DLQ_RETENTION after the last"),
    KeySpec(f"{PREFIX}caps:", "zset", "worker", True, "its cap; one window after the last"),
    KeySpec(DLQ, "hash", "worker", False, "DLQ_MAX letters, DLQ_RETENTION", exact=True),
    KeySpec(DLQ_INDEX, "zset", "worker", False, "DLQ_MAX letters, DLQ_RETENTION", exact=True),
    KeySpec(UPGRADED, "string", "worker", True, "UPGRADE_CHECK_TTL: 24 h", exact=True),
    KeySpec(RULES, "hash", "every process", False, "one ruleset", exact=True),
    KeySpec(
        RULES_HISTORY,
        "hash",
        "every process",
        False,
        f"RULES_HISTORY_LIMIT ({RULES_HISTORY_LIMIT}) rulesets",
        exact=True,
    ),
    KeySpec(
        RULES_HISTORY_ORDER,
        "zset",
        "every process",
        False,
        f"RULES_HISTORY_LIMIT ({RULES_HISTORY_LIMIT}) versions",
        exact=True,
    ),
    # kombu's Redis transport (the Celery broker): bounded by the messages in flight.
    KeySpec(CELERY_QUEUE, "list", "broker", False, "messages waiting", exact=True),
    KeySpec("unacked", "hash", "broker", False, "messages being worked on", exact=True),
    KeySpec("unacked_index", "zset", "broker", False, "messages being worked on", exact=True),
    KeySpec("unacked_mutex", "string", "broker", True, "the restore sweep's lock", exact=True),
    KeySpec("_kombu.binding", "set", "broker", False, "one member per queue binding"),
)


def spec_for(key: str) -> KeySpec | None:
    """The spec a key falls under (the longest matching prefix), or None for a stranger."""
    best: KeySpec | None = None
    for spec in KEYS:
        if spec.matches(key) and (best is None or len(spec.prefix) > len(best.prefix)):
            best = spec
    return best
