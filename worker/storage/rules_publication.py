"""The deployment's newest accepted ruleset, published in Redis (`tw:rules`, one hash:
`seq`, `version`, `files`). `worker.live_rules` says how processes order and follow it.

    publish(version, texts, seen)   newer than what is stored and than what the publisher
                                    has seen (`seen`), unless already current; returns seq
    restore(version, texts, seq)    put back a publication Redis lost, unless one as new is
                                    stored; True when it wrote
    read_publication(client)        what is published, or None
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from worker.storage import keys

# KEYS[1] the rules hash; ARGV: version, files JSON, the publisher's seen seq.
# Newer than what is stored and than what the publisher has seen, unless already current.
_PUBLISH = """
local stored = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local seen = tonumber(ARGV[3])
if stored >= seen and redis.call('HGET', KEYS[1], 'version') == ARGV[1] then
  return stored
end
local seq = math.max(stored, seen) + 1
redis.call('HSET', KEYS[1], 'seq', seq, 'version', ARGV[1], 'files', ARGV[2])
return seq
"""

# KEYS[1] the rules hash; ARGV: version, files JSON, its seq. Put back a publication Redis
# lost, unless one as new is stored. Returns 1 when it wrote.
_RESTORE = """
if tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'version', ARGV[1], 'files', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Publication:
    """The deployment's newest accepted version as stored in `tw:rules`."""

    seq: int
    version: str
    files: Mapping[str, str]


def read_publication(client: redis.Redis) -> Publication | None:
    """The published version, or None when there is none (or it is not one we can read).

    Raises redis.RedisError when Redis cannot be reached.
    """
    seq, version, files = client.hmget(keys.RULES, ["seq", "version", "files"])
    if seq is None or version is None or files is None:
        return None
    try:
        texts = json.loads(files)
        number = int(seq)
    except ValueError:
        return None
    if not isinstance(texts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in texts.items()
    ):
        return None
    return Publication(number, _text(version), texts)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class PublicationStore:
    """The two scripts that write `tw:rules` (each atomic)."""

    def __init__(self, client: redis.Redis) -> None:
        self._publish = client.register_script(_PUBLISH)
        self._restore = client.register_script(_RESTORE)

    def publish(self, version: str, texts: Mapping[str, str], seen: int) -> int:
        return int(self._publish(keys=[keys.RULES], args=[version, json.dumps(texts), seen]))

    def restore(self, version: str, texts: Mapping[str, str], seq: int) -> bool:
        return bool(self._restore(keys=[keys.RULES], args=[version, json.dumps(texts), seq]))
