"""Bots (PROTOCOL section 10): made by chat-admin, let in by their access tokens only,
posting at a rate of their own, against a real chatd on SQLite and PostgreSQL."""
import json
import time

import pytest
import requests

from admin_tool import chat_admin, failed, ok
from helpers import Chatd, Client, Socket, unique

# The users' limit is tiny here so one burst shows who may send more: 3 at
# once, then one a minute.
STRICT = {"CHATD_LIMITS_MESSAGES_PER_MINUTE": "1", "CHATD_LIMITS_MESSAGE_BURST": "3",
          "CHATD_LIMITS_FLOOD_STRIKES": "1000"}
BOT_RATE = 600  # a minute: a burst of 1800 at the users' proportion


@pytest.fixture(scope="module")
def server(database_url):
    chatd = Chatd(database_url, env=STRICT).start()
    yield chatd
    chatd.stop()


def bearer(token):
    return {"Authorization": "Bearer " + token}


def create_bot(database_url, *flags):
    name = unique("bot")
    out = ok(chat_admin(database_url, "bot", "create", name, *flags))
    return name, out


def token_of(out):
    """A token printed alone on stdout: one line, nothing else."""
    lines = out.splitlines()
    assert len(lines) == 1 and out == lines[0] + "\n" and " " not in lines[0], out
    assert len(lines[0]) >= 22
    return lines[0]


@pytest.mark.slow
def test_a_bot_is_made_with_a_token_and_no_password(server, database_url):
    name, out = create_bot(database_url)
    token = token_of(out)
    r = requests.get(server.url + "/api/me", headers=bearer(token), timeout=10)
    assert r.status_code == 200 and r.json()["username"] == name
    # No password lets it in, not even an empty one or the token.
    for password in ("", "correct horse", token):
        r = requests.post(server.url + "/api/login", json={"username": name, "password": password},
                          timeout=10)
        assert r.status_code == 401, r.text
    users = {u["username"]: u for u in json.loads(ok(chat_admin(database_url, "user", "list",
                                                                "--json")))}
    assert users[name]["bot"] is True
    assert all(u["bot"] is False for n, u in users.items() if not n.startswith("bot"))
    table = ok(chat_admin(database_url, "user", "list")).splitlines()
    assert [line.split()[-1] for line in table if line.startswith(name + " ")] == ["yes"]


@pytest.mark.slow
def test_create_json_and_more_tokens(server, database_url):
    name = unique("bot")
    made = json.loads(ok(chat_admin(database_url, "bot", "create", name, "--json")))
    assert set(made) == {"username", "token"} and made["username"] == name
    out = ok(chat_admin(database_url, "bot", "token", name, "--name", "nightly",
                        "--expires-in-days", "7"))
    second = token_of(out)
    third = json.loads(ok(chat_admin(database_url, "bot", "token", name, "--name", "ci",
                                     "--json")))
    assert set(third) == {"username", "token"}
    for token in (made["token"], second, third["token"]):
        r = requests.get(server.url + "/api/me", headers=bearer(token), timeout=10)
        assert r.json()["username"] == name
    r = requests.get(server.url + "/api/tokens", headers=bearer(second), timeout=10)
    listed = r.json()
    assert [t["name"] for t in listed] == ["bot", "nightly", "ci"]
    assert [t["expiresAt"] is None for t in listed] == [True, False, True]
    # chat-admin reads chatd's settings: the users' rate is chatd's.
    bots = {b["username"]: b for b in json.loads(ok(chat_admin(database_url, "bot", "list",
                                                               "--json", env=STRICT)))}
    assert set(bots[name]) == {"username", "createdAt", "rate", "tokens"}
    assert bots[name]["tokens"] == 3 and bots[name]["rate"] == 1
    table = ok(chat_admin(database_url, "bot", "list", env=STRICT)).splitlines()
    assert table[0].split() == ["USERNAME", "CREATED", "RATE", "TOKENS"]
    assert [line.split()[2:] for line in table if line.startswith(name + " ")] == [["1/min", "3"]]


def test_a_bot_posts_and_people_see_it(server, database_url):
    alice = Client(server)
    room = alice.create_room()
    name, out = create_bot(database_url)
    token = token_of(out)
    # A CI job's first step, as the docs give it: join over HTTP with the token.
    r = requests.post(server.url + "/api/join-room", json={"roomId": room},
                      headers=bearer(token), timeout=10)
    assert r.status_code == 200, r.text
    assert room in requests.get(server.url + "/api/me", headers=bearer(token),
                                timeout=10).json()["rooms"]
    bot = Socket(server.ws_url + "?token=" + token)
    bot.join(room)
    watcher = alice.ws(join=room)
    bot.say(room, "build 42 passed")
    seen = watcher.expect("new-message", message="build 42 passed")
    assert seen["sender"] == name
    history = alice.get("/api/chat-history/" + room).json()["messages"]
    assert [(m["sender"], m["message"]) for m in history] == [(name, "build 42 passed")]
    bot.close()
    watcher.close()


def test_a_bots_messages_carry_the_bot_flag(server, database_url):
    alice = Client(server)
    room = alice.create_room()
    _, out = create_bot(database_url)
    bot = Socket(server.ws_url + "?token=" + token_of(out))
    bot.join(room)
    bot.say(room, "beep")
    assert bot.expect("new-message", message="beep").get("bot") is True
    alice.post("/api/join-room", {"roomId": room})
    messages = alice.get("/api/chat-history/" + room).json()["messages"]
    assert messages[-1].get("bot") is True
    sock = alice.ws(join=room)
    sock.say(room, "human")
    sock.expect("new-message", message="human")  # stored: history has it now
    assert "bot" not in alice.get("/api/chat-history/" + room).json()["messages"][-1]


def burst(sock, room, count):
    """Send `count` messages at once; how many were stored (the rest: rate_limited)."""
    for i in range(count):
        sock.say(room, "burst %d" % i)
    stored = limited = 0
    while stored + limited < count:
        event = sock.recv()
        if event["action"] == "new-message":
            stored += 1
        elif event["action"] == "error":
            assert event["code"] == "rate_limited", event
            limited += 1
    return stored


@pytest.mark.slow
def test_a_bot_with_its_own_rate_gets_more_through_than_a_user(server, database_url):
    alice = Client(server)
    room = alice.create_room()
    name, out = create_bot(database_url, "--rate", str(BOT_RATE))
    bots = {b["username"]: b for b in json.loads(ok(chat_admin(database_url, "bot", "list",
                                                               "--json")))}
    assert bots[name]["rate"] == BOT_RATE
    bot = Socket(server.ws_url + "?token=" + token_of(out))
    bot.join(room)
    person = alice.ws(join=room)
    assert burst(person, room, 20) == 3  # the users' burst, then one a minute
    assert burst(bot, room, 20) == 20
    bot.close()
    person.close()


@pytest.mark.slow
def test_bot_delete_ends_its_tokens_and_sockets(server, database_url):
    name, out = create_bot(database_url)
    token = token_of(out)
    sock = Socket(server.ws_url + "?token=" + token)
    failed(chat_admin(database_url, "bot", "delete", name, stdin="y\n"), "--yes")
    assert requests.get(server.url + "/api/me", headers=bearer(token), timeout=10).ok
    assert ok(chat_admin(database_url, "bot", "delete", name, "--yes")) == "deleted bot %s\n" % name
    started = time.monotonic()
    assert sock.close_code(timeout=5) == 1008
    assert time.monotonic() - started < 2.0
    r = requests.get(server.url + "/api/me", headers=bearer(token), timeout=10)
    assert r.status_code == 401
    bots = [b["username"] for b in json.loads(ok(chat_admin(database_url, "bot", "list", "--json")))]
    assert name not in bots


@pytest.mark.slow
def test_failures_exit_1_with_one_line(server, database_url):
    name, _ = create_bot(database_url)
    person = Client(server)
    ghost = unique()
    failed(chat_admin(database_url, "bot", "create", name.upper()), "already taken")
    failed(chat_admin(database_url, "bot", "create", "no spaces"), "3-32 characters")
    failed(chat_admin(database_url, "bot", "token", ghost, "--name", "x"), "No user named")
    failed(chat_admin(database_url, "bot", "token", person.username, "--name", "x"), "not a bot")
    failed(chat_admin(database_url, "bot", "token", name, "--name", " "), "'name'")
    failed(chat_admin(database_url, "bot", "delete", ghost, "--yes"), "No user named")
    failed(chat_admin(database_url, "bot", "delete", person.username, "--yes"), "not a bot")
    assert person.get("/api/me").status_code == 200


@pytest.mark.parametrize("args", [
    ["bot", "create"],
    ["bot", "create", "somebot", "--rate", "0"],
    ["bot", "create", "somebot", "--rate", "many"],
    ["bot", "token", "somebot"],
    ["bot", "token", "somebot", "--name", "x", "--expires-in-days", "0"],
    ["bot", "token", "somebot", "--name", "x", "--expires-in-days", "3651"],
    ["bot", "list", "--yes"],
    ["bot", "nope"],
])
def test_bad_usage_exits_2(args):
    result = chat_admin(None, *args)
    assert result.returncode == 2, result
    assert result.stdout == "" and "Traceback" not in result.stderr


@pytest.mark.slow
def test_every_bot_command_has_help():
    assert "\n  bot " in ok(chat_admin(None, "--help"))
    for command in ("create", "token", "list", "delete"):
        text = ok(chat_admin(None, "bot", command, "--help"))
        assert text.startswith("Usage: chat-admin bot %s" % command), text
        summary = text.split("\n\n")[1].strip()
        assert len(summary) > 20 and summary.endswith((".", ")")), (command, summary)
