"""The deployment's newest accepted ruleset, published in Redis (`tw:rules`, one hash:
`seq`, `version`, `files`). `worker.live_rules` says how processes order and follow it.

    publish(version, texts, seen)   newer than what is stored and than what the publisher
                                    has seen (`seen`), unless already current; returns seq
    restore(version, texts, seq)    put back a publication Redis lost, unless one as new is
                                    stored; True when it wrote
    read_publication(client)        what is published, or None
    ruleset_files(client, version)  the files of an accepted version, if still kept

Every version either script writes, or finds already current, is also kept by version in
`tw:rules:history` (its files) and `tw:rules:history:order` (its seq), the newest
RULES_HISTORY_LIMIT of them: decisions stored compact are explained on read with the
ruleset they were decided with (`worker.storage.explanations`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from worker.storage import keys

# KEYS[2], KEYS[3]: the history hash and its order; ARGV[1], ARGV[2]: version, files JSON;
# ARGV[4]: the limit. Keep the version (by the seq `keep` is given), the newest only.
_KEEP = """
local function keep(seq)
  if redis.call('ZSCORE', KEYS[3], ARGV[1]) == false then
    redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  end
  redis.call('ZADD', KEYS[3], 'GT', seq, ARGV[1])
  local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
  if extra > 0 then
    local old = redis.call('ZRANGE', KEYS[3], 0, extra - 1)
    redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1)
    redis.call('HDEL', KEYS[2], unpack(old))
  end
end
"""

# KEYS[1] the rules hash; ARGV: version, files JSON, the publisher's seen seq, the limit.
# Newer than what is stored and than what the publisher has seen, unless already current.
_PUBLISH = (
    _KEEP
    + """
local stored = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
local seen = tonumber(ARGV[3])
if stored >= seen and redis.call('HGET', KEYS[1], 'version') == ARGV[1] then
  keep(stored)
  return stored
end
local seq = math.max(stored, seen) + 1
redis.call('HSET', KEYS[1], 'seq', seq, 'version', ARGV[1], 'files', ARGV[2])
keep(seq)
return seq
"""
)

# KEYS[1] the rules hash; ARGV: version, files JSON, its seq, the limit. Put back a
# publication Redis lost, unless one as new is stored. Returns 1 when it wrote.
_RESTORE = (
    _KEEP
    + """
if tonumber(redis.call('HGET', KEYS[1], 'seq') or '0') >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], 'seq', ARGV[3], 'version', ARGV[1], 'files', ARGV[2])
keep(tonumber(ARGV[3]))
return 1
"""
)


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
    texts = files_of(files)
    if texts is None or not _text(seq).isdigit():
        return None
    return Publication(int(seq), _text(version), texts)


def ruleset_files(client: redis.Redis, version: str) -> Mapping[str, str] | None:
    """The files of an accepted `version`, if it is still kept (or is the one published).

    Raises redis.RedisError when Redis cannot be reached.
    """
    kept = client.hget(keys.RULES_HISTORY, version)
    if kept is None:
        current = read_publication(client)
        return current.files if current is not None and current.version == version else None
    return files_of(kept)


def files_of(text: bytes | str) -> Mapping[str, str] | None:
    """The rule files of a stored JSON text, or None when it is not one."""
    try:
        files = json.loads(text)
    except ValueError:
        return None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        return None
    return files


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class PublicationStore:
    """The two scripts that write `tw:rules` (each atomic)."""

    def __init__(self, client: redis.Redis) -> None:
        self._publish = client.register_script(_PUBLISH)
        self._restore = client.register_script(_RESTORE)

    def publish(self, version: str, texts: Mapping[str, str], seen: int) -> int:
        return int(
            self._publish(
                keys=_KEYS, args=[version, json.dumps(texts), seen, keys.RULES_HISTORY_LIMIT]
            )
        )

    def restore(self, version: str, texts: Mapping[str, str], seq: int) -> bool:
        return bool(
            self._restore(
                keys=_KEYS, args=[version, json.dumps(texts), seq, keys.RULES_HISTORY_LIMIT]
            )
        )


_KEYS = [keys.RULES, keys.RULES_HISTORY, keys.RULES_HISTORY_ORDER]
