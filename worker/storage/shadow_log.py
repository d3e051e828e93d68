"""What shadow rules imagine, stored: their views, their verdicts, the report's counters.

    tw:shadow:state:{tag}:{conv}   string  one shadow rule's view of a conversation
                                           (tw:dry:shadow:state:...: a dry run's), kept like
                                           the live state (STATE_RETENTION after an event)
    tw:delivery:{id} `shadow`      field   the verdicts on the item (JSON list); written once
    tw:shadow:hour:{tag}:{hour}    hash    per shadow rule and hour: `rule` (its name),
                                           counters `decided`, `matched`, `acted`,
                                           `would:{kind}`, `disagree:{label}`, and up to
                                           SHADOW_EXAMPLES `ex:{label}:{n}` = "conv delivery";
                                           SHADOW_REPORT_RETENTION after the hour

`record` writes all of it in one script, guarded by the delivery's `shadow` field: an item
redelivered after a crash is counted once. Only a ruleset with shadow rules calls it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import redis

from worker.engine.model import ConversationState
from worker.engine.shadow import ShadowVerdict
from worker.storage import keys
from worker.storage.keys import View
from worker.storage.records import compact
from worker.storage.timers import rule_tag

HOUR = 3600

# KEYS[1] the delivery; per rule r: KEYS[2r] its view ('' for no conversation), KEYS[2r+1]
# its hour hash. ARGV: verdicts JSON, hour TTL, example, examples kept, rule count; per
# rule: state JSON, state TTL, rule name, n counters, counters..., m labels, labels...
_RECORD = """
if redis.call('HSETNX', KEYS[1], 'shadow', ARGV[1]) == 0 then return 0 end
local ttl, example, keep = ARGV[2], ARGV[3], tonumber(ARGV[4])
local a = 6
for r = 1, tonumber(ARGV[5]) do
  local view, hour = KEYS[2 * r], KEYS[2 * r + 1]
  if view ~= '' then redis.call('SET', view, ARGV[a], 'EX', ARGV[a + 1]) end
  redis.call('HSET', hour, 'rule', ARGV[a + 2])
  local n = tonumber(ARGV[a + 3])
  for i = a + 4, a + 3 + n do redis.call('HINCRBY', hour, ARGV[i], 1) end
  a = a + 4 + n
  local m = tonumber(ARGV[a])
  for i = a + 1, a + m do
    local count = redis.call('HINCRBY', hour, 'disagree:' .. ARGV[i], 1)
    if count <= keep then redis.call('HSET', hour, 'ex:' .. ARGV[i] .. ':' .. count, example) end
  end
  a = a + 1 + m
  redis.call('EXPIRE', hour, ttl)
end
return 1
"""


def counters(verdict: ShadowVerdict) -> list[str]:
    """The hour-hash counters one verdict adds to."""
    names = ["decided"]
    if verdict.status == "matched":
        names.append("matched")
    if verdict.acted:
        names.append("acted")
    names.extend(f"would:{a.kind}" for a in verdict.actions if a.skip_reason is None)
    return names


class ShadowLog:
    """Reads the shadow views and writes the verdicts (see the module docstring)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client
        self._record = client.register_script(_RECORD)

    def views(
        self, conversation: str, rules: Sequence[str], view: View
    ) -> dict[str, ConversationState]:
        """Each shadow rule's stored view of the conversation (absent ones left out)."""
        if not rules:
            return {}
        names = [keys.shadow_state(rule_tag(rule), conversation, view) for rule in rules]
        raws = cast(list[bytes | None], self._redis.mget(names))
        return {
            rule: ConversationState.from_json(json.loads(raw))
            for rule, raw in zip(rules, raws, strict=True)
            if raw is not None
        }

    def record(
        self,
        delivery_id: str,
        conversation: str | None,
        view: View,
        verdicts: Iterable[tuple[ShadowVerdict, int]],
        *,
        now: float,
    ) -> bool:
        """Store the verdicts on the item (each with its view's TTL; `conversation` None:
        no view is written), once; False when they were stored before."""
        hour = int(now // HOUR)
        names = [keys.delivery(delivery_id)]
        args: list[Any] = []
        stored = []
        for verdict, ttl in verdicts:
            tag = rule_tag(verdict.rule)
            view_key = "" if conversation is None else keys.shadow_state(tag, conversation, view)
            names += [view_key, keys.shadow_hour(tag, hour)]
            adds = counters(verdict)
            args += [compact(verdict.state_after.to_json()), ttl, verdict.rule]
            args += [len(adds), *adds, len(verdict.differences), *verdict.differences]
            stored.append(verdict.to_json())
        ttl = (hour + 1) * HOUR - int(now) + keys.SHADOW_REPORT_RETENTION
        example = f"{conversation or '-'} {delivery_id}"
        head: list[Any] = [compact(stored), ttl, example, keys.SHADOW_EXAMPLES, len(stored)]
        return bool(self._record(keys=names, args=[*head, *args]))

    def hours(
        self, rules: Sequence[str], first: int, last: int
    ) -> dict[str, list[Mapping[str, str]]]:
        """Each rule's hour hashes from hour `first` to `last` (Unix time // 3600)."""
        pipe = self._redis.pipeline(transaction=False)
        for rule in rules:
            tag = rule_tag(rule)
            for hour in range(first, last + 1):
                pipe.hgetall(keys.shadow_hour(tag, hour))
        raws = cast(list[dict[bytes, bytes]], pipe.execute())
        per_rule = last - first + 1
        found: dict[str, list[Mapping[str, str]]] = {}
        for index, rule in enumerate(rules):
            chunk = raws[index * per_rule : (index + 1) * per_rule]
            found[rule] = [
                {k.decode(): v.decode() for k, v in fields.items()}
                for fields in chunk
                if fields and fields.get(b"rule", b"").decode() == rule
            ]
        return found
