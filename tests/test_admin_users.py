"""chat-admin user ...: against the database a running chatd uses, seen by its clients."""
import json
import time

import pytest

from admin_tool import Terminal, chat_admin, failed, ok
from helpers import Client, unique

PASSWORD = "s3cret-enough"
USER_LIST_KEYS = {"username", "createdAt", "disabled", "bot", "roomCount"}


def create_user(database_url, name=None, password=PASSWORD):
    name = name or unique()
    out = ok(chat_admin(database_url, "user", "create", name, "--password-stdin",
                        stdin=password + "\n"))
    assert out == "created user %s\n" % name
    return name


def login_status(server, name, password=PASSWORD):
    user = Client(server, username=name, password=password, register=False)
    return user.post("/api/login", {"username": name, "password": password}, auth=False)


def assert_ended_within_2s(sock, started):
    assert sock.close_code(timeout=5) == 1008
    assert time.monotonic() - started < 2.0


@pytest.mark.slow
def test_created_user_logs_in_over_http_and_is_listed(server, database_url):
    name = create_user(database_url)
    assert login_status(server, name).status_code == 200
    users = json.loads(ok(chat_admin(database_url, "user", "list", "--json")))
    assert all(set(u) == USER_LIST_KEYS for u in users)
    mine = [u for u in users if u["username"] == name]
    assert mine == [{"username": name, "createdAt": mine[0]["createdAt"], "disabled": False,
                     "bot": False, "roomCount": 0}]
    assert mine[0]["createdAt"].endswith("Z")


def test_user_list_counts_rooms_and_reads_as_a_table(server, database_url, client):
    alice = client()
    alice.create_room()
    alice.create_room()
    table = ok(chat_admin(database_url, "user", "list")).splitlines()
    assert table[0].split() == ["USERNAME", "CREATED", "DISABLED", "ROOMS", "BOT"]
    row = [line.split() for line in table if line.startswith(alice.username + " ")]
    assert row and row[0][2:] == ["no", "2", "no"]


def test_password_prompt_asks_twice_without_echo(server, database_url):
    name = unique()
    term = Terminal(["--database", database_url, "user", "create", name])
    term.read_until("Password: ")
    term.type(PASSWORD)
    term.read_until("Repeat for confirmation: ")
    term.type(PASSWORD)
    assert term.finish() == 0
    assert "created user %s" % name in term.screen.decode()
    assert PASSWORD not in term.screen.decode()
    assert login_status(server, name).status_code == 200


@pytest.mark.slow
def test_user_create_failures_say_why_and_change_nothing(server, database_url):
    name = create_user(database_url)
    failed(chat_admin(database_url, "user", "create", name.upper(), "--password-stdin",
                      stdin=PASSWORD + "\n"), "already taken")
    failed(chat_admin(database_url, "user", "create", "no spaces", "--password-stdin",
                      stdin=PASSWORD + "\n"), "3-32 characters")
    failed(chat_admin(database_url, "user", "create", unique(), "--password-stdin",
                      stdin="short\n"), "8-1024 characters")
    failed(chat_admin(database_url, "user", "create", unique(), "--password-stdin"),
           "no password on stdin")
    names = [u["username"] for u in json.loads(ok(chat_admin(database_url, "user", "list", "--json")))]
    assert names.count(name) == 1 and name.upper() not in names


def test_password_is_never_an_argument(database_url):
    result = chat_admin(database_url, "user", "create", unique(), "--password", PASSWORD)
    assert result.returncode == 2 and "No such option" in result.stderr


@pytest.mark.slow
def test_disable_ends_live_sessions_within_2s_and_enable_restores_login(server, database_url,
                                                                        client):
    alice = client()
    sock = alice.ws(join=alice.create_room())
    ok(chat_admin(database_url, "user", "disable", alice.username))
    assert_ended_within_2s(sock, time.monotonic())
    assert alice.get("/api/me").status_code == 401
    assert login_status(server, alice.username, alice.password).status_code == 403
    users = json.loads(ok(chat_admin(database_url, "user", "list", "--json")))
    assert [u["disabled"] for u in users if u["username"] == alice.username] == [True]
    ok(chat_admin(database_url, "user", "enable", alice.username))
    assert login_status(server, alice.username, alice.password).status_code == 200


@pytest.mark.slow
def test_passwd_ends_sessions_and_only_the_new_password_works(server, database_url, client):
    alice = client()
    sock = alice.ws(join=alice.create_room())
    new = "brand new password"
    out = ok(chat_admin(database_url, "user", "passwd", alice.username, "--password-stdin",
                        stdin=new + "\n"))
    started = time.monotonic()
    assert "password changed for %s" % alice.username in out
    assert_ended_within_2s(sock, started)
    assert alice.get("/api/me").status_code == 401
    assert login_status(server, alice.username, alice.password).status_code == 401
    assert login_status(server, alice.username, new).status_code == 200


@pytest.mark.slow
def test_delete_user_keeps_their_messages_with_sender_shown_as_deleted(server, database_url,
                                                                       client):
    alice, bob = client(), client()
    room = alice.create_room()
    bob.post("/api/join-room", {"roomId": room})
    sock = alice.ws(join=room)
    sock.say(room, "remember me")
    sock.expect("new-message", message="remember me")
    # Without --yes it asks on a terminal; a "y" piped in is not an answer.
    refused = chat_admin(database_url, "user", "delete", alice.username, stdin="y\n")
    failed(refused, "stdin is not a terminal", "--yes")
    assert alice.get("/api/me").status_code == 200
    ok(chat_admin(database_url, "user", "delete", alice.username, "--yes"))
    assert_ended_within_2s(sock, time.monotonic())
    history = bob.get("/api/chat-history/" + room).json()["messages"]
    assert [(m["sender"], m["message"]) for m in history] == [("[deleted]", "remember me")]
    names = [u["username"] for u in json.loads(ok(chat_admin(database_url, "user", "list", "--json")))]
    assert alice.username not in names


@pytest.mark.slow
def test_commands_on_an_unknown_user_fail_with_exit_1(server, database_url):  # server: made the database
    ghost = unique()
    for args in (["disable", ghost], ["enable", ghost], ["delete", ghost, "--yes"]):
        failed(chat_admin(database_url, "user", *args), "No user named '%s'" % ghost)
    failed(chat_admin(database_url, "user", "passwd", ghost, "--password-stdin",
                      stdin=PASSWORD + "\n"), "No user named")
