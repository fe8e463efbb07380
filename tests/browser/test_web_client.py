"""Browser tests of the web client's conversation features: unread counts
and mentions across rooms on one connection, a session that outlives the
tab, safe rich text, grouping and day separators, the phone layout, dark
mode and a banner that clears itself. Synchronisation is only by
Playwright's auto-waiting expect() and by wait_for-style polls; nothing
sleeps. Screenshots of each layout go to tests/artifacts/."""
import os
import re
import shutil

import pytest
import requests

from .conftest import REPO
from .test_web import (
    RECONNECT_TIMEOUT, api_create_room, api_token, login, message, open_room, register, seed_messages, send,
)

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import expect  # noqa: E402

DESKTOP = (1280, 800)
PHONE = (390, 844)


def join_room(server, token, room_id):
    r = requests.post(f"{server.url}/api/join-room", json={"roomId": room_id},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text


def room_item(page, room_id):
    return page.locator(f'#room-list [data-room-id="{room_id}"]')


def luminance(css_colour):
    """Relative luminance (0 black .. 1 white) of an rgb()/rgba() colour."""
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+(?:\.\d+)?", css_colour)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def background_of(page, selector):
    return page.eval_on_selector(selector, "el => getComputedStyle(el).backgroundColor")


def text_lines_visible(page):
    """How many lines of message text fit in the message list's visible height."""
    return page.evaluate("""() => {
      const box = document.getElementById('messages');
      const text = box.querySelector('.message .text');
      return box.clientHeight / parseFloat(getComputedStyle(text).lineHeight);
    }""")


@pytest.fixture
def team(chatd, browser):
    """alice, bob and carol in two rooms with a conversation in the first:
    what a screenshot should show. Returns (rooms, say): say(who, room,
    *texts) posts more."""
    for name in ("alice", "bob", "carol"):
        register(chatd, name)
    tokens = {name: api_token(chatd, name) for name in ("alice", "bob", "carol")}
    rooms = {name: api_create_room(chatd, tokens["alice"], name) for name in ("general", "backend", "random")}
    for name in ("bob", "carol"):
        for room_id in rooms.values():
            join_room(chatd, tokens[name], room_id)
    r = requests.patch(f"{chatd.url}/api/rooms/{rooms['general']}", json={"topic": "Releases, deploys and the 0.2 rollout"},
                       headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=10)
    assert r.status_code == 200, r.text
    say = lambda who, room, *texts: seed_messages(browser, chatd, tokens[who], rooms[room], list(texts))  # noqa: E731
    say("bob", "general", "Morning all! The **0.2 release** is tagged.",
        "Release notes: https://example.com/chatd/releases/0.2")
    say("carol", "general", "Nice. Did the `since` replay fix make it in?")
    say("bob", "general", "It did, and the upgrade test runs on both databases now.")
    say("alice", "general", "Great work. I'll roll it out to staging after lunch.",
        "Config for reference:\n```\n[limits]\nmessages_per_minute = 120\nmessage_burst = 30\n```")
    say("carol", "general", "@alice ping me when it is up, I want to try the *new* web client.")
    return rooms, say


def news_in_other_rooms(say):
    """Messages that arrive while alice reads general: unread badges."""
    say("bob", "backend", "Anyone seen the broker reconnect warning in the logs?", "It went away after a restart.")
    say("carol", "random", "@alice lunch at noon?")


# ------------------------------------------------------------------ unread counts and mentions


def test_other_rooms_count_unread_and_mentions_on_one_connection(chatd, pages, browser):
    register(chatd, "alice")
    register(chatd, "bob")
    alice_token, bob_token = api_token(chatd, "alice"), api_token(chatd, "bob")
    lobby = api_create_room(chatd, alice_token, "Lobby")
    side = api_create_room(chatd, alice_token, "Side")

    page = pages()
    login(page, chatd, "alice")
    open_room(page, lobby)
    expect(page).to_have_title("chatd")

    # Messages in the open room raise nothing; in another room, its badge
    # and the tab title count them.
    seed_messages(browser, chatd, bob_token, lobby, ["in the open room"])
    expect(message(page, "in the open room")).to_have_count(1)
    seed_messages(browser, chatd, bob_token, side, ["one", "two"])
    expect(room_item(page, side).locator(".unread")).to_have_text("2")
    expect(page).to_have_title("(2) chatd")
    expect(room_item(page, lobby).locator(".unread")).to_have_count(0)
    expect(room_item(page, side)).not_to_have_class(re.compile(r"\bmentioned\b"))

    # A mention (any case, at a word start) marks the room; an address does not.
    seed_messages(browser, chatd, bob_token, side, ["write to bob@alice.example"])
    expect(room_item(page, side).locator(".unread")).to_have_text("3")
    expect(room_item(page, side)).not_to_have_class(re.compile(r"\bmentioned\b"))
    seed_messages(browser, chatd, bob_token, side, ["@ALICE, a look at this?"])
    expect(room_item(page, side).locator(".unread")).to_have_text("4")
    expect(room_item(page, side)).to_have_class(re.compile(r"\bmentioned\b"))
    expect(page).to_have_title("(4) chatd")

    # Opening the room reads it: the badge, the mark and the count go, and
    # the messages that arrived while it was closed are all there.
    open_room(page, side)
    expect(room_item(page, side).locator(".unread")).to_have_count(0)
    expect(room_item(page, side)).not_to_have_class(re.compile(r"\bmentioned\b"))
    expect(page).to_have_title("chatd")
    for text in ("one", "two", "write to bob@alice.example", "@ALICE, a look at this?"):
        expect(message(page, text)).to_have_count(1)
    expect(page.locator("#messages .mention.me")).to_have_text("@ALICE")


def test_mentions_notify_while_the_tab_is_hidden(chatd, pages, browser):
    register(chatd, "alice")
    register(chatd, "bob")
    room = api_create_room(chatd, api_token(chatd, "alice"), "Lobby")
    bob_token = api_token(chatd, "bob")
    page = pages()
    # The tab is made hidden and Notification a recorder: headless Chromium
    # has neither a window to hide nor a desktop to notify.
    page.add_init_script("""
      window.__hidden = false;
      window.__notes = [];
      Object.defineProperty(document, 'hidden', { get: () => window.__hidden });
      window.Notification = class {
        static permission = 'granted';
        constructor(title, options) { window.__notes.push({ title, body: options.body }); }
        addEventListener() {}
        close() {}
      };
    """)
    login(page, chatd, "alice")
    open_room(page, room)

    seed_messages(browser, chatd, bob_token, room, ["@alice while you look"])
    expect(message(page, "@alice while you look")).to_have_count(1)
    page.evaluate("() => { window.__hidden = true; }")
    seed_messages(browser, chatd, bob_token, room, ["no mention here", "@alice are you there?"])
    expect(message(page, "@alice are you there?")).to_have_count(1)
    assert page.evaluate("() => window.__notes") == [
        {"title": "bob mentioned you in Lobby", "body": "@alice are you there?"}]


def test_notification_permission_is_offered_once(chatd, pages):
    register(chatd, "alice")
    page = pages()
    page.add_init_script("""
      window.__asked = 0;
      window.Notification = class {
        static permission = 'default';
        static requestPermission() { window.__asked += 1; return Promise.resolve('denied'); }
      };
    """)
    login(page, chatd, "alice")
    expect(page.locator("#notify-button")).to_be_visible()
    page.click("#notify-button")
    expect(page.locator("#notify-offer")).to_be_hidden()
    assert page.evaluate("() => window.__asked") == 1
    page.reload()
    expect(page.locator("#connection-status")).to_have_text("online")
    expect(page.locator("#notify-offer")).to_be_hidden()


# ------------------------------------------------------------------ session


def test_session_survives_a_new_tab_and_a_reload_and_logout_ends_it(chatd, pages):
    register(chatd, "alice")
    first = pages()
    sockets = []
    first.on("websocket", lambda ws: sockets.append(ws.url))
    login(first, chatd, "alice")
    # The token goes in the socket's first frame, never in its URL (logs).
    assert sockets and not any("token" in url for url in sockets), sockets

    second = first.context.new_page()
    errors = []
    second.on("pageerror", lambda exc: errors.append(str(exc)))
    second.goto(chatd.url)
    expect(second.locator("#connection-status")).to_have_text("online")
    expect(second.locator("#current-user")).to_have_text("alice")
    expect(second.locator("#login-button")).to_be_hidden()
    second.reload()
    expect(second.locator("#connection-status")).to_have_text("online")

    # Logging out in one tab ends the session in every tab.
    second.click("#logout-button")
    expect(second.locator("#login-button")).to_be_visible()
    expect(first.locator("#login-button")).to_be_visible()
    expect(first.locator("#connection-status")).to_have_text("offline")
    assert first.evaluate("() => localStorage.getItem('chatd.token')") is None
    first.reload()
    expect(first.locator("#login-button")).to_be_visible()
    expect(first.locator("#connection-status")).to_have_text("offline")
    assert errors == []


# ------------------------------------------------------------------ messages


def test_links_and_markdown_are_elements_and_html_stays_text(chatd, pages):
    register(chatd, "alice")
    room = api_create_room(chatd, api_token(chatd, "alice"), "Lobby")
    page = pages()
    login(page, chatd, "alice")
    open_room(page, room)

    texts = {
        "link": "docs at https://example.com/a_(b)?c=1. ok",
        "javascript": "javascript:alert(1)",
        "fake link": "[click](javascript:alert(1))",
        "markdown": "**bold** and `code` and *soft*",
        "html": "**<img src=x onerror=alert(1)>**",
        "block": "before\n```\nif (a < b) {\n  go();\n}\n```\nafter",
    }
    for text in texts.values():
        send(page, text)
    # What each shows as text: the markers and fences are drawn, not shown.
    shown_as = {**texts, "markdown": "bold and code and soft", "html": "<img src=x onerror=alert(1)>",
                "block": "beforeif (a < b) {\n  go();\n}after"}  # the block stands on its own lines
    for key in texts:
        expect(message(page, shown_as[key])).to_have_count(1)

    link = message(page, texts["link"]).locator("a")
    expect(link).to_have_count(1)
    expect(link).to_have_attribute("href", "https://example.com/a_(b)?c=1")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_text("https://example.com/a_(b)?c=1")
    for key in ("javascript", "fake link"):
        expect(message(page, texts[key]).locator("a")).to_have_count(0)
    assert page.locator('#messages a[href^="javascript"]').count() == 0

    rich = message(page, shown_as["markdown"])
    expect(rich.locator(".text strong")).to_have_text("bold")
    expect(rich.locator(".text code")).to_have_text("code")
    expect(rich.locator(".text em")).to_have_text("soft")

    html = message(page, shown_as["html"])
    expect(html.locator(".text strong")).to_have_text("<img src=x onerror=alert(1)>")
    assert page.locator("#messages img").count() == 0

    block = page.locator("#messages .message .text pre code")
    expect(block).to_have_count(1)
    expect(block).to_have_text("if (a < b) {\n  go();\n}")
    assert page.dialogs == []


def test_grouping_day_separator_long_messages_and_new_message_indicator(chatd, pages, browser):
    register(chatd, "alice")
    register(chatd, "bob")
    alice_token, bob_token = api_token(chatd, "alice"), api_token(chatd, "bob")
    room = api_create_room(chatd, alice_token, "Lobby")
    long_text = "\n".join(f"line {i}" for i in range(30))
    seed_messages(browser, chatd, bob_token, room, ["first from bob", "second from bob"])
    seed_messages(browser, chatd, alice_token, room, ["then alice", long_text])
    seed_messages(browser, chatd, bob_token, room, [f"filler {i}" for i in range(30)])

    page = pages()
    login(page, chatd, "alice")
    open_room(page, room)
    shown = page.locator("#messages .message")
    expect(shown).to_have_count(34)

    # One separator, before the first message of the day.
    expect(page.locator("#messages .day-separator")).to_have_count(1)
    expect(page.locator("#messages .day-separator + .message")).to_have_attribute("data-message-id", re.compile(r"\d+"))
    assert page.evaluate("""() => {
      const sep = document.querySelector('#messages .day-separator');
      return sep.nextElementSibling === document.querySelector('#messages .message');
    }""")
    # A sender's consecutive messages are grouped, each still a message of its own.
    senders = shown.evaluate_all("els => els.map(e => [e.dataset.sender, e.classList.contains('continued')])")
    assert senders[:4] == [["bob", False], ["bob", True], ["alice", False], ["alice", True]]

    # A long message is folded; the button unfolds it, its text untouched.
    long_message = shown.nth(3)
    expect(long_message).to_have_class(re.compile(r"\bcollapsed\b"))
    expect(long_message.locator(".text")).to_have_text(long_text)
    folded = long_message.locator(".text").evaluate("el => el.clientHeight")
    long_message.locator(".show-more").click()
    expect(long_message).not_to_have_class(re.compile(r"\bcollapsed\b"))
    assert long_message.locator(".text").evaluate("el => el.clientHeight") > folded

    # Scrolled up, a new message shows the indicator rather than moving the view.
    expect(page.locator("#new-messages")).to_be_hidden()
    page.locator("#messages").evaluate("el => { el.scrollTop = 200; }")
    seed_messages(browser, chatd, bob_token, room, ["while alice reads back"])
    expect(message(page, "while alice reads back")).to_have_count(1)
    expect(page.locator("#new-messages")).to_be_visible()
    page.click("#new-messages")
    expect(page.locator("#new-messages")).to_be_hidden()
    assert page.locator("#messages").evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") < 5


# ------------------------------------------------------------------ layout and colours


def screenshot(page, artifacts, name):
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), animations="disabled")
    if os.environ.get("CHATD_DOCS_SCREENSHOT") and name in ("desktop-light", "phone-light"):
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(path, REPO / "docs" / f"screenshot-{name.split('-')[0]}.png")


def test_desktop_light_and_dark(chatd, pages, team, artifacts):
    rooms, say = team
    bob = pages()
    login(bob, chatd, "bob")
    page = pages(viewport=DESKTOP)
    login(page, chatd, "alice")
    open_room(page, rooms["general"])
    expect(page.locator("#messages .message")).to_have_count(7)
    news_in_other_rooms(say)
    expect(room_item(page, rooms["backend"]).locator(".unread")).to_have_text("2")
    expect(room_item(page, rooms["random"])).to_have_class(re.compile(r"\bmentioned\b"))
    expect(page.locator('#members [data-username="bob"]')).to_have_class(re.compile(r"\bonline\b"))
    page.fill("#message-input", "On it — deploying now.")
    screenshot(page, artifacts, "desktop-light")
    assert luminance(background_of(page, "body")) > 0.8
    assert luminance(background_of(page, ".sidebar")) > 0.8

    page.emulate_media(color_scheme="dark")
    expect(page.locator("body")).to_have_css("color-scheme", "dark")
    for selector in ("body", ".room", ".sidebar", ".members-pane", ".topbar"):
        assert luminance(background_of(page, selector)) < 0.2, selector
    text = page.eval_on_selector("#messages .message .text", "el => getComputedStyle(el).color")
    assert luminance(text) > 0.7
    screenshot(page, artifacts, "desktop-dark")


def test_phone_layout_gives_the_messages_the_height(chatd, pages, team, artifacts):
    rooms, say = team
    page = pages(viewport=PHONE)
    login(page, chatd, "alice")
    sidebar, members = page.locator("#sidebar"), page.locator("#members-pane")
    expect(sidebar).to_be_hidden()

    # The room list slides in from its button; choosing a room closes it.
    page.click("#rooms-toggle")
    expect(sidebar).to_be_visible()
    expect(page.locator("#rooms-toggle")).to_have_attribute("aria-expanded", "true")
    room_item(page, rooms["general"]).click()
    expect(sidebar).to_be_hidden()
    expect(page.locator("#connection-status")).to_have_text("online")
    expect(page.locator("#messages .message")).to_have_count(7)
    news_in_other_rooms(say)
    expect(page).to_have_title("(3) chatd")
    screenshot(page, artifacts, "phone-light")

    # The message list has the room: at least 12 lines of text, and the
    # whole width.
    assert text_lines_visible(page) >= 12
    box = page.locator("#messages").bounding_box()
    assert box["width"] >= PHONE[0] - 2

    # Members come from the other side; Escape closes, keyboard focus returns.
    page.click("#members-toggle")
    expect(members).to_be_visible()
    expect(members.locator('[data-username="alice"]')).to_have_class(re.compile(r"\bonline\b"))
    screenshot(page, artifacts, "phone-members")
    page.keyboard.press("Escape")
    expect(members).to_be_hidden()
    expect(page.locator("#members-toggle")).to_be_focused()

    page.emulate_media(color_scheme="dark")
    assert luminance(background_of(page, ".room")) < 0.2
    screenshot(page, artifacts, "phone-dark")
    page.click("#rooms-toggle")
    expect(sidebar).to_be_visible()
    screenshot(page, artifacts, "phone-dark-rooms")
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()


def test_unreachable_banner_clears_when_the_server_is_back(chatd, pages):
    register(chatd, "alice")
    page = pages()
    login(page, chatd, "alice")
    error = page.locator("#error")

    chatd.stop()
    expect(page.locator("#connection-status")).to_have_text("reconnecting")
    page.click("#refresh-rooms-button")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Cannot reach the chat server")

    chatd.start()  # same port, same database
    expect(page.locator("#connection-status")).to_have_text("online", timeout=RECONNECT_TIMEOUT)
    expect(error).to_be_hidden()
