"""Shadow rules in the drain, with fakeredis: decided after each live decision in their own
views, never carried out, recorded on the delivery and counted for the report."""

from __future__ import annotations

from tests.processing.support import build
from tests.samples import SHADOW_RULES, TOGGLE_RULES
from worker.storage import keys
from worker.storage.decision_log import describe_delivery, render_delivery
from worker.storage.shadow_log import ShadowLog
from worker.storage.timers import rule_tag

OPEN_ON_ANYTHING = """\
version: 1
rules:
  - name: open-on-anything
    shadow: true
    on: message.received
    when: {ticket: closed}
    then: [open_ticket]
"""
RULES = {"rules.yaml": SHADOW_RULES, "shadow.yaml": OPEN_ON_ANYTHING}  # taken in name order


def test_shadow_rules_never_act_and_keep_views_of_their_own() -> None:
    world = build(rules=RULES)
    ids = [world.accept(1, body) for body in ("help me", "thanks", "hello", "help again")]

    assert world.processor.drain("1").processed == 4

    assert world.provider.routes() == ["openTicket"]  # the live rule, once
    assert world.store.state("1").ticket_open is True
    views = ShadowLog(world.redis).views("1", ["close-on-thanks", "open-on-anything"], "live")
    assert views["close-on-thanks"].ticket_open is True  # reopened by "help again" there
    assert views["open-on-anything"].ticket_open is True
    records = [world.store.load(i) for i in ids]
    assert all(r is not None and r.shadow is not None for r in records)
    thanks = records[1]
    assert thanks is not None
    assert thanks.shadow is not None
    closer, opener = thanks.shadow
    assert [(a.kind, a.skip_reason) for a in closer.actions] == [("close_ticket", None)]
    assert closer.differences == ("shadow_only:close_ticket",)
    assert (opener.status, opener.actions, opener.differences) == ("not_matched", (), ())
    again = records[3]
    assert again is not None
    assert again.shadow is not None
    assert again.shadow[0].differences == ("shadow_only:open_ticket",)  # help reopens there
    assert again.shadow[0].actions == ()  # by the live rule, in the closer's world


def test_the_decision_record_shows_would_have_actions_labelled_shadow() -> None:
    world = build(rules=RULES)
    world.accept(1, "help me")
    delivery = world.accept(1, "thanks")
    world.processor.drain("1")
    record = world.store.load(delivery)
    assert record is not None

    described = describe_delivery(record)

    assert described["actions"] == []
    assert described["shadow"][0] == {
        "rule": "close-on-thanks",
        "shadow": True,
        "status": "matched",
        "reason": "every condition held",
        "would_have": [{"action": "close_ticket", "params": {}, "skip_reason": None}],
        "differs": ["shadow would close_ticket where live did not"],
    }
    text = render_delivery(described)
    assert "close_ticket             would have  <- close-on-thanks [shadow]" in text
    assert "shadow close-on-thanks differs: shadow would close_ticket where live did not" in text


def test_a_view_starts_from_the_live_state_and_the_dry_run_has_its_own() -> None:
    world = build(rules=RULES)
    world.redis.set(keys.state("2"), '{"ticket_open": true}')
    world.accept(2, "thanks", dry_run=True)
    world.accept(2, "thanks!")
    world.processor.drain("2")

    tag = rule_tag("close-on-thanks")
    assert world.redis.exists(keys.shadow_state(tag, "2", "dry"))
    live_view = ShadowLog(world.redis).views("2", ["close-on-thanks"], "live")
    # the live record started from the live state (open), not from the dry run's view:
    # its world closed the ticket
    assert live_view["close-on-thanks"].ticket_open is False
    assert world.provider.routes() == []
    assert world.store.state("2").ticket_open is True


def test_verdicts_are_counted_once_per_item_in_hour_buckets() -> None:
    world = build(rules=RULES)
    world.accept(1, "help me")
    world.accept(1, "thanks")
    world.processor.drain("1")
    hour = int(world.clock.now // 3600)

    buckets = ShadowLog(world.redis).hours(["close-on-thanks"], hour - 1, hour)

    (fields,) = buckets["close-on-thanks"]
    assert fields["decided"] == "2"
    assert fields["matched"] == "1"
    assert fields["would:close_ticket"] == "1"
    assert fields["disagree:shadow_only:close_ticket"] == "1"
    assert fields["ex:shadow_only:close_ticket:1"].startswith("1 ")
    ttl = world.redis.ttl(keys.shadow_hour(rule_tag("close-on-thanks"), hour))
    assert keys.SHADOW_REPORT_RETENTION < ttl <= keys.SHADOW_REPORT_RETENTION + 3600


def test_a_ruleset_without_shadow_rules_writes_nothing_for_them() -> None:
    world = build()
    delivery = world.accept(1, "help me")
    world.processor.drain("1")

    record = world.store.load(delivery)
    assert record is not None
    assert record.shadow is None
    assert not list(world.redis.scan_iter("tw:*shadow*"))


SHADOW_TOGGLE = """\
version: 1
limits: {tickets_per_conversation: 3/10m}
rules:
  - name: shadow-toggle
    shadow: true
    on: message.received
    then: [{helpwave.add_comment: {text: x}}, open_ticket, close_ticket]
"""


def test_the_files_limits_reach_the_breaker_and_shadow_actions_are_not_counted() -> None:
    world = build(rules={"rules.yaml": TOGGLE_RULES, "shadow.yaml": SHADOW_TOGGLE})
    for n in range(6):
        world.accept(19, f"again {n}")
    world.processor.drain("19")

    assert len(world.provider.calls) == 3  # limits: 3 ticket actions in 10m
    letters = world.dlq.list(limit=10)
    assert {letter.reason for letter in letters} == {"runaway: more than 3 ticket actions in 10m"}
    assert len(letters) == 3
    assert world.redis.zcard(keys.caps("tickets", "19")) == 3
    assert not world.redis.exists(keys.caps("comments", "19"))
