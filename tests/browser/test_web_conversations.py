"""Browser tests of the web client's second half (PROTOCOL.md section 11):
rooms with walls on the page (private rooms, direct messages that appear
live, topics, roles and moderation), message changes between two browsers
(edit, react, delete), replies, search, and unread counts kept by the
server. Features whose server side a chatd lacks are skipped with a reason
found by asking that chatd, not assumed. Synchronisation is only by
Playwright's auto-waiting expect(); nothing sleeps. Every step leaves a
screenshot in tests/artifacts/."""
import re
from urllib.parse import quote

import pytest
import requests

from .test_web import XSS, api_create_room, api_token, login, message, open_room, register, seed_messages, send

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import expect  # noqa: E402

# A valid emoji name (1-32 characters, no whitespace) that is HTML: a "/"
# would not do, the URL path it travels in splits on it.
XSS_EMOJI = "<iframe>"


# ------------------------------------------------------------------ helpers


def call(server, token, method, path, body=None):
    return requests.request(method, f"{server.url}{path}", json=body,
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)


def join(server, token, room_id):
    r = call(server, token, "POST", "/api/join-room", {"roomId": room_id})
    assert r.status_code == 200, r.text


def room_item(page, room_id):
    return page.locator(f'#room-list [data-room-id="{room_id}"]')


def shot(page, artifacts, name):
    page.screenshot(path=str(artifacts / f"conversations-{name}.png"), animations="disabled")


def by_id(page, message_id):
    return page.locator(f'#messages .message[data-message-id="{message_id}"]')


def in_view(page, locator):
    """The element lies inside #messages' visible box."""
    return locator.evaluate("""el => {
      const box = document.getElementById('messages').getBoundingClientRect();
      const r = el.getBoundingClientRect();
      return r.bottom > box.top && r.top < box.bottom;
    }""")


def no_injected_nodes(page):
    assert page.locator("body img, body script, body iframe").count() == 0
    assert page.locator('a[href^="javascript"]').count() == 0
    assert page.dialogs == []


def require_room_log(server, token, room_id):
    r = call(server, token, "GET", f"/api/rooms/{room_id}/events?after=0")
    if r.status_code != 200:
        pytest.skip(f"this chatd has no room log yet (GET /api/rooms/:id/events answers {r.status_code}): "
                    "edit, delete, react and replyTo come with issue 13")


def require_unread(server, token, room_id):
    items = call(server, token, "GET", "/api/rooms").json()
    item = next(i for i in items if i["roomId"] == room_id)
    if "unread" not in item:
        pytest.skip("this chatd keeps no read markers yet (GET /api/rooms items have no `unread`): issue 15")


def require_search(server, token):
    r = call(server, token, "GET", "/api/search?q=probe")
    if r.status_code != 200:
        pytest.skip(f"this chatd has no search yet (GET /api/search answers {r.status_code}): issue 15")


@pytest.fixture
def pair(chatd, pages):
    """alice (the room's owner) and bob, each on a page with the room open."""
    register(chatd, "alice")
    register(chatd, "bob")
    tokens = {"alice": api_token(chatd, "alice"), "bob": api_token(chatd, "bob")}
    room = api_create_room(chatd, tokens["alice"], "Lobby")
    join(chatd, tokens["bob"], room)
    alice, bob = pages(), pages()
    for page, name in ((alice, "alice"), (bob, "bob")):
        login(page, chatd, name)
        open_room(page, room)
    return room, tokens, alice, bob


# ------------------------------------------------------------------ rooms with walls


def test_private_room_and_a_direct_room_that_appears_live(chatd, pages, artifacts):
    register(chatd, "alice")
    register(chatd, "bob")
    bob_token = api_token(chatd, "bob")
    alice, bob = pages(), pages()
    login(alice, chatd, "alice")
    login(bob, chatd, "bob")

    # A private room: made from the page, listed with its kind, unseen by bob.
    alice.fill("#new-room-name", "Secret plans")
    alice.check("#new-room-private")
    alice.click("#create-room-button")
    private = alice.locator('#room-list [data-kind="private"]')
    expect(private).to_have_count(1)
    expect(private).to_have_attribute("aria-current", "true")
    expect(alice.locator("#room-title")).to_have_text("Secret plans")
    expect(alice.locator('#members [data-username="alice"]')).to_have_attribute("data-role", "owner")
    private_id = private.get_attribute("data-room-id")
    assert private_id not in [r["roomId"] for r in call(chatd, bob_token, "GET", "/api/rooms").json()]
    shot(alice, artifacts, "private-room")

    # A direct room by username: bob's page lists it at once (room-added),
    # and counts what alice writes there.
    alice.fill("#dm-username", "bob")
    alice.click("#dm-button")
    dm = alice.locator('#room-list [data-kind="direct"]')
    expect(dm).to_have_count(1)
    expect(dm).to_have_text(re.compile("bob"))
    expect(alice.locator("#room-title")).to_have_text("bob")
    dm_id = dm.get_attribute("data-room-id")
    bob_dm = room_item(bob, dm_id)
    expect(bob_dm).to_have_attribute("data-kind", "direct")
    expect(bob_dm).to_have_text(re.compile("alice"))
    send(alice, "hi bob, a word in private?")
    expect(message(alice, "hi bob, a word in private?")).to_have_count(1)
    expect(bob_dm.locator(".unread")).to_have_text("1")
    shot(bob, artifacts, "dm-arrives")
    bob_dm.click()
    expect(message(bob, "hi bob, a word in private?")).to_have_count(1)
    expect(bob_dm.locator(".unread")).to_have_count(0)

    # Asking again opens the same room, from either side.
    bob.fill("#dm-username", "alice")
    bob.click("#dm-button")
    expect(bob.locator('#room-list [data-kind="direct"]')).to_have_count(1)
    expect(bob.locator("#room-title")).to_have_text("alice")
    shot(bob, artifacts, "dm-open")


def test_topic_roles_and_moderation(chatd, pages, artifacts):
    for name in ("alice", "bob", "carol"):
        register(chatd, name)
    tokens = {name: api_token(chatd, name) for name in ("alice", "bob", "carol")}
    room = api_create_room(chatd, tokens["alice"], "Lobby")
    for name in ("bob", "carol"):
        join(chatd, tokens[name], room)
    alice, bob = pages(), pages()
    for page, name in ((alice, "alice"), (bob, "bob")):
        login(page, chatd, name)
        open_room(page, room)

    # Roles on the members; moderation buttons only for the owner, only on lower ranks.
    members = alice.locator("#members")
    expect(members.locator('[data-username="alice"]')).to_have_attribute("data-role", "owner")
    expect(members.locator('[data-username="carol"]')).to_have_attribute("data-role", "member")
    expect(members.locator('[data-username="carol"] .remove-button')).to_have_count(1)
    expect(members.locator('[data-username="alice"] .remove-button')).to_have_count(0)
    expect(bob.locator("#members .remove-button, #members .ban-button")).to_have_count(0)

    # The owner edits the topic in place; bob sees it change live; HTML stays text.
    topic = f"Release talk {XSS}"
    alice.click("#room-topic")
    alice.fill("#room-topic-input", topic)
    alice.press("#room-topic-input", "Enter")
    expect(alice.locator("#room-topic")).to_have_text(topic)
    expect(bob.locator("#room-topic")).to_have_text(topic)
    bob.click("#room-topic")
    expect(bob.locator("#room-topic-input")).to_have_count(0)
    shot(alice, artifacts, "topic")

    # Remove carol (with a confirmation that can be cancelled), then ban bob.
    members.locator('[data-username="carol"]').hover()
    members.locator('[data-username="carol"] .remove-button').click()
    expect(alice.locator("#confirm-dialog")).to_be_visible()
    shot(alice, artifacts, "confirm-remove")
    alice.click("#confirm-cancel")
    expect(alice.locator("#confirm-dialog")).to_be_hidden()
    expect(members.locator('[data-username="carol"]')).to_have_count(1)
    members.locator('[data-username="carol"]').hover()
    members.locator('[data-username="carol"] .remove-button').click()
    alice.click("#confirm-ok")
    expect(members.locator('[data-username="carol"]')).to_have_count(0)
    members.locator('[data-username="bob"]').hover()
    members.locator('[data-username="bob"] .ban-button').click()
    alice.click("#confirm-ok")
    expect(members.locator('[data-username="bob"]')).to_have_count(0)

    # bob is told and the room closes on his page; joining again is refused.
    expect(bob.locator("#error")).to_contain_text("banned")
    expect(bob.locator("#room-title")).to_have_text("No room open")
    shot(bob, artifacts, "banned")
    assert call(chatd, tokens["bob"], "POST", "/api/join-room", {"roomId": room}).status_code == 403
    no_injected_nodes(alice)
    no_injected_nodes(bob)


# ------------------------------------------------------------------ the room log


def test_edit_react_and_delete_between_two_browsers(chatd, pair, artifacts):
    room, tokens, alice, bob = pair
    require_room_log(chatd, tokens["alice"], room)
    send(bob, "hello from bob")
    send(alice, "my tpyo")
    bobs = message(alice, "hello from bob")
    expect(bobs).to_have_count(1)
    expect(message(bob, "my tpyo")).to_have_count(1)
    expect(bobs).to_have_attribute("data-sender", "bob")

    # Who may do what: own messages edit and delete; the owner deletes any.
    mine = message(alice, "my tpyo")
    expect(mine.locator(".edit-button")).to_have_count(1)
    expect(mine.locator(".delete-button")).to_have_count(1)
    expect(bobs.locator(".edit-button")).to_have_count(0)
    expect(bobs.locator(".delete-button")).to_have_count(1)
    alices_on_bob = message(bob, "my tpyo")
    expect(alices_on_bob.locator(".edit-button")).to_have_count(0)
    expect(alices_on_bob.locator(".delete-button")).to_have_count(0)

    # Edit: Escape cancels, Enter saves; bob sees the new text and the mark.
    mine.hover()
    mine.locator(".edit-button").click()
    expect(mine.locator("textarea.edit-input")).to_be_focused()
    alice.keyboard.press("Escape")
    expect(alice.locator("textarea.edit-input")).to_have_count(0)
    alice.locator("#message-input").focus()
    alice.keyboard.press("ArrowUp")  # Up in the empty composer edits the last own message
    editor = alice.locator("#messages textarea.edit-input")
    expect(editor).to_be_focused()
    shot(alice, artifacts, "editing")
    editor.fill("my typo, fixed")
    editor.press("Enter")
    fixed_on_bob = message(bob, "my typo, fixed")
    expect(fixed_on_bob).to_have_count(1)
    expect(fixed_on_bob.locator(".edited")).to_have_count(1)
    expect(fixed_on_bob.locator(".text .edited")).to_have_count(0)
    expect(message(alice, "my typo, fixed").locator(".edited")).to_have_count(1)

    # React from the picker; the other toggles their own on the same chip.
    fixed_on_bob.hover()
    fixed_on_bob.locator(".react-button").click()
    picker = fixed_on_bob.locator(".emoji-picker")
    for emoji in ("👍", "❤️", "😂", "🎉", "😮", "😢"):
        expect(picker.locator(f'.emoji[data-emoji="{emoji}"]')).to_have_count(1)
    shot(bob, artifacts, "picker")
    picker.locator('.emoji[data-emoji="👍"]').click()
    expect(picker).to_have_count(0)
    chip = message(alice, "my typo, fixed").locator('.reaction[data-emoji="👍"]')
    expect(chip.locator(".count")).to_have_text("1")
    expect(chip).not_to_have_class(re.compile(r"\bmine\b"))
    expect(fixed_on_bob.locator('.reaction[data-emoji="👍"]')).to_have_class(re.compile(r"\bmine\b"))
    chip.click()
    expect(chip.locator(".count")).to_have_text("2")
    expect(chip).to_have_class(re.compile(r"\bmine\b"))
    expect(fixed_on_bob.locator('.reaction[data-emoji="👍"] .count')).to_have_text("2")
    shot(alice, artifacts, "reactions")
    chip.click()
    expect(chip.locator(".count")).to_have_text("1")
    expect(chip).not_to_have_class(re.compile(r"\bmine\b"))

    # A reaction named like HTML (set by a script) is only text.
    mid = message(alice, "my typo, fixed").get_attribute("data-message-id")
    r = call(chatd, tokens["bob"], "PUT", f"/api/rooms/{room}/messages/{mid}/reactions/{quote(XSS_EMOJI, safe='')}")
    assert r.status_code == 200, r.text
    odd = by_id(alice, mid).locator(".reaction").filter(has_text=XSS_EMOJI)
    expect(odd).to_have_count(1)
    expect(odd).to_have_attribute("data-emoji", XSS_EMOJI)

    # The owner deletes bob's message after confirming; it leaves both pages.
    bobs.hover()
    bobs.locator(".delete-button").click()
    expect(alice.locator("#confirm-dialog")).to_be_visible()
    alice.click("#confirm-ok")
    expect(message(bob, "hello from bob")).to_have_count(0)
    expect(bobs).to_have_count(0)
    shot(bob, artifacts, "deleted")
    no_injected_nodes(alice)
    no_injected_nodes(bob)


def test_reply_quote_and_jump_to_an_original_not_loaded(chatd, pages, browser, artifacts):
    register(chatd, "alice")
    register(chatd, "bob")
    alice_token, bob_token = api_token(chatd, "alice"), api_token(chatd, "bob")
    room = api_create_room(chatd, alice_token, "Lobby")
    join(chatd, bob_token, room)
    require_room_log(chatd, alice_token, room)
    [original] = seed_messages(browser, chatd, bob_token, room, [f"the original {XSS}"])
    seed_messages(browser, chatd, bob_token, room, [f"filler {i}" for i in range(60)])
    r = call(chatd, bob_token, "POST", f"/api/rooms/{room}/messages", {"message": "about that", "replyTo": original})
    assert r.status_code == 201, r.text

    alice = pages()
    login(alice, chatd, "alice", query="?pageSize=20")
    open_room(alice, room)
    reply = message(alice, "about that")
    expect(reply.locator(".reply-quote")).to_have_attribute("data-message-id", str(original))
    expect(by_id(alice, original)).to_have_count(0)  # beyond the first page
    reply.locator(".reply-quote").click()
    expect(by_id(alice, original)).to_have_count(1)
    expect(by_id(alice, original).locator(".text")).to_have_text(f"the original {XSS}")
    expect(by_id(alice, original)).to_be_in_viewport()
    assert in_view(alice, by_id(alice, original))
    shot(alice, artifacts, "jumped-to-original")

    # Replying from the page: the preview, then a quote of the original's text.
    target = by_id(alice, original)
    target.hover()
    target.locator(".reply-button").click()
    expect(alice.locator("#reply-preview")).to_be_visible()
    expect(alice.locator("#reply-preview")).to_contain_text(f"the original {XSS}")
    shot(alice, artifacts, "reply-preview")
    send(alice, "agreed")
    mine = message(alice, "agreed")
    expect(mine.locator(".reply-quote")).to_have_attribute("data-message-id", str(original))
    expect(mine.locator(".reply-quote")).to_contain_text(f"the original {XSS}")
    expect(alice.locator("#reply-preview")).to_be_hidden()
    history = call(chatd, alice_token, "GET", f"/api/chat-history/{room}?limit=1").json()["messages"]
    assert history[-1]["replyTo"] == original
    no_injected_nodes(alice)


# ------------------------------------------------------------------ search and unread


def test_search_opens_the_room_at_an_old_message(chatd, pages, browser, artifacts):
    register(chatd, "alice")
    token = api_token(chatd, "alice")
    require_search(chatd, token)
    here = api_create_room(chatd, token, "Here")
    there = api_create_room(chatd, token, "There")
    [old] = seed_messages(browser, chatd, token, there, [f"the needle {XSS} in an old message"])
    seed_messages(browser, chatd, token, there, [f"hay {i}" for i in range(80)])

    page = pages()
    login(page, chatd, "alice", query="?pageSize=20")
    open_room(page, here)
    page.fill("#search-input", "needle")
    page.press("#search-input", "Enter")
    result = page.locator(f'#search-results .result[data-room-id="{there}"][data-message-id="{old}"]')
    expect(result).to_have_count(1)
    expect(result).to_contain_text(f"the needle {XSS} in an old message")
    shot(page, artifacts, "search-results")
    result.click()
    expect(page.locator("#room-title")).to_have_text("There")
    target = by_id(page, old)
    expect(target).to_have_count(1)
    expect(target).to_be_in_viewport()
    assert in_view(page, target)
    shot(page, artifacts, "search-opened")
    no_injected_nodes(page)


def test_unread_counts_come_from_the_server_and_follow_other_devices(chatd, pages, browser, artifacts):
    register(chatd, "alice")
    register(chatd, "bob")
    alice_token, bob_token = api_token(chatd, "alice"), api_token(chatd, "bob")
    lobby = api_create_room(chatd, alice_token, "Lobby")
    side = api_create_room(chatd, alice_token, "Side")
    join(chatd, bob_token, side)
    require_unread(chatd, alice_token, side)
    # Written while alice was away: only the server can know about these.
    seed_messages(browser, chatd, bob_token, side, ["one", "two", "@alice three"])

    laptop, phone = pages(), pages()
    login(laptop, chatd, "alice")
    login(phone, chatd, "alice")
    for page in (laptop, phone):
        expect(room_item(page, side).locator(".unread")).to_have_text("3")
        expect(room_item(page, side)).to_have_class(re.compile(r"\bmentioned\b"))
        expect(page).to_have_title("(3) chatd")
    shot(laptop, artifacts, "unread-from-server")

    # Live ones add to the server's count.
    open_room(laptop, lobby)
    seed_messages(browser, chatd, bob_token, side, ["four"])
    expect(room_item(laptop, side).locator(".unread")).to_have_text("4")

    # Reading on the laptop clears the phone's badge (read-marker) and the server's count.
    open_room(laptop, side)
    expect(room_item(laptop, side).locator(".unread")).to_have_count(0)
    expect(room_item(phone, side).locator(".unread")).to_have_count(0)
    expect(room_item(phone, side)).not_to_have_class(re.compile(r"\bmentioned\b"))
    expect(phone).to_have_title("chatd")
    items = call(chatd, alice_token, "GET", "/api/rooms").json()
    assert next(i for i in items if i["roomId"] == side)["unread"] == 0
    shot(phone, artifacts, "read-elsewhere")

    # A reload keeps it read.
    phone.reload()
    expect(phone.locator("#connection-status")).to_have_text("online")
    expect(room_item(phone, side)).to_have_count(1)
    expect(room_item(phone, side).locator(".unread")).to_have_count(0)
