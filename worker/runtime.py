"""Everything a worker process needs, built once from Settings.

`configure(settings)` is called by the entry point (`create_celery`); `current()` builds the
Runtime lazily in the process that runs tasks. Background threads (the parked releaser and
the rule reloader) run in the worker's main process: `start_background` / `stop_background`.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import httpx
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from worker.actions import ActionExecutor
from worker.delivery.dlq import DeadLetterQueue, DroppedLetter
from worker.delivery.gate import RateGate
from worker.delivery.lease import LeaseKeeper
from worker.delivery.parking import ParkedReleaser, ParkingLot
from worker.delivery.periodic import Periodic
from worker.delivery.ratelimit import (
    RateLimiter,
    destination_for_awalchat,
    destination_for_helpwave,
    parse_rate,
)
from worker.delivery.recovery import Recovery
from worker.delivery.retry import RetryPolicy
from worker.engine import Ruleset, load_ruleset, load_ruleset_from_texts
from worker.errors import ConfigError, RulesError
from worker.helpdesks.awalchat import AwalChatClient
from worker.helpdesks.helpwave import HelpWaveClient
from worker.helpdesks.http import new_http_client
from worker.inbox import CELERY_QUEUE, DRAIN_TASK, celery_message
from worker.processor import ConversationProcessor
from worker.rulesource import Refusal, RuleSource, read_publication
from worker.settings import Settings
from worker.storage.upgrade import expire_legacy_keys
from worker.store import ConversationStore, inbox_key, lock_key
from worker.telemetry import WorkerMetrics

log = logging.getLogger(__name__)

RECOVERY_INTERVAL: Final = 15.0
DLQ_TRIM_INTERVAL: Final = 60.0
RULES_INTERVAL: Final = 1.0
HEARTBEAT_INTERVAL: Final = 5.0
# Touched every few seconds by a live worker: the compose health check reads its age.
HEARTBEAT_FILE: Final = Path(tempfile.gettempdir()) / "ticket-worker.heartbeat"


def drain_message(conversation: str) -> str:
    """The Celery message that drains `conversation`."""
    return celery_message(DRAIN_TASK, [conversation])


def sync_redis(url: str, *, timeout: float = 2.0, retries: int = 1) -> redis.Redis:
    """A Redis client with bounded timeouts and retries: a dead or hung Redis fails fast.

    Each attempt waits up to `timeout` for an answer, and a failed attempt is retried
    `retries` times after a short backoff; no health-check PING runs inside an attempt (it
    would retry on its own). A Redis that accepts connections and never answers costs a
    command about (retries + 1) x timeout: 4 s with the defaults (workers, CLI), 0.5 s with
    `timeout=0.5, retries=0` (the receiver's rules client).
    """
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2),
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.1), retries),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )


def check_credentials(settings: Settings, ruleset: Ruleset) -> None:
    """Raise ConfigError naming the first credential the rules need and that is unset."""
    if settings.dry_run:
        return
    missing = settings.missing_credentials(
        awalchat=ruleset.uses_awalchat, helpwave=ruleset.uses_helpwave
    )
    if missing:
        raise ConfigError(
            f"{missing[0]} is not set: the rules call "
            f"{'AwalChat' if missing[0].startswith('AWALCHAT') else 'HelpWave'} "
            "(set it, or DRY_RUN=true to decide without calling)"
        )


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: dead letters redact them wherever they appear."""
    secrets = [settings.awalchat_hmac_secret, settings.helpwave_api_key, settings.admin_token]
    secrets += list(settings.awalchat_webhook_secrets)
    return [s.get_secret_value() for s in secrets if s is not None]


def preflight(settings: Settings) -> Ruleset:
    """The ruleset a service will run, or the reason it must not start.

    Rule files that load, with the credentials they need set, are checked without touching
    Redis (a typo is named at once, even with Redis down). When they are refused, the
    deployment's published version (rulesource.py) is run instead if this process can run
    it; otherwise the files' RulesError, or ConfigError naming the unset setting, is raised.
    Raises ConfigError naming `REDIS_URL` when it is unset.
    """
    try:
        ruleset = load_ruleset(settings.rules_path)
        check_credentials(settings, ruleset)
    except (RulesError, ConfigError) as refused:
        ruleset = _published_instead(settings, refused)
    settings.require_redis_url()
    return ruleset


def _published_instead(settings: Settings, refused: RulesError | ConfigError) -> Ruleset:
    """The published version's ruleset when this process can run it; else raise `refused`."""
    ruleset = None
    if settings.redis_url:
        client = sync_redis(settings.redis_url)
        try:
            publication = read_publication(client)
            if publication is not None:
                ruleset = load_ruleset_from_texts(publication.files)
                check_credentials(settings, ruleset)
        except (redis.RedisError, RulesError, ConfigError):
            ruleset = None
        finally:
            client.close()
    if ruleset is None:
        raise refused
    return ruleset


def rule_source(
    settings: Settings,
    client: redis.Redis,
    *,
    on_refused: Callable[[Refusal], None] | None = None,
    on_swapped: Callable[[Ruleset], None] | None = None,
) -> RuleSource:
    """The process's RuleSource: every version is checked for the credentials it needs (a
    reload or a publication this process cannot run is refused like a broken file).

    Raises the files' RulesError or ConfigError when they are refused and no published
    version can be run instead.
    """
    return RuleSource(
        settings.rules_path,
        client=client,
        check_runnable=functools.partial(check_credentials, settings),
        on_refused=on_refused,
        on_swapped=on_swapped,
    )


class Runtime:
    """The worker process's long-lived objects (clients, stores, processor)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = sync_redis(settings.require_redis_url())
        self.metrics = WorkerMetrics()
        self.rules = rule_source(
            settings,
            self.redis,
            on_refused=lambda _exc: self.metrics.rules_refused.inc(),
            on_swapped=lambda ruleset: self.metrics.use_rules_version(ruleset.version),
        )
        self.metrics.use_rules_version(self.rules.version)
        self.store = ConversationStore(self.redis, retention=settings.state_retention)
        self.limiter = RateLimiter(self.redis)
        self.parking = ParkingLot(self.redis)
        self.dead_letters = DeadLetterQueue(
            self.redis,
            known_secrets=secret_values(settings),
            max_letters=settings.dlq_max,
            retention=settings.dlq_retention,
            on_drop=self._dropped,
        )
        self.leases = LeaseKeeper(self.store, ttl=settings.conversation_lock_seconds)
        self._stopping = threading.Event()
        self._http: list[httpx.Client] = []
        awalchat, helpwave = self._clients()
        self.processor = ConversationProcessor(
            store=self.store,
            rules=self.rules.current,
            executor=ActionExecutor(
                awalchat=awalchat,
                helpwave=helpwave,
                default_phone_number_id=settings.awalchat_phone_number_id,
            ),
            retry=RetryPolicy(),
            dead_letters=self.dead_letters,
            park=self.parking.park,
            leases=self.leases,
            dry_run=settings.dry_run,
            stopping=self._stopping.is_set,
            metrics=self.metrics,
        )
        self._background: list[ParkedReleaser | Periodic] = []

    def _dropped(self, letter: DroppedLetter) -> None:
        bound = "DLQ_MAX" if letter.reason == "max" else "DLQ_RETENTION"
        log.warning(
            "dead letter dropped: past %s",
            bound,
            extra={
                "dead_letter": letter.id,
                "conversation": letter.conversation,
                "action": letter.kind,
            },
        )
        self.metrics.dead_letters_dropped.labels(reason=letter.reason).inc()

    def _http_client(self, destination: str, rate: str | None) -> httpx.Client:
        """A client whose every request goes through `destination`'s shared budget."""
        self.limiter.configure(destination, parse_rate(rate) if rate else None)
        gate = RateGate(
            self.limiter,
            lambda _request: destination,
            on_wait=lambda d, s: self.metrics.rate_wait.labels(destination=d).inc(s),
            on_throttled=lambda d: self.metrics.throttled.labels(destination=d).inc(),
            on_rate_limited=lambda d: self.metrics.rate_limited.labels(destination=d).inc(),
        )
        client = gate.install(new_http_client(timeout_seconds=self.settings.http_timeout_seconds))
        self._http.append(client)
        return client

    def _clients(self) -> tuple[AwalChatClient | None, HelpWaveClient | None]:
        s = self.settings
        awalchat = helpwave = None
        if s.awalchat_hmac_secret and s.awalchat_client_id and s.awalchat_domain:
            awalchat = AwalChatClient(
                self._http_client(destination_for_awalchat(s.awalchat_domain), s.awalchat_rate),
                base_url=s.awalchat_base_url,
                hmac_secret=s.awalchat_hmac_secret.get_secret_value(),
                client_id=s.awalchat_client_id,
                domain=s.awalchat_domain,
            )
        if s.helpwave_base_url and s.helpwave_api_key:
            helpwave = HelpWaveClient(
                self._http_client(destination_for_helpwave(s.helpwave_base_url), s.helpwave_rate),
                base_url=s.helpwave_base_url,
                api_key=s.helpwave_api_key.get_secret_value(),
            )
        return awalchat, helpwave

    def start_background(self) -> None:
        """Start the parked releaser and the recovery sweep (once per worker process)."""
        if self._background:
            return
        recovery = Recovery(
            self.redis,
            lock_key=lock_key,
            inbox_key=inbox_key,
            parked_key=self.parking.key,
            queue=CELERY_QUEUE,
            build_message=drain_message,
        )
        self._serve_metrics()
        self._background = [
            ParkedReleaser(self.parking, drain_message),
            Periodic("rules", RULES_INTERVAL, self.rules.refresh),
            Periodic("recovery", RECOVERY_INTERVAL, lambda: recovery.sweep(time.time())),
            Periodic("dlq-trim", DLQ_TRIM_INTERVAL, self.dead_letters.trim),
            Periodic("heartbeat", HEARTBEAT_INTERVAL, HEARTBEAT_FILE.touch),
        ]
        for thread in self._background:
            thread.start()
        threading.Thread(target=self._upgrade, name="upgrade", daemon=True).start()

    def _upgrade(self) -> None:
        try:
            expire_legacy_keys(self.redis, retention=self.settings.state_retention)
        except redis.RedisError:
            log.warning("could not check for keys without an expiry", exc_info=True)

    def _serve_metrics(self) -> None:
        port = self.settings.worker_metrics_port
        if not port:
            return
        self.metrics.watch(
            self.redis,
            queue=CELERY_QUEUE,
            parked=self.parking.key,
            dlq=self.dead_letters.entries_key,
        )
        try:
            self.metrics.serve(port)
        except OSError as exc:
            log.warning("metrics not served on port %d: %s", port, exc)
        else:
            log.info("worker metrics on :%d/metrics", port)

    def stop_background(self) -> None:
        """Ask running drains to hand their work back, and stop background threads."""
        self._stopping.set()
        for thread in self._background:
            thread.stop()
        self._background = []

    def close(self) -> None:
        self.stop_background()
        self.leases.stop()
        for client in self._http:
            client.close()
        self.redis.close()


_settings: Settings | None = None
_current: Runtime | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> None:
    """Record the settings the process's Runtime will be built from."""
    global _settings
    _settings = settings


def current() -> Runtime:
    """The process's Runtime, built on first use from the configured settings."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime(_settings or Settings())
        return _current
