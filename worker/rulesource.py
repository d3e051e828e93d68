"""The live ruleset of a process: loaded once, re-checked on file changes, swapped atomically.

A changed rule file is validated as a whole; a refused version leaves the last good one in
place (logged, counted, and reported by `error` for /readyz).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from worker.engine import Ruleset, load_ruleset
from worker.errors import RulesError

log = logging.getLogger(__name__)


def fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of the rule files: cheap to compare."""
    files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
    result = []
    for file in files:
        try:
            stat = file.stat()
        except FileNotFoundError:
            continue
        result.append((file.name, stat.st_size, stat.st_mtime_ns))
    return tuple(result)


class RuleSource:
    """Holds the current ruleset of `path`; `current()` is cheap and thread-safe."""

    def __init__(
        self,
        path: Path,
        *,
        check_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[RulesError], None] | None = None,
    ) -> None:
        self.path = path
        self._check_every = check_every
        self._clock = clock
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._fingerprint = fingerprint(path)
        self._ruleset = load_ruleset(path)  # a bad file at start refuses to start
        self._next_check = clock() + check_every
        self.error: str | None = None

    def current(self) -> Ruleset:
        """The newest accepted ruleset, after a cheap check for changed files."""
        if self._clock() >= self._next_check:
            self.refresh()
        return self._ruleset

    def refresh(self) -> bool:
        """Reload if the files changed; True when a new version was accepted."""
        with self._lock:
            self._next_check = self._clock() + self._check_every
            seen = fingerprint(self.path)
            if seen == self._fingerprint:
                return False
            self._fingerprint = seen
            try:
                ruleset = load_ruleset(self.path)
            except RulesError as exc:
                self.error = str(exc)
                log.error(
                    "rule change refused; keeping version %s",
                    self._ruleset.version,
                    extra={"problems": [str(p) for p in exc.problems]},
                )
                if self._on_refused is not None:
                    self._on_refused(exc)
                return False
            if ruleset.version == self._ruleset.version:
                self.error = None
                return False
            log.info(
                "rules reloaded",
                extra={"old_version": self._ruleset.version, "version": ruleset.version},
            )
            self._ruleset = ruleset
            self.error = None
            return True
