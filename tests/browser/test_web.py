"""Browser tests of the web client (chatd/web), driven by the stable ids of
PROTOCOL.md section 5. Synchronisation is only by Playwright's auto-waiting
expect(); nothing here sleeps."""
import re

import pytest
import requests

from .conftest import PASSWORD

pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)")
from playwright.sync_api import expect  # noqa: E402

XSS = "<img src=x onerror=alert(1)>"
RECONNECT_TIMEOUT = 30_000  # ms: backoff tops out at 10 s, plus server start

# ------------------------------------------------------------------ helpers


def register(server, username):
    r = requests.post(f"{server.url}/api/register", json={"username": username, "password": PASSWORD}, timeout=10)
    assert r.status_code == 201, r.text


def api_token(server, username):
    r = requests.post(f"{server.url}/api/login", json={"username": username, "password": PASSWORD}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def api_create_room(server, token, name):
    r = requests.post(f"{server.url}/api/create-room", json={"roomName": name},
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["roomId"]


def api_history(server, token, room_id):
    """Every stored message of the room, oldest first, read page by page."""
    messages, before = [], None
    while True:
        params = {"limit": 500, **({"before": before} if before else {})}
        r = requests.get(f"{server.url}/api/chat-history/{room_id}", params=params,
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200, r.text
        page = r.json()
        messages = page["messages"] + messages
        if not page["hasMore"] or not page["messages"]:
            return messages
        before = page["messages"][0]["id"]


def login(page, server, username, query=""):
    page.goto(f"{server.url}/{query}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    expect(page.locator("#connection-status")).to_have_text("online")


def open_room(page, room_id):
    room = page.locator(f'#room-list [data-room-id="{room_id}"]')
    if room.count() == 0:
        page.click("#refresh-rooms-button")
    room.click()
    expect(page.locator("#connection-status")).to_have_text("online")
    expect(page.locator("#history-edge")).not_to_have_text("")


def send(page, text):
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def message(page, text):
    """The stored (acknowledged) message elements whose text is exactly `text`."""
    return page.locator("#messages .message[data-message-id]").filter(
        has=page.locator(".text", has_text=re.compile("^" + re.escape(text) + "$")))


def shown_messages(page):
    """(id, text) of every stored message on the page, top to bottom."""
    rows = page.eval_on_selector_all(
        "#messages .message[data-message-id]",
        "els => els.map(e => [Number(e.dataset.messageId), e.querySelector('.text').textContent])")
    return [tuple(row) for row in rows]


def seed_messages(browser, server, token, room_id, texts):
    """Post messages over the WebSocket from a scratch page on the server's
    origin (so the same-origin check passes), each awaited before the next."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/healthz")
    ids = page.evaluate(SEED_JS, [token, room_id, texts])
    context.close()
    return ids


SEED_JS = """async ([token, roomId, texts]) => {
  const ws = new WebSocket(`ws://${location.host}/chat?token=${encodeURIComponent(token)}`);
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = () => fail(new Error('socket failed')); });
  const next = (wanted) => new Promise((ok) => {
    const onFrame = (ev) => {
      const m = JSON.parse(ev.data);
      if (wanted(m)) { ws.removeEventListener('message', onFrame); ok(m); }
    };
    ws.addEventListener('message', onFrame);
  });
  const joined = next((m) => m.action === 'joined' || m.action === 'error');
  ws.send(JSON.stringify({action: 'join', roomId}));
  const j = await joined;
  if (j.action === 'error') throw new Error(`join: ${j.code} ${j.message}`);
  const ids = [];
  for (let i = 0; i < texts.length; i++) {
    const clientMsgId = `seed-${i}-${Math.random()}`;
    const answer = next((m) => (m.action === 'new-message' && m.clientMsgId === clientMsgId) || m.action === 'error');
    ws.send(JSON.stringify({action: 'send-message', roomId, message: texts[i], clientMsgId}));
    const m = await answer;
    if (m.action === 'error') throw new Error(`send: ${m.code} ${m.message}`);
    ids.push(m.id);
  }
  ws.close();
  return ids;
}"""


def assert_matches_history(page, history):
    """The page shows exactly the stored messages: none lost, none twice."""
    shown = shown_messages(page)
    ids = [i for i, _ in shown]
    assert len(ids) == len(set(ids)), f"duplicate message ids on the page: {ids}"
    assert ids == sorted(ids), f"messages out of order: {ids}"
    assert shown == [(m["id"], m["message"]) for m in history]
    expect(page.locator("#messages .message.pending")).to_have_count(0)


@pytest.fixture
def two_in_a_room(chatd, pages):
    """alice and bob, each in their own browser context, both in one room."""
    register(chatd, "alice")
    register(chatd, "bob")
    token = api_token(chatd, "alice")
    room_id = api_create_room(chatd, token, "General")
    alice, bob = pages(), pages()
    for page, name in ((alice, "alice"), (bob, "bob")):
        login(page, chatd, name)
        open_room(page, room_id)
    for page in (alice, bob):
        for name in ("alice", "bob"):
            expect(page.locator(f'#members [data-username="{name}"]')).to_have_class(re.compile(r"\bonline\b"))
    return alice, bob, room_id, token

# ------------------------------------------------------------------ tests


def test_two_users_chat_both_ways(chatd, pages, artifacts):
    alice, bob = pages(), pages()

    # alice registers through the page and creates a room.
    alice.goto(chatd.url)
    expect(alice.locator("#connection-status")).to_have_text("offline")
    alice.fill("#username", "alice")
    alice.fill("#password", PASSWORD)
    alice.click("#register-button")
    expect(alice.locator("#connection-status")).to_have_text("online")
    alice.fill("#new-room-name", "TechTalk")
    alice.click("#create-room-button")
    room = alice.locator("#room-list [data-room-id]", has_text="TechTalk")
    expect(room).to_have_count(1)
    room_id = room.get_attribute("data-room-id")
    assert re.fullmatch(r"room_\w+", room_id)

    # bob registers through the page too, and opens the room from the list.
    bob.goto(chatd.url)
    bob.fill("#username", "bob")
    bob.fill("#password", PASSWORD)
    bob.click("#register-button")
    expect(bob.locator("#connection-status")).to_have_text("online")
    open_room(bob, room_id)
    expect(alice.locator('#members [data-username="bob"]')).to_have_class(re.compile(r"\bonline\b"))
    expect(bob.locator('#members [data-username="alice"]')).to_have_class(re.compile(r"\bonline\b"))

    # alice -> bob, sent with the button.
    alice.fill("#message-input", "Hi Bob, welcome to TechTalk!")
    alice.click("#send-button")
    expect(message(bob, "Hi Bob, welcome to TechTalk!")).to_have_count(1)
    expect(message(alice, "Hi Bob, welcome to TechTalk!")).to_have_count(1)

    # bob types: alice sees the typing indicator, which his message clears.
    bob.fill("#message-input", "Thanks")
    bob.locator("#message-input").press_sequentially("!")
    expect(alice.locator("#typing")).to_have_text("bob is typing…")
    bob.press("#message-input", "Shift+Enter")
    bob.locator("#message-input").press_sequentially("Glad to be here.")
    expect(bob.locator("#message-input")).to_have_value("Thanks!\nGlad to be here.")
    bob.press("#message-input", "Enter")
    expect(bob.locator("#message-input")).to_have_value("")
    expect(message(alice, "Thanks!\nGlad to be here.")).to_have_count(1)
    expect(alice.locator("#typing")).to_have_text("")

    alice.fill("#message-input", "How was the trip?")
    alice.press("#message-input", "Enter")
    expect(message(bob, "How was the trip?")).to_have_count(1)

    # Both pages show the same stored messages, in the same order.
    token = api_token(chatd, "alice")
    history = api_history(chatd, token, room_id)
    assert [m["message"] for m in history] == [
        "Hi Bob, welcome to TechTalk!", "Thanks!\nGlad to be here.", "How was the trip?"]
    assert_matches_history(alice, history)
    assert_matches_history(bob, history)
    expect(alice.locator(".message.own")).to_have_count(2)

    alice.screenshot(path=str(artifacts / "chat-view-alice.png"))
    bob.screenshot(path=str(artifacts / "chat-view-bob.png"))

    # bob logs out: alice sees him go offline; bob is back at the login form.
    bob.click("#logout-button")
    expect(bob.locator("#connection-status")).to_have_text("offline")
    expect(bob.locator("#login-button")).to_be_visible()
    expect(alice.locator('#members [data-username="bob"]')).not_to_have_class(re.compile(r"\bonline\b"))


def test_scrollback_loads_three_pages(chatd, pages, browser):
    register(chatd, "alice")
    token = api_token(chatd, "alice")
    room_id = api_create_room(chatd, token, "Archive")
    texts = [f"archived message {i:02d}" for i in range(40)]
    ids = seed_messages(browser, chatd, token, room_id, texts)
    assert ids == sorted(ids)

    # Short enough that one page of 15 grouped one-line messages overflows
    # the list: a list with no scrollbar fetches older pages by itself.
    page = pages(viewport=(1100, 420))
    login(page, chatd, "alice", query="?pageSize=15")
    open_room(page, room_id)
    shown = page.locator("#messages .message")
    box = page.locator("#messages")

    # Latest page first, then one older page per pull to the top.
    expect(shown).to_have_count(15)
    expect(shown.first.locator(".text")).to_have_text("archived message 25")
    expect(shown.last.locator(".text")).to_have_text("archived message 39")
    for count, first in ((30, "archived message 10"), (40, "archived message 00")):
        box.evaluate("el => { el.scrollTop = 0; }")
        expect(shown).to_have_count(count)
        expect(shown.first.locator(".text")).to_have_text(first)
    expect(page.locator("#history-edge")).to_have_text("This is the beginning of the room.")
    assert shown_messages(page) == list(zip(ids, texts))

    # At the beginning, pulling again loads nothing more.
    box.evaluate("el => { el.scrollTop = 0; }")
    expect(shown).to_have_count(40)


def test_user_text_is_shown_literally(chatd, pages):
    register(chatd, "alice")
    register(chatd, "bob")
    alice, bob = pages(), pages()
    login(alice, chatd, "alice")
    login(bob, chatd, "bob")

    alice.fill("#new-room-name", XSS)
    alice.click("#create-room-button")
    room = alice.locator("#room-list [data-room-id]", has_text=XSS)
    expect(room).to_have_count(1)
    expect(alice.locator("#room-title")).to_have_text(XSS)
    room_id = room.get_attribute("data-room-id")
    expect(alice.locator("#connection-status")).to_have_text("online")

    send(alice, XSS)
    expect(message(alice, XSS)).to_have_count(1)

    open_room(bob, room_id)
    expect(bob.locator(f'#room-list [data-room-id="{room_id}"]')).to_have_text(XSS)
    expect(message(bob, XSS)).to_have_count(1)
    send(bob, "<b>bold?</b> & <script>alert(2)</script>")
    expect(message(alice, "<b>bold?</b> & <script>alert(2)</script>")).to_have_count(1)

    # Nothing was parsed as markup: no element was made from user text, and
    # no dialog opened (the pages fixture fails the test on any dialog).
    for page in (alice, bob):
        assert page.locator("#room-list img, #room-title img, #messages img").count() == 0
        assert page.locator("#messages b, #messages script").count() == 0
        assert page.dialogs == []


def test_server_restart_loses_and_duplicates_nothing(chatd, two_in_a_room, browser):
    alice, bob, room_id, token = two_in_a_room
    send(alice, "before restart from alice")
    expect(message(bob, "before restart from alice")).to_have_count(1)
    send(bob, "before restart from bob")
    expect(message(alice, "before restart from bob")).to_have_count(1)

    chatd.stop()
    for page in (alice, bob):
        expect(page.locator("#connection-status")).to_have_text("reconnecting")
    chatd.start()  # same port, same database

    # Posted right after the restart, possibly before the pages are back:
    # each page gets them either live or by the `since` replay, once.
    bob_token = api_token(chatd, "bob")
    seed_messages(browser, chatd, bob_token, room_id, ["while you were away 1", "while you were away 2"])
    for page in (alice, bob):
        expect(page.locator("#connection-status")).to_have_text("online", timeout=RECONNECT_TIMEOUT)

    send(alice, "after restart from alice")
    send(bob, "after restart from bob")
    for page in (alice, bob):
        for text in ("while you were away 1", "while you were away 2",
                     "after restart from alice", "after restart from bob"):
            expect(message(page, text)).to_have_count(1)

    history = api_history(chatd, token, room_id)
    assert len(history) == 6
    assert_matches_history(alice, history)
    assert_matches_history(bob, history)


def test_outbox_sends_what_was_typed_offline_once(chatd, two_in_a_room):
    alice, bob, room_id, token = two_in_a_room
    send(alice, "online before the crash")
    expect(message(bob, "online before the crash")).to_have_count(1)
    # Alice's own copy is acknowledged too (her echo can come after Bob's):
    # else it is still in her outbox at the crash, a third pending message.
    pending = alice.locator("#messages .message.pending")
    expect(pending).to_have_count(0)

    chatd.kill()  # a crash: no close frames, sockets just die
    expect(alice.locator("#connection-status")).to_have_text("reconnecting")
    queued = ["typed while offline 1", "typed while offline 2\nwith a second line"]
    for text in queued:
        send(alice, text)
    expect(pending).to_have_count(2)
    for i in range(2):
        expect(pending.nth(i).locator(".text")).to_have_text(queued[i])
        assert pending.nth(i).get_attribute("data-message-id") is None
        # Mark the element: once acknowledged it must be this same element.
        pending.nth(i).evaluate("(el, i) => { el.dataset.probe = 'pending-' + i; }", i)

    chatd.start()  # same port, same database
    expect(alice.locator("#connection-status")).to_have_text("online", timeout=RECONNECT_TIMEOUT)
    expect(bob.locator("#connection-status")).to_have_text("online", timeout=RECONNECT_TIMEOUT)
    expect(pending).to_have_count(0)
    for page in (alice, bob):
        for text in queued:
            expect(message(page, text)).to_have_count(1)
    for i, text in enumerate(queued):
        expect(message(alice, text)).to_have_attribute("data-probe", f"pending-{i}")

    history = api_history(chatd, token, room_id)
    assert [m["message"] for m in history] == ["online before the crash", *queued]
    assert_matches_history(alice, history)
    assert_matches_history(bob, history)


def test_errors_are_readable_and_a_dead_token_returns_to_login(chatd, pages):
    register(chatd, "alice")
    page = pages()
    page.goto(chatd.url)
    error = page.locator("#error")

    # Bad credentials: the server's sentence is shown, the form stays.
    page.fill("#username", "alice")
    page.fill("#password", "not-the-password")
    page.click("#login-button")
    expect(error).to_be_visible()
    expect(error).not_to_have_text("")
    expect(page.locator("#login-button")).to_be_visible()

    login(page, chatd, "alice")
    expect(error).to_be_hidden()

    # A room name that is taken (case-insensitively) is a 409 with a message.
    api_create_room(chatd, api_token(chatd, "alice"), "Taken")
    page.fill("#new-room-name", "TAKEN")
    page.click("#create-room-button")
    expect(error).to_be_visible()
    expect(error).not_to_have_text("")
    expect(page.locator("#room-list [data-room-id]", has_text="TAKEN")).to_have_count(0)

    # The tab's token is revoked elsewhere: chatd ends its socket, and the
    # page (told `unauthorized` then, or on its reconnect) goes back to the
    # login view with its socket stopped.
    token = page.evaluate("() => localStorage.getItem('chatd.token')")
    r = requests.post(f"{chatd.url}/api/logout", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    expect(page.locator("#login-button")).to_be_visible()
    expect(page.locator("#connection-status")).to_have_text("offline")
    expect(error).to_contain_text("log in again")
    assert page.evaluate("() => localStorage.getItem('chatd.token')") is None

    # A reload with a bad token in the tab's storage: GET /api/me answers
    # 401, and the page shows the login view.
    page.evaluate("() => { localStorage.setItem('chatd.token', 'not-a-token'); localStorage.setItem('chatd.username', 'alice'); }")
    page.reload()
    expect(page.locator("#login-button")).to_be_visible()
    expect(page.locator("#connection-status")).to_have_text("offline")
