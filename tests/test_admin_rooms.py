"""chat-admin room ...: against the database a running chatd uses, seen by its clients."""
import json
import time

import pytest

import services
from admin_tool import chat_admin, failed, ok
from helpers import Chatd, Client, unique

ROOM_LIST_KEYS = {"roomId", "roomName", "memberCount", "messageCount", "createdAt"}


def rooms(database_url):
    return {r["roomId"]: r for r in json.loads(ok(chat_admin(database_url, "room", "list", "--json")))}


def test_room_created_by_the_operator_is_the_owners(database_url, client):
    alice = client()
    name = unique("Ops room ")
    out = ok(chat_admin(database_url, "room", "create", name, "--owner", alice.username))
    room_id = out.split()[1]
    assert out == "created %s (%s, owner %s)\n" % (room_id, name, alice.username)
    assert {"roomId": room_id, "roomName": name} in [
        {"roomId": r["roomId"], "roomName": r["roomName"]} for r in alice.get("/api/rooms").json()]
    assert room_id in alice.get("/api/me").json()["rooms"]


@pytest.mark.slow
def test_room_create_keeps_the_http_rules(database_url, client):
    alice = client()
    name = unique("Taken ")
    alice.create_room(name)
    failed(chat_admin(database_url, "room", "create", name.upper(), "--owner", alice.username),
           "already taken")
    failed(chat_admin(database_url, "room", "create", " " * 3, "--owner", alice.username),
           "1-64 characters")
    failed(chat_admin(database_url, "room", "create", unique(), "--owner", unique()),
           "No user named")
    missing_owner = chat_admin(database_url, "room", "create", unique())
    assert missing_owner.returncode == 2 and "--owner" in missing_owner.stderr


def test_room_list_counts_members_and_messages(database_url, client):
    alice, bob = client(), client()
    room = alice.create_room()
    bob.post("/api/join-room", {"roomId": room})
    sock = alice.ws(join=room)
    for n in range(3):
        sock.say(room, "m%d" % n)
        sock.expect("new-message", message="m%d" % n)
    listed = rooms(database_url)
    assert all(set(r) >= ROOM_LIST_KEYS for r in listed.values())
    assert listed[room]["memberCount"] == 2 and listed[room]["messageCount"] == 3
    table = ok(chat_admin(database_url, "room", "list")).splitlines()
    assert table[0].split()[:4] == ["ROOM", "NAME", "MEMBERS", "MESSAGES"]
    assert any(line.startswith(room + " ") for line in table)


def test_room_members_lists_everyone_in_it(database_url, client):
    alice, bob = client(), client()
    room = alice.create_room()
    bob.post("/api/join-room", {"roomId": room})
    members = json.loads(ok(chat_admin(database_url, "room", "members", room, "--json")))
    assert sorted(m["username"] for m in members) == sorted([alice.username, bob.username])
    assert ok(chat_admin(database_url, "room", "members", room)).split()[1:] == sorted(
        [alice.username, bob.username], key=str.lower)


@pytest.mark.slow
def test_room_delete_reaches_live_members_within_2s(database_url, client):
    alice, bob = client(), client()
    room = alice.create_room()
    bob.post("/api/join-room", {"roomId": room})
    alice_sock, bob_sock = alice.ws(join=room), bob.ws(join=room)
    alice_sock.say(room, "soon gone")
    bob_sock.expect("new-message", message="soon gone")
    refused = chat_admin(database_url, "room", "delete", room, stdin="y\n")
    failed(refused, "stdin is not a terminal", "--yes")
    assert room in rooms(database_url)
    assert ok(chat_admin(database_url, "room", "delete", room, "--yes")) == "deleted %s\n" % room
    started = time.monotonic()
    for sock in (alice_sock, bob_sock):
        assert sock.expect("room-deleted", timeout=5) == {"action": "room-deleted", "roomId": room}
    assert time.monotonic() - started < 2.0
    assert alice.get("/api/chat-history/" + room).status_code == 404
    assert room not in rooms(database_url)


def test_commands_on_an_unknown_or_malformed_room_fail_with_exit_1(server, database_url):  # server: made the database
    failed(chat_admin(database_url, "room", "members", "room_999999"), "No room room_999999")
    failed(chat_admin(database_url, "room", "delete", "room_999999", "--yes"), "No room")
    failed(chat_admin(database_url, "room", "delete", "general", "--yes"), "room id like room_12")


@pytest.mark.slow
def test_room_members_shows_who_is_online_through_a_shared_broker(tmp_path):
    redis = services.RedisServer(tmp_path).start()
    url = "sqlite:///%s" % (tmp_path / "chat.db")
    server = Chatd(url, broker=redis.url).start()
    try:
        alice, bob = Client(server), Client(server)
        room = alice.create_room()
        bob.post("/api/join-room", {"roomId": room})
        alice.ws(join=room)
        out = ok(chat_admin(url, "room", "members", room, "--json",
                            env={"CHATD_BROKER_URL": redis.url}))
        assert sorted(json.loads(out), key=lambda m: m["username"]) == sorted(
            [{"username": alice.username, "role": "owner", "online": True},
             {"username": bob.username, "role": "member", "online": False}],
            key=lambda m: m["username"])
    finally:
        server.stop()
        redis.stop()
