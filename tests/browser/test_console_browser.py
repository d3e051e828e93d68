"""The console in a real browser: Debian's chromium driven by Playwright (`executable_path`,
never a downloaded browser) against real processes: redis-server, receiver, Celery worker,
console and the fake providers. Also takes the README's screenshots: into docs/ with
`SCREENSHOTS=docs` (`make screenshots`), else into a scratch folder (a test run leaves the
tree as it found it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.fakes.server import FakeProvidersServer
from tests.helpers_redis import RedisServer
from tests.integration.harness import REPO_ROOT, Deployment

SHOTS = (
    REPO_ROOT / os.environ["SCREENSHOTS"]
    if os.environ.get("SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "ticket-worker-screenshots"
)
SHOTS.mkdir(parents=True, exist_ok=True)

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN, VIEWER = "browser-admin-token", "browser-viewer-token"
HOSTILE = "<script>window.pwned = 1</script> help please"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def webhook(conversation: int, body: str) -> bytes:
    return json.dumps(
        {
            "event": "message.received",
            "timestamp": "2024-05-14T09:30:00Z",
            "data": {
                "message_id": f"wamid.{conversation}.{time.time_ns()}",
                "conversation_id": conversation,
                "from": "966500000001",
                "to": "966110000000",
                "type": "text",
                "body": body,
            },
        }
    ).encode()


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/signin")
    page.fill("input[name=password]", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")


def test_the_console_in_a_browser(
    browser: Browser, redis_server: RedisServer, fake_providers: FakeProvidersServer
) -> None:
    fake = fake_providers.control
    fake.configure(awalchat={"auth": "reject"})  # every AwalChat call refused: dead letters
    env = {**fake_providers.env(), "ADMIN_TOKEN": ADMIN, "VIEWER_TOKEN": VIEWER}
    with Deployment(redis_server.url, env=env, rules=REPO_ROOT / "rules") as dep:
        console = dep.start_console()
        assert dep.post(webhook(7001, HOSTILE)).status_code == 202

        operator = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(operator, console, ADMIN)

        # the dead letter of the refused AwalChat open_ticket
        def letter_listed() -> bool:
            operator.goto(f"{console}/dead-letters")
            return operator.locator("table.letters td.mono a").count() > 0

        dep.wait_for(letter_listed, timeout=60, what="a dead letter")
        operator.goto(f"{console}/")
        operator.screenshot(path=str(SHOTS / "console-overview.png"), full_page=True)

        # find the conversation's decision; its hostile body is shown as text
        operator.goto(f"{console}/decisions")
        operator.fill("input[name=conversation]", "7001")
        operator.click("form.search button")
        operator.wait_for_url("**/decisions?conversation=7001**")
        operator.locator("table.decisions td.mono a").first.click()
        operator.wait_for_url("**/decisions/*")
        assert "open-on-customer-message" in operator.content()
        assert HOSTILE in operator.locator("pre.event").inner_text()
        assert operator.evaluate("typeof window.pwned") == "undefined"
        operator.screenshot(path=str(SHOTS / "console-decision.png"), full_page=True)

        # open the letter; a viewer is refused its replay
        operator.goto(f"{console}/dead-letters")
        operator.locator("table.letters td.mono a").first.click()
        operator.wait_for_url("**/dead-letters/*")
        letter_url = operator.url
        assert "open_ticket" in operator.content()
        viewer = browser.new_page()
        sign_in(viewer, console, VIEWER)
        viewer.goto(letter_url)
        assert viewer.locator("form.act").count() == 0
        csrf = viewer.locator("form.signout input[name=csrf]").get_attribute("value")
        status = viewer.evaluate(
            """async ([url, csrf]) => (await fetch(url + "/replay", {method: "POST",
                 headers: {"Content-Type": "application/x-www-form-urlencoded"},
                 body: "csrf=" + encodeURIComponent(csrf)})).status""",
            [letter_url, csrf],
        )
        assert status == 403

        # a cross-site POST (from the fake providers' origin) is refused
        attacker = browser.new_page()
        attacker.goto(f"{fake_providers.base_url}/_fake/count")
        with attacker.expect_navigation():
            attacker.evaluate(
                """(url) => { const f = document.createElement("form"); f.method = "POST";
                     f.action = url + "/drop"; document.body.appendChild(f); f.submit(); }""",
                letter_url,
            )
        assert "cross-site request refused" in attacker.content()

        # replay it from the page: the provider then sees exactly one call
        fake.configure(awalchat={"auth": "verify"})
        before = fake.count("awalchat")
        operator.goto(letter_url)
        operator.fill("form.act >> nth=0 >> input[name=note]", "provider fixed")
        with operator.expect_navigation():
            operator.click("button[value=replay]")
        assert "replay</strong> by operator" in operator.content()
        dep.wait_for(lambda: fake.count("awalchat") > before, timeout=30, what="the replay")
        time.sleep(2)
        assert fake.count("awalchat") == before + 1
        assert fake.state()["awalchat"]["tickets"]["7001"]["open"]
