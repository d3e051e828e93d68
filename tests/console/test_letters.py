"""Dead letters on the console: list and filter, replay and drop (audited), bulk after a
preview, and viewers refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest

from tests.console.support import (
    ORIGIN,
    RULES_TEXT,
    VIEWER,
    TestClient,
    console_client,
    letter,
    sign_in,
)
from worker.console import audit
from worker.storage import keys

SAME = {"Origin": ORIGIN}


@pytest.fixture
def redis_client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def http(redis_client: fakeredis.FakeRedis, tmp_path: Path) -> Iterator[TestClient]:
    (tmp_path / "r.yaml").write_text(RULES_TEXT)
    with console_client(redis_client, tmp_path) as client:
        yield client


def test_letters_are_listed_filtered_and_shown_escaped(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    refused = letter(redis_client, reason="refused: 422 <img src=x>")
    out = letter(redis_client, reason="out of attempts", kind="helpwave.add_comment")
    sign_in(http, VIEWER)
    page = http.get("/dead-letters").text
    assert refused in page
    assert out in page
    assert "<img src=x>" not in page
    assert "&lt;img src=x&gt;" in page
    only = http.get("/dead-letters?reason=REFUSED").text
    assert refused in only
    assert out not in only
    by_action = http.get("/dead-letters?action=helpwave.add_comment").text
    assert out in by_action
    assert refused not in by_action
    one = http.get(f"/dead-letters/{refused}").text
    assert "&lt;b&gt;bad&lt;/b&gt;" in one
    assert "Viewers cannot replay or drop" in one


def test_the_list_pages_by_cursor(http: TestClient, redis_client: fakeredis.FakeRedis) -> None:
    ids = [letter(redis_client) for _ in range(60)]
    sign_in(http)
    first = http.get("/dead-letters").text
    cursor = first.split("before=")[1].split('"')[0]
    second = http.get(f"/dead-letters?before={cursor}").text
    assert sum(i in first for i in ids) == 50
    assert sum(i in second for i in ids) == 10
    assert not any(i in first and i in second for i in ids)


def test_a_viewer_cannot_replay_or_drop(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    letter_id = letter(redis_client)
    csrf = sign_in(http, VIEWER)
    for op in ("replay", "drop"):
        answer = http.post(f"/dead-letters/{letter_id}/{op}", data={"csrf": csrf}, headers=SAME)
        assert answer.status_code == 403
    answer = http.post("/dead-letters/bulk", data={"csrf": csrf, "op": "drop"}, headers=SAME)
    assert answer.status_code == 403
    assert redis_client.hexists(keys.DLQ, letter_id)


def test_a_replay_requeues_the_action_once_and_is_recorded(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    letter_id = letter(redis_client)
    csrf = sign_in(http)
    data = {"csrf": csrf, "note": "provider is back <3"}
    answer = http.post(f"/dead-letters/{letter_id}/replay", data=data, headers=SAME)
    assert answer.status_code == 303
    assert not redis_client.hexists(keys.DLQ, letter_id)
    assert redis_client.llen(keys.CELERY_QUEUE) == 1
    assert redis_client.exists(keys.delivery(f"r{letter_id}"))
    again = http.post(f"/dead-letters/{letter_id}/replay", data=data, headers=SAME)
    assert again.status_code == 303
    assert redis_client.llen(keys.CELERY_QUEUE) == 1
    page = http.get(f"/dead-letters/{letter_id}").text
    assert "no longer queued" in page
    assert "replay</strong> by operator" in page
    assert "provider is back &lt;3" in page
    _, events = audit.read(redis_client, letter_id)
    assert [e.op for e in events] == ["replay"]
    assert 0 < redis_client.ttl(keys.dlq_audit(letter_id)) <= keys.DEFAULT_DLQ_RETENTION


def test_drop_all_matching_after_a_preview(
    http: TestClient, redis_client: fakeredis.FakeRedis
) -> None:
    gone = [letter(redis_client, reason="refused: 422") for _ in range(3)]
    kept = letter(redis_client, reason="out of attempts")
    csrf = sign_in(http)
    preview = http.get("/dead-letters/bulk?op=drop&reason=refused")
    assert '<strong id="count">3</strong>' in preview.text
    assert all(redis_client.hexists(keys.DLQ, i) for i in gone)  # a preview changes nothing
    done = http.post(
        "/dead-letters/bulk",
        data={"csrf": csrf, "op": "drop", "reason": "refused", "action": "", "note": "bulk"},
        headers=SAME,
    )
    assert "Drop: 3 letters" in done.text
    assert not any(redis_client.hexists(keys.DLQ, i) for i in gone)
    assert redis_client.hexists(keys.DLQ, kept)
    assert "drop</strong> by operator" in http.get(f"/dead-letters/{gone[0]}").text
