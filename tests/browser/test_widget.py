"""<karta-chat> in Chromium: a full chat on the hosted page and on a builder's site, approvals
clicked in the page, a reload mid-reply, a dropped connection, a refused origin, and model
output that tries to inject markup."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

from playwright.sync_api import Page, Route, expect

from karta.testing import Reply, text, tool_use
from tests.browser.conftest import Stage, screenshot

T = TypeVar("T")
REPLY = "karta-chat .message.assistant .bubble"
TIMEOUT = 90_000


def send(page: Page, text: str) -> None:
    """Type a message once the widget is ready for one (no reply running) and press Enter."""
    box = page.locator("karta-chat textarea")
    expect(box).to_be_enabled(timeout=TIMEOUT)
    expect(page.locator("karta-chat .status")).to_have_text("Online", timeout=TIMEOUT)
    box.fill(text)
    box.press("Enter")


def test_a_full_chat_on_the_hosted_page(page: Page, stage: Stage):
    page.goto(stage.hosted)

    expect(page.locator("karta-chat .title")).to_have_text("support-bot", timeout=TIMEOUT)
    expect(page.locator("karta-chat .status")).to_have_text("Online")
    screenshot(page, "hosted-empty")

    send(page, "Which roast is light?")

    expect(page.locator(REPLY).last).to_have_text(
        "(scripted model) You said: Which roast is light?", timeout=TIMEOUT
    )
    expect(page.locator("karta-chat .message.user .bubble")).to_have_text("Which roast is light?")
    screenshot(page, "hosted-chat")
    # An anonymous end user's turn is metered against the embed key (its anonymous cap).
    session = page.evaluate("() => document.querySelector('karta-chat').client.session.id")
    assert eventually(lambda: metered_key(stage, session)) == stage_key_id(stage)


def metered_key(stage: Stage, session_id: str) -> int | None:
    with sqlite3.connect(stage.server.home / "control.db") as db:
        row = db.execute(
            "SELECT embed_key_id FROM usage_events WHERE session_id = ?", (session_id,)
        ).fetchone()
    return row[0] if row else None


def stage_key_id(stage: Stage) -> int:
    with stage.server.control() as control:
        keys = control.get("/v1/projects/support-bot/embed_keys").json()["data"]
    return int(next(k["id"] for k in keys if k["key"] == stage.embed_key))


def eventually(probe: Callable[[], T | None]) -> T:
    deadline = time.monotonic() + TIMEOUT / 1000
    while (value := probe()) is None:
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.1)
    return value


def open_site_chat(page: Page, url: str) -> None:
    page.goto(url)
    launcher = page.get_by_role("button", name="Open chat")
    expect(launcher).to_be_visible(timeout=TIMEOUT)
    launcher.click()
    expect(page.locator("karta-chat .status")).to_have_text("Online", timeout=TIMEOUT)


def test_a_full_chat_on_a_builders_site_whose_css_cannot_reach_the_widget(page: Page, stage: Stage):
    open_site_chat(page, stage.site.origin)
    screenshot(page, "site-open")
    send(page, "Do you ship to Lisbon?")

    reply = page.locator(REPLY).last
    expect(reply).to_have_text("(scripted model) You said: Do you ship to Lisbon?", timeout=TIMEOUT)
    # The page's `* { color: #d00 !important }` and font rules stop at the shadow root. (The
    # CSS assertions retry: a bubble re-rendered as the turn ends is briefly out of the page,
    # and a detached element's computed style is empty.)
    expect(reply).not_to_have_css("color", "rgb(221, 0, 0)")
    expect(reply).to_have_css("font-size", "15px")
    # data-theme-accent on the script tag themes the user's bubble.
    user = page.locator("karta-chat .message.user .bubble")
    expect(user).to_have_css("background-color", "rgb(138, 75, 42)")
    screenshot(page, "site-chat")


def test_an_approval_is_clicked_in_the_page(page: Page, stage: Stage):
    stage.model.enqueue(
        [
            text("Let me write that down."),
            tool_use("Write", {"file_path": "notes/o-17.md", "content": "late parcel\n"}),
        ]
    )
    stage.model.enqueue([text("Noted: the team will follow up on **order 17**.")])
    page.goto(stage.hosted)
    send(page, "My order 17 is late")

    card = page.locator("karta-chat .approval")
    expect(card).to_be_visible(timeout=TIMEOUT)
    expect(card.locator("h2")).to_have_text("Allow Write?")
    expect(card.get_by_role("button")).to_have_text(["Approve once", "Allow for this chat", "Deny"])
    expect(card.get_by_role("button", name="Approve once")).to_be_focused()
    screenshot(page, "approval")

    card.get_by_role("button", name="Approve once").click()

    expect(page.locator(REPLY).last).to_contain_text("Noted: the team", timeout=TIMEOUT)
    expect(page.locator("karta-chat .approval")).to_have_count(0)
    expect(page.locator("karta-chat .tool[data-status=completed]")).to_contain_text("Write")
    expect(page.locator("karta-chat .bubble strong")).to_have_text("order 17")
    session = page.evaluate("() => document.querySelector('karta-chat').client.session.id")
    note = stage.server.workspace(session) / "notes" / "o-17.md"
    assert note.read_text() == "late parcel\n"
    screenshot(page, "approval-done")


LONG = (
    "Our light roast is Sunrise, from the Yirgacheffe region of Ethiopia. It has notes of "
    "jasmine, bergamot and ripe peach, a tea-like body and a bright, clean finish. We roast it "
    "on Mondays and Thursdays and ship it within two working days, in 250 g and 1 kg bags."
)


def test_a_reload_mid_reply_restores_the_conversation_and_finishes_the_reply(
    page: Page, stage: Stage
):
    page.goto(stage.hosted)
    send(page, "Hello")
    expect(page.locator(REPLY).last).to_have_text(
        "(scripted model) You said: Hello", timeout=TIMEOUT
    )
    stage.model.enqueue(Reply([text(LONG)], chunk_delay=0.25))
    send(page, "Tell me about the light roast")
    expect(page.locator(REPLY).last).to_contain_text("Sunrise", timeout=TIMEOUT)
    anonymous = page.evaluate("() => Object.entries(localStorage)")

    page.reload()

    expect(page.locator(REPLY).last).to_have_text(LONG, timeout=TIMEOUT)
    expect(page.locator("karta-chat .message.user .bubble")).to_have_text(
        ["Hello", "Tell me about the light roast"]
    )
    expect(page.locator(REPLY)).to_have_count(2)
    expect(page.locator("karta-chat .status")).to_have_text("Online")
    after = dict(page.evaluate("() => Object.entries(localStorage)"))
    assert {k: v for k, v in anonymous if k.endswith("anonymous_id")}.items() <= after.items()
    screenshot(page, "reloaded")

    # A new reload once the reply is done restores it from the transcript alone.
    page.reload()
    expect(page.locator(REPLY)).to_have_count(2, timeout=TIMEOUT)
    expect(page.locator(REPLY).last).to_have_text(LONG)


def test_a_dropped_connection_resumes_with_last_event_id(page: Page, stage: Stage):
    stage.model.enqueue(Reply([text(LONG)], chunk_delay=0.05))
    resumed: list[str | None] = []

    def cut_after_first_text(route: Route) -> None:
        response = route.fetch()
        body = response.text()
        frames = body.split("\n\n")
        first_text = next(i for i, f in enumerate(frames) if "event: text" in f)
        route.fulfill(response=response, body="\n\n".join(frames[: first_text + 1]) + "\n\n")

    page.route(
        "**/sessions/*/messages",
        lambda route: (
            cut_after_first_text(route) if route.request.method == "POST" else route.continue_()
        ),
    )
    page.on(
        "request",
        lambda r: (
            resumed.append(r.headers.get("last-event-id")) if r.url.endswith("/events") else None
        ),
    )
    page.goto(stage.hosted)
    send(page, "Tell me about the light roast")

    expect(page.locator(REPLY).last).to_have_text(LONG, timeout=TIMEOUT)
    assert resumed and all(int(v or 0) > 0 for v in resumed)
    expect(page.locator("karta-chat .status")).to_have_text("Online")


def test_a_site_whose_origin_is_not_allowed_is_refused(page: Page, stage: Stage):
    page.goto(stage.stranger.origin)
    page.get_by_role("button", name="Open chat").click()

    notice = page.locator("karta-chat .notice")
    expect(notice).to_have_attribute("data-error", "origin_not_allowed", timeout=TIMEOUT)
    expect(notice).to_contain_text("This chat isn't available on this site.")
    expect(page.locator("karta-chat textarea")).to_be_disabled()
    minted = page.evaluate(
        """async ([url, key]) => {
            const r = await fetch(url + "/v1/embed/session-tokens", {
              method: "POST", headers: {"Content-Type": "application/json"},
              body: JSON.stringify({embed_key: key})});
            return [r.status, (await r.json()).error];
        }""",
        [stage.server.url, stage.embed_key],
    )
    assert minted == [403, "origin_not_allowed"]
    screenshot(page, "refused-origin")


HOSTILE = (
    "Here you go <script>window.__pwned = 1</script>\n\n"
    '<img src=x onerror="window.__pwned = 2"> and [a link](javascript:window.__pwned=3) and '
    "[the shop](https://beans.example/shop)\n\n"
    "```html\n<b onmouseover=alert(1)>hi</b>\n```"
)


def test_markup_in_a_model_reply_is_shown_never_run(page: Page, stage: Stage):
    stage.model.enqueue([text(HOSTILE)])
    page.goto(stage.hosted)
    send(page, "show me something")

    reply = page.locator(REPLY).last
    expect(reply).to_contain_text("<script>window.__pwned = 1</script>", timeout=TIMEOUT)
    expect(reply).to_contain_text('<img src=x onerror="window.__pwned = 2">')
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned") is None
    assert reply.locator("script, img, b").count() == 0
    links = reply.locator("a")
    expect(links).to_have_count(1)
    expect(links).to_have_attribute("href", "https://beans.example/shop")
    expect(links).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(reply.locator("pre code")).to_have_text("<b onmouseover=alert(1)>hi</b>")
    screenshot(page, "inert-markup")


def test_a_running_reply_is_stopped_from_the_keyboard(page: Page, stage: Stage):
    stage.model.enqueue(Reply([text(LONG * 3)], chunk_delay=0.3))
    page.goto(stage.hosted)
    expect(page.get_by_role("log", name="Conversation")).to_be_visible(timeout=TIMEOUT)
    send(page, "Tell me everything")
    expect(page.locator(REPLY).last).to_contain_text("Sunrise", timeout=TIMEOUT)
    stop = page.get_by_role("button", name="Stop the reply")
    expect(stop).to_be_visible()

    page.locator("karta-chat textarea").press("Escape")

    expect(page.locator("karta-chat .cancelled-note")).to_have_text("Stopped.", timeout=TIMEOUT)
    expect(page.get_by_role("button", name="Send message")).to_be_visible()
    expect(page.locator("karta-chat .status")).to_have_text("Online")
    assert LONG * 3 not in page.locator(REPLY).last.inner_text()
    screenshot(page, "stopped")
