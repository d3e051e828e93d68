"""Lanes on real parts: a slow HelpWave never holds up the conversation's AwalChat ticket.

Every HelpWave answer takes 2 s. A conversation's messages are mirrored to HelpWave (a
create or look-up, then a comment each: about 10 s of HelpWave calls for three messages),
and its fourth message asks for help: the AwalChat open follows that webhook at once, while
the conversation's HelpWave calls are still running; the comments all arrive, in order, on
one ticket.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import Deployment

pytestmark = pytest.mark.integration

CONVERSATION = 702
DELAY = 2.0
RULES_DIR = Path(__file__).resolve().parents[2] / "rules"
OPEN_ON_HELP = """\
version: 1
rules:
  - name: open-on-help
    on: message.received
    when:
      data.body: {contains_any: [help]}
    then: [open_ticket]
"""


def message(body: str, n: int) -> bytes:
    return json.dumps(
        {
            "event": "message.received",
            "timestamp": "2026-11-27T10:00:00Z",
            "data": {
                "message_id": f"wamid.lane{n}",
                "conversation_id": CONVERSATION,
                "from": "966500000702",
                "type": "text",
                "body": body,
            },
        },
        separators=(",", ":"),
    ).encode()


def comments(fake: FakeProvidersServer) -> list[list[str]]:
    state = fake.control.state()["helpwave"]
    return [[c["text"] for c in state["comments"][tid]] for tid in state["tickets"]]


def test_an_awalchat_open_does_not_wait_for_the_conversations_helpwave_calls(
    redis_server: RedisServer, fake_providers: FakeProvidersServer, tmp_path: Path
) -> None:
    shutil.copy(RULES_DIR / "10-helpwave-mirror.yaml", tmp_path)
    (tmp_path / "20-open.yaml").write_text(OPEN_ON_HELP)
    fake_providers.control.configure(helpwave={"delay": DELAY})
    texts = ["hello", "my order", "is late", "help please"]
    with Deployment(redis_server.url, env=fake_providers.env(), rules=tmp_path) as dep:
        for n, text in enumerate(texts[:-1]):
            assert dep.post(message(text, n)).status_code == 202
        time.sleep(DELAY)  # the HelpWave lane is busy with the first message now
        posted = time.time()
        assert dep.post(message(texts[-1], 3)).status_code == 202
        dep.wait_for(
            lambda: bool(fake_providers.control.calls("awalchat")), timeout=30, what="the open"
        )
        dep.wait_for(lambda: comments(fake_providers) == [texts], timeout=90, what="every comment")
    awalchat = fake_providers.control.calls("awalchat")
    helpwave = fake_providers.control.calls("helpwave")
    assert [json.loads(c.body)["route"] for c in awalchat] == ["openTicket"]
    opened = awalchat[0].time
    print(
        f"\nAwalChat open {opened - posted:.2f} s after its webhook; HelpWave calls ran "
        f"{helpwave[0].time - posted:+.1f} s .. {helpwave[-1].time + DELAY - posted:+.1f} s"
    )
    # the open was made while that conversation's HelpWave calls were still running
    assert opened < helpwave[-1].time
    assert sum(c.path == "/api/v1/tickets" and c.method == "POST" for c in helpwave) == 1
