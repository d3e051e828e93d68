"""The live ruleset of a process: loaded at start, re-checked on file changes, swapped whole.

A changed rule file is validated as a whole; a refused version is logged, counted and kept in
`error` (for /readyz) while the last good version keeps working.

"Last good" is one version for the whole deployment. Every accepted version is published in
Redis (`tw:rules`: a sequence number, the version and the file texts). A process that sees a
newer published version than its own adopts it, so when a change is refused, every process
keeps the newest version any process accepted, and none falls back to an older one. A
process that starts publishes the files it starts with: starting is deploying.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import redis

from worker.engine import Ruleset, load_ruleset_from_texts
from worker.engine.loader import read_rule_texts
from worker.errors import RulesError

log = logging.getLogger(__name__)

RULES_KEY: Final = "tw:rules"

# KEYS[1] the rules hash; ARGV: version, files JSON. Publish unless that version is current.
_PUBLISH = """
if redis.call('HGET', KEYS[1], 'version') == ARGV[1] then
  return tonumber(redis.call('HGET', KEYS[1], 'seq'))
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'files', ARGV[2])
return seq
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def fingerprint(path: Path) -> tuple[tuple[str, int, int, int], ...]:
    """Names, sizes, modification times and inodes of the rule files: cheap to compare.

    The inode catches a file renamed over another within the same mtime tick.
    """
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    result = []
    for file in files:
        try:
            stat = file.stat()
        except FileNotFoundError:
            continue
        result.append((file.name, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(result)


class RuleSource:
    """Holds the current ruleset; `current()` is cheap and thread-safe (see module doc)."""

    def __init__(
        self,
        path: Path,
        *,
        client: redis.Redis | None = None,
        check_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[RulesError], None] | None = None,
        on_swapped: Callable[[Ruleset], None] | None = None,
    ) -> None:
        self.path = path
        self._redis = client
        self._publish = client.register_script(_PUBLISH) if client is not None else None
        self._check_every = check_every
        self._clock = clock
        self._on_refused = on_refused
        self._on_swapped = on_swapped
        self._lock = threading.Lock()
        self._fingerprint = fingerprint(path)
        texts = read_rule_texts(path)
        self._ruleset = load_ruleset_from_texts(texts)  # a bad file at start refuses to start
        self._seq = 0
        self._seq = self._share(self._ruleset, texts)
        self._next_check = clock() + check_every
        self.error: str | None = None

    @property
    def version(self) -> str:
        return self._ruleset.version

    def current(self) -> Ruleset:
        """The ruleset to decide with, after a cheap check for changes (at most every second)."""
        if self._clock() >= self._next_check:
            self.refresh()
        return self._ruleset

    def refresh(self) -> bool:
        """Look for changed files and newer published versions; True when the ruleset changed."""
        with self._lock:
            self._next_check = self._clock() + self._check_every
            seen = fingerprint(self.path)
            if seen != self._fingerprint:
                self._fingerprint = seen
                if self._reload_files():
                    return True
            return self._adopt_published()

    def _reload_files(self) -> bool:
        try:
            texts = read_rule_texts(self.path)
            ruleset = load_ruleset_from_texts(texts)
        except RulesError as exc:
            self.error = f"rule change refused, still running {self._ruleset.version}: {exc}"
            log.error(
                "rule change refused; keeping the last good version",
                extra={
                    "version": self._ruleset.version,
                    "problems": [str(p) for p in exc.problems],
                },
            )
            if self._on_refused is not None:
                self._on_refused(exc)
            return False
        self.error = None
        self._seq = self._share(ruleset, texts)
        return self._swap(ruleset)

    def _share(self, ruleset: Ruleset, texts: dict[str, str]) -> int:
        if self._publish is None:
            return 0
        try:
            return int(self._publish(keys=[RULES_KEY], args=[ruleset.version, json.dumps(texts)]))
        except redis.RedisError:
            log.warning("could not publish the rules version", exc_info=True)
            return self._seq

    def _adopt_published(self) -> bool:
        if self._redis is None:
            return False
        try:
            seq, version, files = self._redis.hmget(RULES_KEY, ["seq", "version", "files"])
        except redis.RedisError:
            return False
        if seq is None or int(seq) <= self._seq or files is None:
            return False
        self._seq = int(seq)
        if _text(version) == self._ruleset.version:
            return False
        try:
            ruleset = load_ruleset_from_texts(json.loads(files))
        except (RulesError, ValueError):
            log.exception("the published rules version does not load; ignoring it")
            return False
        return self._swap(ruleset)

    def _swap(self, ruleset: Ruleset) -> bool:
        if ruleset.version == self._ruleset.version:
            return False
        log.info(
            "rules reloaded",
            extra={"old_version": self._ruleset.version, "version": ruleset.version},
        )
        self._ruleset = ruleset
        if self._on_swapped is not None:
            self._on_swapped(ruleset)
        return True
