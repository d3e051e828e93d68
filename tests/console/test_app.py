"""The console's pages, sign-in, roles and request safety (TestClient over fakeredis)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import fakeredis
import pytest

from tests.console.support import (
    ADMIN,
    ORIGIN,
    RULES_TEXT,
    VIEWER,
    TestClient,
    console_client,
    decide,
    letter,
    settings,
    sign_in,
)
from worker.console.app import create_console_app
from worker.engine import evaluate, load_ruleset_from_texts
from worker.engine.envelope import parse_webhook
from worker.engine.model import ConversationState, Event
from worker.live_rules import RuleSource
from worker.ops.console_command import explain_text
from worker.storage import decision_index, keys
from worker.storage.conversations import ConversationStore
from worker.storage.rules_publication import PublicationStore


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    (tmp_path / "r.yaml").write_text(RULES_TEXT)
    return tmp_path


@pytest.fixture
def http(redis_client: fakeredis.FakeRedis, rules_path: Path) -> Iterator[TestClient]:
    with console_client(redis_client, rules_path) as client:
        yield client


PAGES = ["/", "/decisions", "/dead-letters", "/rules", "/timers", "/shadow", "/tail"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_needs_a_session(http: TestClient, path: str) -> None:
    answer = http.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_once_signed_in(http: TestClient, path: str) -> None:
    sign_in(http, VIEWER)
    answer = http.get(path)
    assert answer.status_code == 200
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


def test_sign_in_sets_a_strict_http_only_cookie(http: TestClient) -> None:
    answer = http.post("/signin", data={"password": ADMIN}, headers={"Origin": ORIGIN})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "path=/" in cookie
    assert "secure" not in cookie  # plain http here


def test_a_wrong_token_is_refused(http: TestClient) -> None:
    answer = http.post("/signin", data={"password": "nope"}, headers={"Origin": ORIGIN})
    assert answer.status_code == 401
    assert "set-cookie" not in answer.headers


def test_a_forged_cookie_is_not_a_session(http: TestClient) -> None:
    http.cookies.set("tw_console", "b3BlcmF0b3J8OTk5OTk5OTk5OXx4.deadbeef")
    assert http.get("/").status_code == 303


def test_the_roles_are_shown(http: TestClient) -> None:
    sign_in(http, ADMIN)
    assert ">operator<" in http.get("/").text
    sign_in(http, VIEWER)
    assert ">viewer<" in http.get("/").text


def test_sign_out_ends_the_session(http: TestClient) -> None:
    csrf = sign_in(http)
    answer = http.post("/signout", data={"csrf": csrf}, headers={"Origin": ORIGIN})
    assert answer.status_code == 303
    assert http.get("/").status_code == 303


def test_the_console_needs_a_token(redis_client: fakeredis.FakeRedis, rules_path: Path) -> None:
    with pytest.raises(ValueError, match="ADMIN_TOKEN or VIEWER_TOKEN"):
        create_console_app(
            settings(admin_token=None, viewer_token=None),
            redis_client,
            rules=RuleSource(rules_path),
            explain=explain_text,
        )


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site", "Origin": ORIGIN},
        {"Sec-Fetch-Site": "same-site"},
        {},
    ],
)
def test_a_cross_site_post_is_refused(
    http: TestClient, redis_client: fakeredis.FakeRedis, headers: dict[str, str]
) -> None:
    csrf = sign_in(http)
    letter_id = letter(redis_client)
    answer = http.post(f"/dead-letters/{letter_id}/drop", data={"csrf": csrf}, headers=headers)
    assert answer.status_code == 403
    assert "cross-site" in answer.text
    assert redis_client.hexists(keys.DLQ, letter_id)
    sign_in_refused = http.post("/signin", data={"password": ADMIN}, headers=headers)
    assert sign_in_refused.status_code == 403


@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_a_post_without_the_csrf_token_is_refused(
    http: TestClient, redis_client: fakeredis.FakeRedis, csrf: str | None
) -> None:
    sign_in(http)
    letter_id = letter(redis_client)
    data = {"csrf": csrf} if csrf else {}
    answer = http.post(
        f"/dead-letters/{letter_id}/drop", data=data, headers={"Sec-Fetch-Site": "same-origin"}
    )
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    assert redis_client.hexists(keys.DLQ, letter_id)


def test_a_script_in_an_event_body_is_shown_as_text(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    decide(redis_client, "d-xss", "<script>alert(1)</script>", body="<script>alert(2)</script>")
    sign_in(http)
    for path in ("/decisions", "/decisions/d-xss", "/tail"):
        page = http.get(path).text
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(" in page


def test_one_decision_shows_rules_actions_and_the_event(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    decide(redis_client, "d-1", "1042")
    sign_in(http)
    page = http.get("/decisions/d-1").text
    assert "open_ticket" in page
    assert "matched" in page
    assert "&#34;conversation_id&#34;: &#34;1042&#34;" in page
    assert http.get("/decisions/nope").status_code == 404


WHEN = (
    "version: 1\nrules:\n  - name: open-on-help\n    on: message.received\n"
    "    when: {data.body: {contains: help}}\n    then: [open_ticket]\n"
)
SAW = "data.body contains &#39;help&#39;: saw &#39;thanks&#39;"


def decide_with_condition(client: fakeredis.FakeRedis, delivery_id: str) -> None:
    """A record decided by a ruleset whose rule fails on the body, published as accepted."""
    ruleset = load_ruleset_from_texts({"when.yaml": WHEN})
    PublicationStore(client).publish(ruleset.version, {"when.yaml": WHEN}, 0)
    raw = b'{"event": "message.received", "data": {"conversation_id": "7", "body": "thanks"}}'
    store = ConversationStore(client)
    store.create_record(delivery_id, raw=raw, received_at=1.0, conversation="7", dry_run=False)
    event = parse_webhook(raw)
    assert isinstance(event, Event)
    decision = evaluate(ruleset, event, ConversationState(), now=datetime(2026, 1, 1, tzinfo=UTC))
    record = store.load(delivery_id)
    assert record is not None
    store.store_decision(record, decision, ConversationState())
    if delivery_id.endswith("old"):  # as older versions stored it: every rule explained
        client.hset(keys.delivery(delivery_id), "decision", json.dumps(decision.to_json()))


def test_a_decision_page_shows_each_rule_s_first_failing_condition_new_and_old(
    http: TestClient, redis_client: fakeredis.FakeRedis, rules_path: Path
) -> None:
    decide_with_condition(redis_client, "d-new")
    decide_with_condition(redis_client, "d-old")
    assert b"outcomes" not in cast(bytes, redis_client.hget(keys.delivery("d-new"), "decision"))
    sign_in(http)
    assert SAW in http.get("/decisions/d-old").text
    page = http.get("/decisions/d-new").text
    assert SAW in page
    assert "no longer kept" not in page
    redis_client.delete(keys.RULES, keys.RULES_HISTORY)
    with console_client(redis_client, rules_path) as fresh:
        sign_in(fresh)
        page = fresh.get("/decisions/d-new").text
    assert "no longer kept" in page
    assert SAW not in page
    assert SAW in fresh.get("/decisions/d-old").text


def test_decisions_are_paged_by_cursor_and_stable_while_new_ones_arrive(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    for n in range(120):
        decide(redis_client, f"d{n:03}", str(n % 7))
    sign_in(http)
    first = http.get("/decisions").text
    assert "d119" in first
    assert "d070" in first
    assert "d069" not in first
    cursor = first.split("before=")[1].split('"')[0]
    second = http.get(f"/decisions?before={cursor}").text
    for n in range(120, 130):
        decide(redis_client, f"d{n:03}", "1")
    assert http.get(f"/decisions?before={cursor}").text == second
    assert "d069" in second
    assert "d020" in second
    assert "d070" not in second


def test_decisions_are_searched_by_conversation_delivery_rule_and_event(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    for n in range(10):
        decide(redis_client, f"d{n}", str(n % 2))
    sign_in(http)
    by_conversation = http.get("/decisions?conversation=1").text
    assert "d1<" in by_conversation
    assert "d2<" not in by_conversation
    answer = http.get("/decisions?delivery=d3")
    assert answer.headers["location"] == "/decisions/d3"
    assert "No decision record" in http.get("/decisions?delivery=zzz").text
    by_rule = http.get("/decisions?rule=open").text
    assert "d9<" in by_rule
    assert "Searched 10 decisions" in by_rule
    assert "d9<" not in http.get("/decisions?rule=note").text
    assert "d9<" in http.get("/decisions?event=message.received").text


def test_rules_page_explains_a_pasted_event_without_side_effect(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    csrf = sign_in(http, VIEWER)
    assert "r.yaml:3" in http.get("/rules").text
    event = '{"event": "message.received", "data": {"conversation_id": 5}}'
    answer = http.post(
        "/rules/explain",
        data={"csrf": csrf, "event": event, "state": "open"},
        headers={"Origin": ORIGIN},
    )
    assert answer.status_code == 200
    assert "MATCH" in answer.text
    assert "would" in answer.text or "open_ticket" in answer.text
    assert redis_client.keys("*") == []
    bad = http.post(
        "/rules/explain", data={"csrf": csrf, "event": "[1]"}, headers={"Origin": ORIGIN}
    )
    assert "not a webhook body" in bad.text


def test_overview_shows_counts_budgets_and_workers(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    letter(redis_client)
    redis_client.hset(
        keys.rate("helpwave:example"), mapping={"left": "7", "limit": "10", "n429": "3"}
    )
    redis_client.set(keys.worker_heartbeat("host-a", 42), "1.0", ex=30)
    sign_in(http)
    page = http.get("/").text
    assert "helpwave:example" in page
    assert "<td>7</td><td>10</td>" in page
    assert "host-a" in page
    assert "LIVE" in page


def test_shadow_page_without_the_report_lists_loaded_shadow_rules(http: TestClient) -> None:
    sign_in(http)
    assert "No shadow rules" in http.get("/shadow").text


def test_the_live_tail_streams_new_decisions(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    decide(redis_client, "old", "1")
    sign_in(http)
    first = decision_index.newest_id(redis_client)
    decide(redis_client, "new<b>", "2")
    with http.stream("GET", "/tail/events", headers={"Last-Event-ID": first}) as stream:
        body = "".join(stream.iter_text())
    assert "event: decision" in body
    assert '"delivery": "new<b>"' in body
    assert '"delivery": "old"' not in body
