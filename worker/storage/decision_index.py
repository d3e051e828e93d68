"""The global decision log `tw:decisions`: a Redis stream of the newest decisions.

Each entry is written with its decision (`ConversationStore.store_decision`, XADD MAXLEN ~
DECISION_LOG_LIMIT) and holds `d` (delivery id), `c` (conversation, "" for none), `e`
(event name) and `r` (matched rules, comma-separated). Its stream id (`ms-seq`) is the time
of the decision.

Pages are read newest first from a cursor, an entry id (exclusive): new decisions are added
after the newest entry, never in between, so a cursor page stays the same while they
arrive. A search by event or rule reads at most `window` entries per page and says where it
stopped; nothing here reads the whole log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from worker.storage import keys

CHUNK = 500


@dataclass(frozen=True)
class LogEntry:
    """One decision as the log lists it."""

    id: str
    delivery_id: str
    conversation: str
    event: str
    rules: tuple[str, ...]

    @property
    def decided_at(self) -> float:
        """Unix time of the decision (from the stream id)."""
        return int(self.id.split("-", 1)[0]) / 1000


@dataclass(frozen=True)
class SearchPage:
    """Matching entries, how many entries were read, and where the next page starts
    (None: the log's oldest entry was reached)."""

    entries: list[LogEntry]
    scanned: int
    next_cursor: str | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entries(raw: Any) -> list[LogEntry]:
    """Entries from an XRANGE/XREVRANGE answer."""
    entries = []
    for entry_id, fields in raw or ():
        f = {_text(k): _text(v) for k, v in fields.items()}
        rules = f.get("r", "")
        entries.append(
            LogEntry(
                id=_text(entry_id),
                delivery_id=f.get("d", ""),
                conversation=f.get("c", ""),
                event=f.get("e", ""),
                rules=tuple(rules.split(",")) if rules else (),
            )
        )
    return entries


def _is_stream(client: redis.Redis) -> bool:
    return _text(client.type(keys.DECISIONS)) in ("stream", "none")


def page(client: redis.Redis, *, before: str | None, limit: int) -> list[LogEntry]:
    """Up to `limit` entries, newest first, older than the entry id `before` (None: from
    the newest)."""
    if not _is_stream(client):
        return []
    top = f"({before}" if before else "+"
    return parse_entries(client.xrevrange(keys.DECISIONS, max=top, min="-", count=limit))


def newer(client: redis.Redis, *, after: str, limit: int) -> list[LogEntry]:
    """Up to `limit` entries after the entry id `after`, oldest first (the live tail)."""
    if not _is_stream(client):
        return []
    return parse_entries(client.xrange(keys.DECISIONS, min=f"({after}", max="+", count=limit))


def newest_id(client: redis.Redis) -> str:
    """The newest entry's id, or "0-0" for an empty log."""
    found = page(client, before=None, limit=1)
    return found[0].id if found else "0-0"


def search(
    client: redis.Redis,
    *,
    before: str | None,
    limit: int,
    window: int,
    matches: Callable[[LogEntry], bool],
) -> SearchPage:
    """Up to `limit` matching entries, newest first from `before`, reading at most `window`
    entries."""
    found: list[LogEntry] = []
    scanned = 0
    cursor = before
    while scanned < window:
        chunk = page(client, before=cursor, limit=min(CHUNK, window - scanned))
        if not chunk:
            return SearchPage(found, scanned, None)
        for entry in chunk:
            scanned += 1
            cursor = entry.id
            if matches(entry):
                found.append(entry)
                if len(found) == limit:
                    return SearchPage(found, scanned, cursor)
    return SearchPage(found, scanned, cursor)


def newest_ids(client: redis.Redis, limit: int) -> list[str]:
    """The newest `limit` decided delivery ids, newest first."""
    return [entry.delivery_id for entry in page(client, before=None, limit=limit)]
