"""The live ruleset of a process: loaded at start, re-checked on file changes, swapped whole.

A changed rule file is validated as a whole, then checked against what this process can run
(`check_runnable`: e.g. a credential the new rules need is unset). A refused version is
logged (one line with every `file:line:column` problem), counted (`on_refused`) and shown in
`error` (for /readyz) while the last good version keeps working.

"Last good" is one version for the whole deployment. Every accepted version is published in
Redis (`tw:rules`, one hash: `seq`, `version`, `files`). `seq` orders the publications, and
the processes keep that order even when Redis loses its data (restarted empty, or from an
older snapshot):

- each process remembers the newest publication it has seen (`seq` and version); one with a
  higher `seq`, or another version at the same `seq`, is newer: the process adopts it;
- a process publishes an accepted change at `max(stored seq, its seen seq) + 1`: newer than
  anything stored and anything it knew, so it spreads even into an emptied Redis;
- a process that finds nothing published, or an older publication than it has seen, while
  it runs the newest version it has seen, stores that version again at its `seq` (unless
  something as new is already there): processes that missed it catch up, and processes
  starting with broken files can adopt it. A process that is behind never does this, so no
  process falls back to an older version;
- an accepted change that could not be published (Redis unreachable) is published as soon as
  Redis answers, before anything published is considered.

A process that starts publishes the files it starts with: starting is deploying. A process
whose files are refused at start runs the published version instead (and reports the
refusal); with none it can run, it refuses to start. A process never adopts a published
version it cannot run: it keeps its version and reports the refusal, once per publication.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import redis

from worker.engine import Ruleset, load_ruleset_from_texts
from worker.engine.loader import read_rule_texts
from worker.errors import ConfigError, RulesError
from worker.storage.rules_publication import Publication, PublicationStore, read_publication

log = logging.getLogger(__name__)

REFRESH_INTERVAL: Final = 1.0  # seconds between checks for changed files and publications


Refusal = RulesError | ConfigError
"""Why a version is refused: it does not load, or this process cannot run it."""


def describe(refusal: Refusal) -> str:
    """One line: every problem of a refused ruleset (`file:line:column: ...; ...`), or the
    message of a configuration refusal (`HELPWAVE_API_KEY is not set: ...`)."""
    if isinstance(refusal, RulesError):
        return "; ".join(str(problem) for problem in refusal.problems)
    return str(refusal)


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
    """Holds the current ruleset; `current()` is cheap and thread-safe (see module doc).

    `check_runnable(ruleset)` raises ConfigError when this process cannot run a ruleset; it
    is applied to every version before it is used. Construction raises the files' RulesError
    or ConfigError when they are refused and no published version can be run instead.
    """

    def __init__(
        self,
        path: Path,
        *,
        client: redis.Redis | None = None,
        check_runnable: Callable[[Ruleset], None] | None = None,
        check_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_refused: Callable[[Refusal], None] | None = None,
        on_swapped: Callable[[Ruleset], None] | None = None,
    ) -> None:
        self.path = path
        self._redis = client
        self._publications = PublicationStore(client) if client is not None else None
        self._check_runnable = check_runnable
        self._check_every = check_every
        self._clock = clock
        self._on_refused = on_refused
        self._on_swapped = on_swapped
        self._lock = threading.Lock()
        self._file_refusal: str | None = None  # why the files were last refused
        self._published_refusal: tuple[str, str] | None = None  # (version, why) not adopted
        self._seen = 0  # the newest publication seen: its seq ...
        self._seen_version: str | None = None  # ... and its version
        self._unpublished = False  # an accepted version waits for Redis to answer
        self._fingerprint = fingerprint(path)
        try:
            texts = read_rule_texts(path)
            ruleset = self._load(texts)
        except (RulesError, ConfigError) as exc:
            publication, ruleset = self._publication_instead(exc)
            self._ruleset, self._texts = ruleset, publication.files
            self._seen, self._seen_version = publication.seq, publication.version
        else:
            self._ruleset, self._texts = ruleset, texts
            self._publish()  # starting is deploying
        self._next_check = clock() + check_every

    @property
    def version(self) -> str:
        return self._ruleset.version

    @property
    def error(self) -> str | None:
        """The refused change still in force (files, or a published version), for /readyz;
        None when the files are in use and every publication was adopted."""
        parts = []
        if self._file_refusal is not None:
            parts.append(f"rule change refused, still running {self.version}: {self._file_refusal}")
        if self._published_refusal is not None:
            version, why = self._published_refusal
            parts.append(
                f"version {version} published by another process refused, "
                f"still running {self.version}: {why}"
            )
        return "\n".join(parts) or None

    def current(self) -> Ruleset:
        """The ruleset to decide with, after a cheap check for changes (at most every second)."""
        if self._clock() >= self._next_check:
            self.refresh()
        return self._ruleset

    def refresh(self) -> bool:
        """Look for changed files and newer published versions; True when the ruleset changed."""
        with self._lock:
            self._next_check = self._clock() + self._check_every
            changed = False
            seen = fingerprint(self.path)
            if seen != self._fingerprint:
                self._fingerprint = seen
                changed = self._reload_files()
            if self._unpublished:
                self._publish()
            return self._follow_published() or changed

    def _load(self, texts: Mapping[str, str]) -> Ruleset:
        ruleset = load_ruleset_from_texts(texts)
        if self._check_runnable is not None:
            self._check_runnable(ruleset)
        return ruleset

    def _refused(self, exc: Refusal) -> None:
        if self._on_refused is not None:
            self._on_refused(exc)

    def _publication_instead(self, refused: Refusal) -> tuple[Publication, Ruleset]:
        """The published version and its ruleset, to run instead of the refused files (the
        refusal is logged, counted and kept in `error`); raises `refused` when there is none
        this process can run."""
        publication = None
        if self._redis is not None:
            try:
                publication = read_publication(self._redis)
            except redis.RedisError:
                log.warning("could not read the published rules version", exc_info=True)
        if publication is None:
            raise refused
        try:
            ruleset = self._load(publication.files)
        except (RulesError, ConfigError) as exc:
            log.error(
                "the published rules version %s cannot run here either: %s",
                publication.version,
                describe(exc),
            )
            raise refused from None
        self._file_refusal = describe(refused)
        log.error(
            "rule files refused at start; running the deployment's last good version %s: %s",
            ruleset.version,
            self._file_refusal,
            extra={"version": ruleset.version},
        )
        self._refused(refused)
        return publication, ruleset

    def _reload_files(self) -> bool:
        try:
            texts = read_rule_texts(self.path)
            ruleset = self._load(texts)
        except (RulesError, ConfigError) as exc:
            self._file_refusal = describe(exc)
            log.error(
                "rule change refused, still running %s: %s",
                self._ruleset.version,
                self._file_refusal,
                extra={"version": self._ruleset.version},
            )
            self._refused(exc)
            return False
        self._file_refusal = None
        changed = self._swap(ruleset, texts)
        self._publish()
        return changed

    def _publish(self) -> None:
        """Publish the current version as the deployment's newest (retried while Redis fails)."""
        if self._publications is None:
            return
        version = self._ruleset.version
        try:
            seq = self._publications.publish(version, self._texts, self._seen)
        except redis.RedisError:
            if not self._unpublished:  # once per outage, not every second
                log.warning("could not publish rules version %s; will retry", version)
            self._unpublished = True
            return
        self._unpublished = False
        self._seen, self._seen_version = int(seq), version

    def _restore(self) -> None:
        """Store again the newest publication seen, if this process runs it (never older)."""
        if self._publications is None or self._seen_version != self._ruleset.version:
            return
        try:
            wrote = self._publications.restore(self._ruleset.version, self._texts, self._seen)
        except redis.RedisError:
            return
        if wrote:
            log.warning(
                "Redis had lost the published rules version; published %s again",
                self._ruleset.version,
                extra={"version": self._ruleset.version, "seq": self._seen},
            )

    def _follow_published(self) -> bool:
        if self._redis is None or self._unpublished:
            return False
        try:
            publication = read_publication(self._redis)
        except redis.RedisError:
            return False
        if publication is None or publication.seq < self._seen:
            self._restore()
            return False
        if publication.seq == self._seen and publication.version == self._seen_version:
            return False
        self._seen, self._seen_version = publication.seq, publication.version
        if publication.version == self._ruleset.version:
            self._published_refusal = None
            return False
        try:
            ruleset = self._load(publication.files)
        except (RulesError, ConfigError) as exc:
            self._published_refusal = (publication.version, describe(exc))
            log.error(
                "version %s published by another process refused, still running %s: %s",
                publication.version,
                self._ruleset.version,
                self._published_refusal[1],
                extra={"version": self._ruleset.version},
            )
            self._refused(exc)
            return False
        self._published_refusal = None
        return self._swap(ruleset, publication.files)

    def _swap(self, ruleset: Ruleset, texts: Mapping[str, str]) -> bool:
        self._texts = texts
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
