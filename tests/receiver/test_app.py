"""The receiver's HTTP contract (interface.md, "HTTP"), with an Inbox over fakeredis."""

from __future__ import annotations

import asyncio
import json
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import fakeredis
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.types import Message

from tests.hostile_bodies import FROZE_THE_RECEIVER
from worker.engine.model import Event
from worker.errors import ConfigError, QueueUnavailableError
from worker.metrics import ReceiverMetrics
from worker.receiver.app import build_receiver, create_app, receiver_from_env
from worker.receiver.handlers import MAX_BODY_BYTES, MAX_HANDSHAKE_BYTES, READ_TIMEOUT_SECONDS
from worker.receiver.signature import sign
from worker.settings import Settings
from worker.storage.clients import async_redis as redis_client
from worker.storage.inbox import AcceptResult, Inbox, delivery_id_for

with warnings.catch_warnings():
    # Starlette 1.x asks for `httpx2` behind its TestClient; `httpx` still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SECRET = "whsec-test"
OLD_SECRET = "whsec-old"
NOW = 1704124800
BODY = b'{"event":"message.received","data":{"conversation_id":1,"body":"hi"}}'
URL = "/webhooks/awalchat"


def settings(**changes: object) -> Settings:
    values: dict[str, object] = {
        "awalchat_webhook_secrets": (SecretStr(SECRET), SecretStr(OLD_SECRET)),
        "redis_url": "redis://127.0.0.1:1/0",
    }
    values.update(changes)
    return Settings.model_validate(values)


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = NOW) -> dict[str, str]:
    stamp = None if timestamp is None else str(timestamp)
    headers = {"X-Awal-Signature-256": sign(secret, body, stamp)}
    if stamp is not None:
        headers["X-Timestamp"] = stamp
    return headers


@dataclass
class Receiver:
    http: TestClient
    redis: fakeredis.FakeRedis

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, object]:
        response = self.http.post(URL, content=body, headers=headers or {})
        return response.status_code, response.json()

    def queued(self) -> int:
        return int(self.redis.llen("celery"))

    def keys(self) -> list[bytes | str]:
        return list(self.redis.keys("*"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = fakeredis.FakeServer()
    client = fakeredis.FakeAsyncRedis(server=server)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = create_app(settings(), Inbox(client), now=lambda: NOW, lifespan=lifespan)
    inspector = fakeredis.FakeRedis(server=server)
    with TestClient(app) as http:
        yield Receiver(http, inspector)
    inspector.close()


def test_signed_event_is_queued_with_202(receiver: Receiver) -> None:
    status, answer = receiver.post(BODY, signed(BODY))
    assert (status, answer) == (202, {"status": "queued", "delivery_id": delivery_id_for(BODY)})
    assert receiver.queued() == 1


def test_body_only_signature_without_timestamp_is_accepted(receiver: Receiver) -> None:
    assert receiver.post(BODY, signed(BODY, timestamp=None))[0] == 202


def test_same_body_again_answers_200_duplicate_and_queues_once(receiver: Receiver) -> None:
    receiver.post(BODY, signed(BODY))
    status, answer = receiver.post(BODY, signed(BODY, OLD_SECRET, NOW - 100))
    assert (status, answer) == (200, {"status": "duplicate", "delivery_id": delivery_id_for(BODY)})
    assert receiver.queued() == 1


def test_any_configured_secret_is_accepted(receiver: Receiver) -> None:
    assert receiver.post(BODY, signed(BODY, OLD_SECRET))[0] == 202


def test_unknown_event_type_is_queued(receiver: Receiver) -> None:
    body = b'{"event":"order.updated","data":{"order_id":5}}'
    assert receiver.post(body, signed(body))[0] == 202


@pytest.mark.parametrize("headers", [{}, signed(BODY)], ids=["unsigned", "signed"])
def test_handshake_echoes_the_challenge_signed_or_not(
    receiver: Receiver, headers: dict[str, str]
) -> None:
    body = b'{"type": "verification", "challenge": "random_string_here"}'
    assert receiver.post(body, headers) == (200, {"challenge": "random_string_here"})
    assert receiver.keys() == []


def test_unsigned_handshake_over_the_handshake_size_is_refused_unread(receiver: Receiver) -> None:
    def handshake(size: int) -> bytes:
        head = b'{"type": "verification", "challenge": "c"'
        return head + b" " * (size - len(head) - 1) + b"}"

    assert receiver.post(handshake(MAX_HANDSHAKE_BYTES)) == (200, {"challenge": "c"})
    status, answer = receiver.post(handshake(MAX_HANDSHAKE_BYTES + 1))
    assert (status, answer) == (401, {"error": "bad_signature", "message": "missing signature"})
    assert receiver.keys() == []


def test_the_body_that_froze_the_receiver_is_a_prompt_401_unsigned(receiver: Receiver) -> None:
    started = time.monotonic()
    assert receiver.post(FROZE_THE_RECEIVER)[0] == 401
    assert time.monotonic() - started < 2.0  # interface.md, "Hostile cost"


BAD_SIGNATURES = {
    "unsigned": {},
    "wrong secret": signed(BODY, "not-the-secret"),
    "tampered body": signed(BODY.replace(b"hi", b"ho")),
    "stale timestamp": signed(BODY, timestamp=NOW - 301),
    "future timestamp": signed(BODY, timestamp=NOW + 301),
    "timestamp not signed": {**signed(BODY, timestamp=None), "X-Timestamp": str(NOW)},
    "timestamp not a number": {**signed(BODY), "X-Timestamp": "soon"},
    "timestamp 5000 digits": {**signed(BODY), "X-Timestamp": "9" * 5000},
    "signature not hex": {"X-Awal-Signature-256": "sha256=" + "z" * 64},
    "signature without scheme": {"X-Awal-Signature-256": signed(BODY)["X-Awal-Signature-256"][7:]},
}


@pytest.mark.parametrize("headers", list(BAD_SIGNATURES.values()), ids=list(BAD_SIGNATURES))
def test_bad_or_missing_signature_is_401_and_leaves_nothing(
    receiver: Receiver, headers: dict[str, str]
) -> None:
    status, answer = receiver.post(BODY, headers)
    assert status == 401
    assert isinstance(answer, dict)
    assert answer["error"] == "bad_signature"
    assert receiver.keys() == []


def test_non_ascii_header_values_are_401_not_5xx(receiver: Receiver) -> None:
    headers = [
        (b"x-awal-signature-256", "sha256=é".encode("latin-1") + b"0" * 63),
        (b"x-timestamp", "١٧٠٤".encode()),
    ]
    response = receiver.http.post(URL, content=BODY, headers=headers)
    assert response.status_code == 401
    assert receiver.keys() == []


BAD_PAYLOADS = {
    "not json": b"hello",
    "json array": b'[{"event":"x"}]',
    "no event": b'{"data":{"conversation_id":1}}',
    "not utf-8": b'{"event":"\xff"}',
    "nested 5000 deep": b'{"event":"x","d":' + b"[" * 5000 + b"]" * 5000 + b"}",
    "5000-digit number": b'{"event":"x","n":' + b"9" * 5000 + b"}",
    "lone surrogate": b'{"event":"x","t":"\\ud800"}',
    "duplicate keys": b'{"event":"x","event":"y"}',
    "NaN": b'{"event":"x","n":NaN}',
}


@pytest.mark.parametrize("body", list(BAD_PAYLOADS.values()), ids=list(BAD_PAYLOADS))
def test_signed_bad_payload_is_400_and_leaves_nothing(receiver: Receiver, body: bytes) -> None:
    status, answer = receiver.post(body, signed(body))
    assert status == 400
    assert isinstance(answer, dict)
    assert answer["error"] == "bad_payload"
    assert receiver.keys() == []


def test_unsigned_bad_payload_is_refused_for_its_signature(receiver: Receiver) -> None:
    assert receiver.post(b"hello")[0] == 401


def test_body_over_one_mib_is_413_and_leaves_nothing(receiver: Receiver) -> None:
    body = b'{"event":"x","pad":"' + b"a" * MAX_BODY_BYTES + b'"}'
    status, answer = receiver.post(body, signed(body))
    assert (status, answer) == (413, {"error": "payload_too_large", "message": answer["message"]})  # type: ignore[index]
    assert receiver.keys() == []


def test_body_of_exactly_one_mib_is_accepted(receiver: Receiver) -> None:
    head = b'{"event":"x","pad":"'
    body = head + b"a" * (MAX_BODY_BYTES - len(head) - 2) + b'"}'
    assert len(body) == MAX_BODY_BYTES
    assert receiver.post(body, signed(body))[0] == 202


def test_streamed_body_over_one_mib_without_length_is_413(receiver: Receiver) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"a" * 65536

    response = receiver.http.post(URL, content=chunks(), headers=signed(b""))
    assert response.status_code == 413
    assert receiver.keys() == []


def test_declared_length_over_one_mib_is_refused_before_reading(receiver: Receiver) -> None:
    headers = {**signed(BODY), "Content-Length": str(MAX_BODY_BYTES + 1)}
    response = receiver.http.post(URL, content=BODY, headers=headers)
    assert response.status_code == 413


def test_other_methods_on_the_webhook_route_are_405(receiver: Receiver) -> None:
    assert receiver.http.get(URL).status_code == 405


@pytest.mark.anyio
async def test_a_client_gone_before_its_body_arrives_gets_no_answer_and_queues_nothing() -> None:
    accepted: list[bytes] = []

    class RecordingInbox(DownInbox):
        async def accept(self, raw: bytes, event: Event, *, dry_run: bool) -> AcceptResult:
            accepted.append(raw)
            return AcceptResult(delivery_id_for(raw), duplicate=False)

    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)

    headers = [(name.lower().encode(), value.encode()) for name, value in signed(BODY).items()]
    scope = {"type": "http", "method": "POST", "path": URL, "headers": headers}
    await create_app(settings(), RecordingInbox(), now=lambda: NOW)(scope, receive, send)
    assert (sent, accepted) == ([], [])


async def call(
    app: Starlette, body: Callable[[], Awaitable[Message]], sent: list[Message] | None = None
) -> list[Message]:
    """What `app` sends (also into `sent`) for a signed POST to the webhook route whose body
    messages come from `body`."""
    headers = [(name.lower().encode(), value.encode()) for name, value in signed(BODY).items()]
    scope = {"type": "http", "method": "POST", "path": URL, "headers": headers}
    sent = [] if sent is None else sent

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, body, send)
    return sent


async def trickle() -> Message:
    """One byte every 50 ms, never the last."""
    await asyncio.sleep(0.05)
    return {"type": "http.request", "body": b"{", "more_body": True}


async def whole_body() -> Message:
    return {"type": "http.request", "body": BODY, "more_body": False}


@pytest.mark.anyio
async def test_a_body_trickling_past_the_read_timeout_gets_408_while_others_pass() -> None:
    metrics = ReceiverMetrics()
    inbox = Inbox(fakeredis.FakeAsyncRedis())
    app = create_app(settings(), inbox, now=lambda: NOW, metrics=metrics, read_timeout=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    slow = asyncio.create_task(call(app, trickle))
    await asyncio.sleep(0.1)
    assert (await call(app, whole_body))[0]["status"] == 202
    assert not slow.done()
    start, body = await slow
    assert 0.3 <= loop.time() - started < 1.0
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]  # the rest is not worth reading
    assert json.loads(body["body"]) == {
        "error": "request_timeout",
        "message": "body not complete within 0.3 s",
    }
    text = metrics.render()[0].decode()
    assert 'ticket_worker_webhooks_total{event="none",outcome="request_timeout"} 1.0' in text


@pytest.mark.anyio
async def test_a_request_cancelled_while_its_body_arrives_is_cancelled_not_answered() -> None:
    app = create_app(settings(), DownInbox(), now=lambda: NOW, read_timeout=0.3)
    sent: list[Message] = []
    request = asyncio.create_task(call(app, trickle, sent))
    await asyncio.sleep(0.1)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(0.4)  # past the read timeout: nothing fires for a finished request
    assert sent == []


def test_the_read_timeout_is_the_contracts_ten_seconds() -> None:
    assert READ_TIMEOUT_SECONDS == 10.0
    assert settings().receiver_read_timeout_seconds == READ_TIMEOUT_SECONDS


class DownInbox:
    async def accept(self, raw: bytes, event: Event, *, dry_run: bool) -> AcceptResult:
        raise QueueUnavailableError("down")

    async def ping(self) -> None:
        raise QueueUnavailableError("down")


def test_queue_down_is_503_for_a_valid_event() -> None:
    with TestClient(create_app(settings(), DownInbox(), now=lambda: NOW)) as http:
        response = http.post(URL, content=BODY, headers=signed(BODY))
        assert response.status_code == 503
        assert response.json()["error"] == "queue_unavailable"
        assert http.get("/readyz").status_code == 503


def test_real_redis_client_answers_503_within_two_seconds_each_when_redis_is_down(
    down_redis_url: str,
) -> None:
    client = redis_client(down_redis_url)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = create_app(settings(), Inbox(client), now=lambda: NOW, lifespan=lifespan)
    with TestClient(app) as http:
        for _ in range(2):  # the second time on what the first left in the pool
            started = time.monotonic()
            assert http.post(URL, content=BODY, headers=signed(BODY)).status_code == 503
            assert time.monotonic() - started < 2.0  # interface.md, "Redis down"
            started = time.monotonic()
            ready = http.get("/readyz")
            assert time.monotonic() - started < 2.0
            assert ready.status_code == 503
            assert "redis" in ready.json()["reason"]


def test_healthz(receiver: Receiver) -> None:
    assert receiver.http.get("/healthz").status_code == 200


def test_readyz_is_200_when_redis_answers(receiver: Receiver) -> None:
    assert receiver.http.get("/readyz").json() == {"status": "ready"}


def test_readyz_reports_the_readiness_callbacks_reason() -> None:
    async def rules_missing() -> str | None:
        return "rules not loaded"

    client = fakeredis.FakeAsyncRedis()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    app = create_app(settings(), Inbox(client), readiness=rules_missing, lifespan=lifespan)
    with TestClient(app) as http:
        response = http.get("/readyz")
    assert (response.status_code, response.json()["reason"]) == (503, "rules not loaded")


def test_metrics_count_outcomes_and_signature_failures(receiver: Receiver) -> None:
    receiver.post(BODY, signed(BODY))
    receiver.post(BODY, signed(BODY))
    receiver.post(BODY, {})
    text = receiver.http.get("/metrics").text
    assert 'ticket_worker_webhooks_total{event="message.received",outcome="queued"} 1.0' in text
    assert 'ticket_worker_webhooks_total{event="message.received",outcome="duplicate"} 1.0' in text
    assert 'ticket_worker_webhooks_total{event="none",outcome="bad_signature"} 1.0' in text
    assert 'signature_failures_total{reason="missing_signature"} 1.0' in text
    assert "ticket_worker_webhook_request_seconds_count 3.0" in text


def test_logs_carry_ids_but_never_the_signature_or_secret(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="worker.receiver.handlers")
    headers = signed(BODY)
    receiver.post(BODY, headers)
    receiver.post(BODY, {"X-Awal-Signature-256": "sha256=" + "0" * 64})
    queued = next(r for r in caplog.records if r.getMessage() == "webhook queued")
    assert queued.levelname == "DEBUG"  # one line per accepted delivery is too dear at INFO
    assert vars(queued)["delivery_id"] == delivery_id_for(BODY)
    assert vars(queued)["conversation_id"] == "1"
    logged = " ".join(str(vars(r)) for r in caplog.records)
    assert SECRET not in logged
    assert headers["X-Awal-Signature-256"][7:] not in logged


def test_no_webhook_secret_refuses_to_create_the_app() -> None:
    with pytest.raises(ConfigError, match="AWALCHAT_WEBHOOK_SECRETS"):
        create_app(settings(awalchat_webhook_secrets=()), DownInbox())


def test_no_webhook_secret_refuses_to_build_the_receiver() -> None:
    with pytest.raises(ConfigError, match="AWALCHAT_WEBHOOK_SECRETS"):
        build_receiver(settings(awalchat_webhook_secrets=()))


def test_uvicorn_factory_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWALCHAT_WEBHOOK_SECRETS", raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    with pytest.raises(ConfigError, match="AWALCHAT_WEBHOOK_SECRETS"):
        receiver_from_env()


def test_build_receiver_needs_redis_url() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        build_receiver(settings(redis_url=None))


def test_build_receiver_serves_with_a_real_client() -> None:
    with TestClient(build_receiver(settings())) as http:
        assert http.get("/healthz").status_code == 200
