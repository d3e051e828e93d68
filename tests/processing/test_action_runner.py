"""ActionRunner and the send intent of a HelpWave create: marked right before the POST,
cleared when the create definitely did not happen, and a redo that finds it with no outcome
dead-letters the action instead of creating twice."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import fakeredis
import httpx
import pytest

from worker.delivery.breaker import RunawayBreaker
from worker.delivery.dlq import DeadLetterQueue
from worker.delivery.retry import RetryPolicy
from worker.engine.model import ConversationState, Event, PlannedAction
from worker.engine.ruleset import DEFAULT_LIMITS
from worker.errors import ThrottledError
from worker.helpdesks.helpwave import HelpWaveClient
from worker.metrics import WorkerMetrics
from worker.processing.action_runner import AMBIGUOUS_CREATE, ActionRunner
from worker.processing.actions import ActionExecutor, ActionOutcome
from worker.storage import keys
from worker.storage.conversations import ConversationStore
from worker.storage.records import DeliveryRecord
from worker.storage.send_intents import Mark, SendIntents, field

NOW = 1_800_000_000.0
DELIVERY = "d" * 32
EVENT = Event(
    "message.received",
    {"event": "message.received", "data": {"conversation_id": 7, "from": "966500000001"}},
    conversation_id="7",
)
CREATE = PlannedAction("r", 0, "helpwave.create_ticket", {"Channel": "Helpwave"})
COMMENT = PlannedAction("m", 0, "helpwave.add_comment", {"text": "hello"})


class HelpWave:
    """Answers as HelpWave would, or with `answer(request)` for ticket creates."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.answer = answer
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        if request.url.path.endswith("/customers"):
            return httpx.Response(200, json={"success": True, "customer": {"id": 3}})
        if self.answer is not None:
            return self.answer(request)
        if request.url.path.endswith("/tickets"):
            return httpx.Response(201, json={"success": True, "ticket": {"id": "42"}})
        return httpx.Response(201, json={"success": True})

    def creates(self) -> int:
        return sum(1 for method, path in self.calls if path.endswith(("/tickets", "/comments")))


@dataclass
class Setup:
    redis: fakeredis.FakeRedis
    store: ConversationStore
    dlq: DeadLetterQueue
    helpwave: HelpWave
    intents: SendIntents
    clock: list[float]

    def runner(self, executor: ActionExecutor | None = None) -> ActionRunner:
        http = httpx.Client(transport=httpx.MockTransport(self.helpwave), timeout=5)
        client = HelpWaveClient(http, base_url="https://shop.helpwave.example", api_key="k")
        return ActionRunner(
            store=self.store,
            executor=executor
            or ActionExecutor(awalchat=None, helpwave=client, default_phone_number_id=None),
            retry=RetryPolicy(),
            dead_letters=self.dlq,
            clock=lambda: self.clock[0],
            rng=random.Random(1),
            metrics=WorkerMetrics(),
            breaker=RunawayBreaker(self.redis),
            limits=lambda: DEFAULT_LIMITS,
            intents=self.intents,
        )

    def record(self) -> DeliveryRecord:
        record = self.store.load(DELIVERY)
        assert record is not None
        return record

    def state(self) -> ConversationState:
        return self.store.state("7")

    def intent(self, action: PlannedAction) -> bytes | None:
        value = self.redis.hget(keys.delivery(DELIVERY), field(action.key))
        assert value is None or isinstance(value, bytes)
        return value


def setup_with(helpwave: HelpWave) -> Setup:
    client = fakeredis.FakeRedis()
    store = ConversationStore(client)
    store.create_record(DELIVERY, raw=b"{}", received_at=NOW, conversation="7", dry_run=False)
    intents = SendIntents(client, connected_replicas=lambda: 0)
    return Setup(client, store, DeadLetterQueue(client), helpwave, intents, [NOW])


@pytest.fixture
def s() -> Setup:
    return setup_with(HelpWave())


@pytest.mark.parametrize("action", [CREATE, COMMENT])
def test_a_create_marks_its_intent_before_sending_and_records_its_outcome(
    s: Setup, action: PlannedAction
) -> None:
    if action is COMMENT:
        s.store.complete(s.record(), "seed", {}, state=ConversationState(helpwave_ticket_id="42"))
    assert s.runner().run(s.record(), EVENT, action, s.state())[0] is None
    assert s.record().done[action.key]["result"] == "done"
    assert s.intent(action) == repr(NOW).encode()
    assert s.helpwave.creates() == 1


@pytest.mark.parametrize("action", [CREATE, COMMENT])
def test_a_redo_finding_an_intent_without_outcome_dead_letters_instead_of_creating(
    s: Setup, action: PlannedAction
) -> None:
    """A worker killed between its POST and recording the outcome (or a failover that lost
    the outcome but not the intent) leaves the intent: the create may have happened."""
    if action is COMMENT:
        s.store.complete(s.record(), "seed", {}, state=ConversationState(helpwave_ticket_id="42"))
    assert s.intents.mark(DELIVERY, action.key, NOW - 5) is Mark.MARKED

    assert s.runner().run(s.record(), EVENT, action, s.state())[0] is None

    assert s.helpwave.creates() == 0
    outcome = s.record().done[action.key]
    assert outcome["result"] == "failed"
    assert outcome["reason"] == AMBIGUOUS_CREATE
    letter = s.dlq.get(outcome["dead_letter"])
    assert letter is not None
    assert letter.reason == AMBIGUOUS_CREATE


def test_a_definite_failure_clears_the_intent_and_the_retry_creates_once(s: Setup) -> None:
    answers = iter([httpx.Response(503, json={"error": "down"})])
    s.helpwave.answer = lambda request: next(
        answers, httpx.Response(201, json={"success": True, "ticket": {"id": "42"}})
    )
    runner = s.runner()
    retry_at = runner.run(s.record(), EVENT, CREATE, s.state())[0]
    assert retry_at is not None
    assert s.intent(CREATE) is None
    s.clock[0] = retry_at
    assert runner.run(s.record(), EVENT, CREATE, s.state())[0] is None
    assert s.record().done[CREATE.key] == {"result": "done", "ticket_id": "42", "customer_id": 3}
    assert s.helpwave.creates() == 2  # the refused one and the one that worked


def test_no_answer_after_sending_keeps_the_intent_and_dead_letters(s: Setup) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    s.helpwave.answer = lost
    assert s.runner().run(s.record(), EVENT, CREATE, s.state())[0] is None
    assert s.record().done[CREATE.key]["result"] == "failed"
    assert s.intent(CREATE) is not None


class ThrottledOnSend(ActionExecutor):
    """The rate gate refusing the create's own request (after the intent was marked)."""

    def __init__(self) -> None:
        super().__init__(awalchat=None, helpwave=None, default_phone_number_id=None)

    def execute(
        self,
        action: PlannedAction,
        event: Event,
        state: ConversationState,
        *,
        before_send: Callable[[], None] = lambda: None,
    ) -> ActionOutcome:
        before_send()
        raise ThrottledError("helpwave:shop", NOW + 3)


def test_a_create_throttled_at_its_request_clears_the_intent(s: Setup) -> None:
    assert s.runner(ThrottledOnSend()).run(s.record(), EVENT, CREATE, s.state())[0] == NOW + 3
    assert s.intent(CREATE) is None
    assert CREATE.key not in s.record().done


def test_an_intent_no_replica_confirmed_is_not_sent_and_comes_back_later(s: Setup) -> None:
    class Unconfirmed(SendIntents):
        def mark(self, delivery_id: str, action_key: str, now: float) -> Mark:
            return Mark.UNCONFIRMED

    s.intents = Unconfirmed(s.redis, connected_replicas=lambda: 1)
    assert s.runner().run(s.record(), EVENT, CREATE, s.state())[0] == pytest.approx(NOW + 1.0)
    assert s.helpwave.creates() == 0
    assert CREATE.key not in s.record().done
