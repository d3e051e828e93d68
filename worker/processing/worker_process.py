"""Everything a worker process needs, built once from Settings: `WorkerProcess(settings)`.

`worker.processing.celery_config.create_celery` builds one per Celery app and hands its
processor to the drain task. Background threads (the parked releaser, rule reloads, recovery,
the dead-letter trim, the lease keeper) run in the worker's main process:
`start_background` / `stop_background`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

import httpx
import redis

from worker.delivery.dlq import DeadLetterQueue, DroppedLetter
from worker.delivery.gate import Observations, RateGate
from worker.delivery.lease import LeaseKeeper
from worker.delivery.parking import ParkedReleaser, ParkingLot, ready
from worker.delivery.periodic import Periodic
from worker.delivery.ratelimit import (
    RateLimiter,
    destination_for_awalchat,
    destination_for_helpwave,
    parse_rate,
)
from worker.delivery.recovery import STALE_AFTER, Recovery
from worker.delivery.retry import RetryPolicy
from worker.helpdesks.awalchat import AwalChatClient
from worker.helpdesks.helpwave import HelpWaveClient
from worker.helpdesks.http import new_http_client
from worker.live_rules import REFRESH_INTERVAL
from worker.metrics import SharedStateCollector, WorkerMetrics
from worker.processing.actions import ActionExecutor
from worker.processing.lanes import LaneLocks
from worker.processing.processor import ConversationProcessor
from worker.processing.timer_items import RELEASE_BATCH, timer_release
from worker.settings import Settings
from worker.startup import rule_source, secret_values
from worker.storage import keys
from worker.storage.clients import sync_redis
from worker.storage.conversations import ConversationStore
from worker.storage.drains import DrainSteps
from worker.storage.upgrade import convert_decision_log, expire_legacy_keys
from worker.storage.wire import drain_message

log = logging.getLogger(__name__)

RECOVERY_INTERVAL: Final = 15.0
# A conversation or lane marked active this many lock TTLs ago, unlocked and not parked, is
# recovered (90 s with the default 60 s lock): its drain died and its lock expired.
STALE_AFTER_LOCKS: Final = 1.5
WAKE_INTERVAL: Final = 5.0
DLQ_TRIM_INTERVAL: Final = 60.0
HEARTBEAT_INTERVAL: Final = 5.0
# Touched every few seconds by a live worker: the compose health check reads its age.
HEARTBEAT_FILE: Final = Path(tempfile.gettempdir()) / "ticket-worker.heartbeat"


def conversation_recovery(
    client: redis.Redis, *, parked_key: str = keys.PARKED, stale_after: float = STALE_AFTER
) -> Recovery:
    """The sweep that queues a drain for a conversation a dead worker left behind."""
    return Recovery(
        client,
        lock_key=keys.lock,
        inbox_key=keys.inbox,
        parked_key=parked_key,
        queue=keys.CELERY_QUEUE,
        build_message=drain_message,
        stale_after=stale_after,
    )


def lanes_recovery(
    client: redis.Redis, *, parked_key: str = keys.PARKED_LANES, stale_after: float = STALE_AFTER
) -> Recovery:
    """The sweep that makes a lane a dead drain left with work ready again."""
    return Recovery(
        client,
        lock_key=keys.lane_lock,
        inbox_key=keys.lane,
        parked_key=parked_key,
        queue=keys.READY_LANES,
        build_message=lambda member: member,
        active_key=keys.ACTIVE_LANES,
        stale_after=stale_after,
    )


class WorkerProcess:
    """The worker process's long-lived objects (clients, stores, processor)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = sync_redis(settings.redis_target())
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
        # what answers teach the rate budgets, sent with each thread's next round trip
        self.observations = Observations(self.redis)
        self.parking = ParkingLot(self.redis)
        self.lane_parking = ParkingLot(
            self.redis, key=keys.PARKED_LANES, ready_key=keys.READY_LANES
        )
        self.timers = ParkingLot(self.redis, key=keys.TIMERS, inbox_ttl=settings.state_retention)
        self.dead_letters = DeadLetterQueue(
            self.redis,
            known_secrets=secret_values(settings),
            max_letters=settings.dlq_max,
            retention=settings.dlq_retention,
            on_drop=self._dropped,
        )
        self.leases = LeaseKeeper(self.store, ttl=settings.conversation_lock_seconds)
        self.lane_leases = LeaseKeeper(
            LaneLocks(self.store), ttl=settings.conversation_lock_seconds
        )
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
            park_lane=self.lane_parking.park,
            lane_leases=self.lane_leases,
            observations=self.observations,
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
            observations=self.observations,
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
        stale = STALE_AFTER_LOCKS * self.settings.conversation_lock_seconds
        recovery = conversation_recovery(self.redis, parked_key=self.parking.key, stale_after=stale)
        lane_recovery = lanes_recovery(
            self.redis, parked_key=self.lane_parking.key, stale_after=stale
        )
        self._serve_metrics()
        self._background = [
            ParkedReleaser(self.parking, ready),
            ParkedReleaser(self.lane_parking, ready),
            Periodic("lane-recovery", RECOVERY_INTERVAL, lambda: lane_recovery.sweep(time.time())),
            ParkedReleaser(self.timers, timer_release, limit=RELEASE_BATCH),
            Periodic("rules", REFRESH_INTERVAL, self.rules.refresh),
            Periodic("recovery", RECOVERY_INTERVAL, lambda: recovery.sweep(time.time())),
            # ready conversations with no wake message waiting (a lost message, a count
            # that drifted): queue one
            Periodic("wake", WAKE_INTERVAL, DrainSteps(self.redis).nudge),
            Periodic("dlq-trim", DLQ_TRIM_INTERVAL, self.dead_letters.trim),
            Periodic("heartbeat", HEARTBEAT_INTERVAL, self._heartbeat),
        ]
        for thread in self._background:
            thread.start()
        threading.Thread(target=self._upgrade, name="upgrade", daemon=True).start()

    def _heartbeat(self) -> None:
        """Touch the heartbeat file, and tell the console this worker lives (30 s key)."""
        HEARTBEAT_FILE.touch()
        key = keys.worker_heartbeat(socket.gethostname(), os.getpid())
        with contextlib.suppress(redis.RedisError):
            self.redis.set(key, repr(time.time()), ex=keys.WORKER_HEARTBEAT_TTL)

    def _upgrade(self) -> None:
        try:
            convert_decision_log(self.redis)
            expire_legacy_keys(self.redis, retention=self.settings.state_retention)
        except redis.RedisError:
            log.warning("could not check for keys without an expiry", exc_info=True)

    def _serve_metrics(self) -> None:
        port = self.settings.worker_metrics_port
        if not port:
            return
        self.metrics.watch(
            SharedStateCollector(
                self.redis,
                queue=keys.CELERY_QUEUE,
                parked=self.parking.key,
                dlq=self.dead_letters.entries_key,
                timers=keys.TIMERS,
                ready=keys.READY,
                parked_lanes=keys.PARKED_LANES,
            )
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
        self.lane_leases.stop()
        for client in self._http:
            client.close()
        self.redis.close()
