"""Decision records as people read them: waits scheduled and cancelled are shown."""

from __future__ import annotations

from datetime import UTC, datetime

from worker.engine.decision import Decision, WaitChange
from worker.engine.model import ConversationState
from worker.storage.decision_log import describe_delivery, render_delivery
from worker.storage.records import DeliveryRecord

DUE = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def test_a_record_says_which_waits_it_scheduled_and_cancelled() -> None:
    decision = Decision(
        "abc",
        "message.received",
        "7",
        (),
        (),
        ConversationState(),
        (
            WaitChange("close-after-a-quiet-day", DUE, f"scheduled for {DUE.isoformat()}"),
            WaitChange("one-note-per-burst", None, "cancelled by message.received (unless)"),
        ),
    )
    record = DeliveryRecord("d" * 32, b"{}", 1.0, False, "7", decision, None, {}, {})
    described = describe_delivery(record)
    assert described["waits"] == [
        {
            "rule": "close-after-a-quiet-day",
            "due": DUE.isoformat(),
            "change": f"scheduled for {DUE.isoformat()}",
        },
        {
            "rule": "one-note-per-burst",
            "due": None,
            "change": "cancelled by message.received (unless)",
        },
    ]
    text = render_delivery(described)
    assert f"wait of close-after-a-quiet-day: scheduled for {DUE.isoformat()}" in text
    assert "wait of one-note-per-burst: cancelled by message.received (unless)" in text
    assert "actions: none" not in text
