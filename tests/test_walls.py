"""Rooms with walls (PROTOCOL section 6, per-user events of section 8, POST /api/password),
against a real chatd on SQLite and on PostgreSQL."""
import re

import pytest
import requests

from admin_tool import chat_admin, failed, ok
from helpers import Client, Closed, unique

PASSWORD = "correct horse"


def call(user, method, path, body=None):
    return requests.request(method, user.server.url + path, json=body,
                            headers=user.headers(), timeout=30)


def patch(user, path, body):
    return call(user, "PATCH", path, body)


def delete(user, path):
    return call(user, "DELETE", path)


def status(response, code, error=None):
    assert response.status_code == code, response.text
    if error:
        assert response.json()["error"] == error, response.text
    return response


def make_room(user, kind="public", topic=None):
    body = {"roomName": unique("room "), "kind": kind}
    if topic is not None:
        body["topic"] = topic
    r = status(user.post("/api/create-room", body), 201)
    assert r.json()["kind"] == kind
    return r.json()["roomId"]


def add(actor, room, user):
    return actor.post("/api/rooms/%s/members" % room, {"username": user.username})


def set_role(actor, room, user, role):
    return patch(actor, "/api/rooms/%s/members/%s" % (room, user.username), {"role": role})


def ban(actor, room, user, reason=None):
    body = {"username": user.username}
    if reason is not None:
        body["reason"] = reason
    return actor.post("/api/rooms/%s/bans" % room, body)


def listed(user):
    r = status(user.get("/api/rooms"), 200)
    return {item["roomId"]: item for item in r.json()}


def unknown_room_id(user):
    """A room id that never existed: past every room made so far."""
    newest = make_room(user)
    return "room_%d" % (int(newest.split("_")[1]) + 10 ** 6)


# -- invisibility ----------------------------------------------------------------------
def http_probes(carol, alice):
    """Every HTTP endpoint that names a room, as an outsider calls it."""
    return [
        ("GET", "/api/chat-history/{room}", None),
        ("GET", "/api/chat-history/{room}?limit=5&before=3", None),
        ("GET", "/api/rooms/{room}/members", None),
        ("POST", "/api/join-room", {"roomId": "{room}"}),
        ("POST", "/api/leave-room", {"roomId": "{room}"}),
        ("PATCH", "/api/rooms/{room}", {"topic": "mine now"}),
        ("PATCH", "/api/rooms/{room}", {"roomName": unique("taken ")}),
        ("POST", "/api/rooms/{room}/members", {"username": carol.username}),
        ("DELETE", "/api/rooms/{room}/members/%s" % carol.username, None),
        ("DELETE", "/api/rooms/{room}/members/%s" % alice.username, None),
        ("PATCH", "/api/rooms/{room}/members/%s" % alice.username, {"role": "member"}),
        ("PATCH", "/api/rooms/{room}/members/%s" % carol.username, {"role": "owner"}),
        ("POST", "/api/rooms/{room}/bans", {"username": alice.username, "reason": "x"}),
        ("DELETE", "/api/rooms/{room}/bans/%s" % alice.username, None),
        ("GET", "/api/rooms/{room}/bans", None),
    ]


def probe_http(carol, method, path, body, room):
    if body is not None:
        body = {k: v.replace("{room}", room) for k, v in body.items()}
    r = call(carol, method, path.replace("{room}", room), body)
    return r.status_code, r.headers["Content-Type"], r.content.replace(room.encode(), b"<ROOM>")


def probe_ws(sock, room):
    """The answers to every room action on one connection, the room's id masked."""
    answers = []
    for action in ({"action": "join", "roomId": room},
                   {"action": "join", "roomId": room, "since": 0},
                   {"action": "send-message", "roomId": room, "message": "hello?"},
                   {"action": "typing", "roomId": room}, {"action": "leave", "roomId": room}):
        sock.send(**action)
        event = sock.recv()
        answers.append({k: v.replace(room, "<ROOM>") if isinstance(v, str) else v
                        for k, v in event.items()})
    return answers


@pytest.mark.slow
def test_an_outsider_gets_the_unknown_rooms_answers_from_private_and_direct_rooms(client):
    alice, bob, carol = client(), client(), client()
    private = make_room(alice, "private", topic="plans")
    status(add(alice, private, bob), 200)
    direct = status(alice.post("/api/direct", {"username": bob.username}), 201).json()["roomId"]
    never = unknown_room_id(alice)
    for method, path, body in http_probes(carol, alice):
        expected = probe_http(carol, method, path, body, never)
        assert expected[0] == 404, (method, path, expected)
        for room in (private, direct):
            assert probe_http(carol, method, path, body, room) == expected, (method, path, room)
    sock = carol.ws()
    try:
        expected = probe_ws(sock, never)
        assert expected[0]["code"] == "not_found"
        assert probe_ws(sock, private) == expected
        assert probe_ws(sock, direct) == expected
    finally:
        sock.close()
    assert private not in listed(carol) and direct not in listed(carol)
    assert status(carol.get("/api/me"), 200).json()["rooms"] == []
    # Nothing the probes tried changed anything.
    members = status(alice.get("/api/rooms/%s/members" % private), 200).json()
    assert sorted(m["username"] for m in members) == sorted([alice.username, bob.username])
    assert listed(alice)[private]["topic"] == "plans"


def test_a_public_room_answers_a_non_member_with_403_as_before(client):
    alice, carol = client(), client()
    room = make_room(alice)
    status(carol.get("/api/chat-history/%s" % room), 403, "forbidden")
    status(carol.get("/api/rooms/%s/members" % room), 403, "forbidden")
    item = listed(carol)[room]
    assert item["member"] is False and "role" not in item and item["kind"] == "public"


# -- kinds, listing, topic ------------------------------------------------------------------
def test_create_room_kinds_and_topics(client):
    alice = client()
    room = make_room(alice, "private", topic="a" * 250)
    item = listed(alice)[room]
    assert item["kind"] == "private" and item["topic"] == "a" * 250
    assert item["member"] is True and item["role"] == "owner"
    public = make_room(alice)
    assert listed(alice)[public]["kind"] == "public"
    for body, field in (({"kind": "secret"}, "kind"), ({"kind": "direct"}, "kind"),
                        ({"topic": "a" * 251}, "topic"), ({"topic": 5}, "topic"),
                        ({"roomName": "direct:1:2"}, "roomName")):
        body = dict({"roomName": unique("r ")}, **body)
        r = status(alice.post("/api/create-room", body), 400, "bad_request")
        assert field in r.json()["message"]


def test_owner_renames_and_sets_the_topic_members_see_room_updated(client):
    alice, bob = client(), client()
    room = make_room(alice)
    bob.post("/api/join-room", {"roomId": room})
    sock = bob.ws(join=room)
    try:
        new_name = unique("renamed ")
        r = status(patch(alice, "/api/rooms/%s" % room, {"roomName": new_name, "topic": "t"}), 200)
        assert r.json()["roomName"] == new_name and r.json()["topic"] == "t"
        assert r.json()["role"] == "owner"
        event = sock.expect("room-updated")
        assert (event["roomName"], event["topic"], event["by"]) == (new_name, "t", alice.username)
        assert event["seq"] >= 1 and event["timestamp"].endswith("Z")
    finally:
        sock.close()
    other = make_room(alice)
    status(patch(alice, "/api/rooms/%s" % other, {"roomName": new_name.upper()}), 409, "conflict")
    status(patch(alice, "/api/rooms/%s" % other, {}), 400, "bad_request")


# -- direct rooms ---------------------------------------------------------------------------
def test_direct_room_is_made_once_whoever_asks_and_holds_its_two_users_only(client):
    alice, bob, carol = client(), client(), client()
    sock = bob.ws()
    sock.send(action="auth", token=bob.token)
    sock.expect("authenticated")
    try:
        made = status(alice.post("/api/direct", {"username": bob.username}), 201).json()
        assert made["kind"] == "direct" and made["status"] == "success"
        room = made["roomId"]
        added = sock.expect("room-added")
        assert added == {"action": "room-added", "roomId": room, "roomName": alice.username,
                         "kind": "direct", "peer": alice.username}
    finally:
        sock.close()
    again = status(bob.post("/api/direct", {"username": alice.username.upper()}), 200).json()
    assert again["roomId"] == room
    again = status(alice.post("/api/direct", {"username": bob.username}), 200).json()
    assert again["roomId"] == room
    members = status(alice.get("/api/rooms/%s/members" % room), 200).json()
    assert sorted((m["username"], m["role"]) for m in members) == sorted(
        [(alice.username, "member"), (bob.username, "member")])
    assert listed(alice)[room]["roomName"] == listed(alice)[room]["peer"] == bob.username
    assert listed(bob)[room]["peer"] == alice.username
    status(add(alice, room, carol), 403, "forbidden")
    status(carol.post("/api/join-room", {"roomId": room}), 404, "not_found")
    status(set_role(alice, room, bob, "moderator"), 403, "forbidden")
    status(ban(alice, room, bob), 403, "forbidden")
    status(alice.post("/api/direct", {"username": "nobody_" + unique()[:8]}), 404, "not_found")
    status(alice.post("/api/direct", {"username": alice.username}), 400, "bad_request")
    status(alice.post("/api/direct", {}), 400, "bad_request")


def test_joining_a_direct_room_greets_with_the_other_users_name(client):
    alice, bob = client(), client()
    room = status(alice.post("/api/direct", {"username": bob.username}), 201).json()["roomId"]
    sock = bob.ws()
    try:
        assert sock.join(room)["message"] == "Welcome to %s!" % alice.username
    finally:
        sock.close()


# -- roles and moderation -----------------------------------------------------------------
def test_handing_over_makes_the_former_owner_a_moderator(client):
    alice, bob = client(), client()
    room = make_room(alice)
    status(add(alice, room, bob), 200)
    sock = alice.ws(join=room)
    try:
        status(set_role(alice, room, bob, "owner"), 200)
        events = [sock.expect("member-updated"), sock.expect("member-updated")]
    finally:
        sock.close()
    assert {(e["username"], e["role"], e["by"]) for e in events} == {
        (alice.username, "moderator", alice.username), (bob.username, "owner", alice.username)}
    roles = {m["username"]: m["role"] for m in alice.get("/api/rooms/%s/members" % room).json()}
    assert roles == {alice.username: "moderator", bob.username: "owner"}
    status(set_role(alice, room, bob, "member"), 403, "forbidden")
    status(set_role(bob, room, bob, "member"), 403, "forbidden")
    status(set_role(bob, room, alice, "boss"), 400, "bad_request")


def test_added_user_hears_room_added_and_removed_user_stops_receiving(client):
    alice, bob = client(), client()
    room = make_room(alice, "private")
    idle = bob.ws()
    idle.send(action="auth", token=bob.token)
    idle.expect("authenticated")
    try:
        status(add(alice, room, bob), 200)
        assert idle.expect("room-added") == {"action": "room-added", "roomId": room,
                                             "roomName": listed(alice)[room]["roomName"],
                                             "kind": "private"}
        status(add(alice, room, bob), 200)  # already in: no change
        joined = bob.ws(join=room)
        watching = alice.ws(join=room)
        status(delete(alice, "/api/rooms/%s/members/%s" % (room, bob.username)), 200)
        removed = watching.expect("member-removed")
        assert (removed["username"], removed["by"], removed["banned"]) == (
            bob.username, alice.username, False)
        for sock in (joined, idle):
            assert sock.expect("room-removed") == {"action": "room-removed", "roomId": room,
                                                   "banned": False}
        joined.say(room, "still here?")  # the private room is now invisible to bob
        assert joined.expect("error")["code"] == "not_found"
        status(bob.get("/api/chat-history/%s" % room), 404, "not_found")
    finally:
        for sock in (idle, locals().get("joined"), locals().get("watching")):
            if sock:
                sock.close()


def test_leaving_over_http_unsubscribes_every_connection_of_the_user(client):
    alice, bob = client(), client()
    room = make_room(alice)
    bob.post("/api/join-room", {"roomId": room})
    first, second = bob.ws(join=room), bob.ws(join=room)
    talker = alice.ws(join=room)
    try:
        status(bob.post("/api/leave-room", {"roomId": room}), 200)
        for sock in (first, second):
            assert sock.expect("left") == {"action": "left", "roomId": room}
        talker.say(room, "after the leave")
        talker.expect("new-message", message="after the leave")
        # bob's sockets are out of the room: a message there is not for them.
        for sock in (first, second):
            sock.say(room, "x")
            seen = sock.until(lambda e: e.get("action") == "error")
            assert seen[-1]["code"] == "not_joined"
            assert not any(e.get("action") == "new-message" for e in seen)
    finally:
        for sock in (first, second, talker):
            sock.close()


def test_a_ban_ends_the_membership_and_keeps_the_user_out(client):
    alice, mod, spammer = client(), client(), client()
    room = make_room(alice)
    status(add(alice, room, mod), 200)
    status(set_role(alice, room, mod, "moderator"), 200)
    spammer.post("/api/join-room", {"roomId": room})
    sock = spammer.ws(join=room)
    try:
        status(ban(mod, room, spammer, reason="spam"), 200)
        removed = sock.expect("member-removed")
        assert (removed["username"], removed["by"], removed["banned"]) == (
            spammer.username, mod.username, True)
        assert sock.expect("room-removed") == {"action": "room-removed", "roomId": room,
                                               "banned": True}
        sock.send(action="join", roomId=room)
        error = sock.expect("error")
        assert (error["code"], error["ref"]) == ("forbidden", "join")
    finally:
        sock.close()
    status(spammer.post("/api/join-room", {"roomId": room}), 403, "forbidden")
    status(add(alice, room, spammer), 403, "forbidden")
    bans = status(mod.get("/api/rooms/%s/bans" % room), 200).json()
    assert len(bans) == 1 and bans[0]["timestamp"].endswith("Z")
    assert {k: bans[0][k] for k in ("username", "by", "reason")} == {
        "username": spammer.username, "by": mod.username, "reason": "spam"}
    status(ban(mod, room, alice), 403, "forbidden")  # not over a higher rank
    status(delete(mod, "/api/rooms/%s/bans/%s" % (room, spammer.username)), 200)
    status(delete(mod, "/api/rooms/%s/bans/%s" % (room, spammer.username)), 404, "not_found")
    assert listed(spammer)[room]["member"] is False  # lifting does not add back
    status(spammer.post("/api/join-room", {"roomId": room}), 200)


# -- the permission table of section 6 -----------------------------------------------------
ROLES = ("owner", "moderator", "member", "outsider")
# act -> the roles that may do it (the others get 403 on a public room)
TABLE = {
    "rename": {"owner", "moderator"},
    "topic": {"owner", "moderator"},
    "add member": {"owner", "moderator"},
    "remove member": {"owner", "moderator"},
    "remove moderator": {"owner"},
    "ban member": {"owner", "moderator"},
    "ban moderator": {"owner"},
    "ban outsider": {"owner", "moderator"},
    "lift ban": {"owner", "moderator"},
    "list bans": {"owner", "moderator"},
    "make moderator": {"owner"},
    "demote moderator": {"owner"},
    "hand over": {"owner"},
    "read history": {"owner", "moderator", "member"},
    "list members": {"owner", "moderator", "member"},
    "leave": {"owner", "moderator", "member", "outsider"},
}


@pytest.fixture(scope="module")
def cast(server):
    """The people of the table: registered once (password hashing is slow on purpose)."""
    return {name: Client(server) for name in
            ("owner", "moderator", "member", "outsider", "target", "target_mod", "newcomer")}


def act(name, actor, room, cast):
    target, target_mod = cast["target"], cast["target_mod"]
    return {
        "rename": lambda: patch(actor, "/api/rooms/%s" % room, {"roomName": unique("n ")}),
        "topic": lambda: patch(actor, "/api/rooms/%s" % room, {"topic": "new topic"}),
        "add member": lambda: add(actor, room, cast["newcomer"]),
        "remove member": lambda: delete(actor, "/api/rooms/%s/members/%s" % (
            room, target.username)),
        "remove moderator": lambda: delete(actor, "/api/rooms/%s/members/%s" % (
            room, target_mod.username)),
        "ban member": lambda: ban(actor, room, target),
        "ban moderator": lambda: ban(actor, room, target_mod),
        "ban outsider": lambda: ban(actor, room, cast["newcomer"]),
        "lift ban": lambda: delete(actor, "/api/rooms/%s/bans/%s" % (
            room, cast["newcomer"].username)),
        "list bans": lambda: actor.get("/api/rooms/%s/bans" % room),
        "make moderator": lambda: set_role(actor, room, target, "moderator"),
        "demote moderator": lambda: set_role(actor, room, target_mod, "member"),
        "hand over": lambda: set_role(actor, room, target, "owner"),
        "read history": lambda: actor.get("/api/chat-history/%s" % room),
        "list members": lambda: actor.get("/api/rooms/%s/members" % room),
        "leave": lambda: delete(actor, "/api/rooms/%s/members/%s" % (room, actor.username)),
    }[name]()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", sorted(TABLE))
def test_permission_table(cast, role, name):
    owner = cast["owner"]
    room = make_room(owner)
    for who, as_role in (("moderator", "moderator"), ("member", None), ("target", None),
                         ("target_mod", "moderator")):
        status(add(owner, room, cast[who]), 200)
        if as_role:
            status(set_role(owner, room, cast[who], as_role), 200)
    if name == "lift ban":
        status(ban(owner, room, cast["newcomer"]), 200)
    r = act(name, cast[role], room, cast)
    if role in TABLE[name]:
        assert r.status_code == 200, (role, name, r.text)
    else:
        status(r, 403, "forbidden")


# -- accounts ----------------------------------------------------------------------------------
def test_password_change_ends_the_other_login_sessions_only(client):
    alice = client()
    other = Client(alice.server, alice.username, register=False)
    other.login()
    sock = other.ws()
    sock.send(action="auth", token=other.token)
    sock.expect("authenticated")
    kept = alice.ws()
    try:
        status(alice.post("/api/password", {"currentPassword": "wrong password",
                                            "newPassword": "battery staple"}), 403, "forbidden")
        status(alice.post("/api/password", {"currentPassword": PASSWORD}), 400, "bad_request")
        status(alice.post("/api/password", {"currentPassword": PASSWORD,
                                            "newPassword": "short"}), 400, "bad_request")
        status(alice.post("/api/password", {"currentPassword": PASSWORD,
                                            "newPassword": "battery staple"}), 200)
        with pytest.raises(Closed):
            sock.expect("never", timeout=2.5)  # closed within 2 s
        status(other.get("/api/me"), 401, "unauthorized")
        status(alice.get("/api/me"), 200)
        kept.send(action="auth", token=alice.token)
        assert kept.expect("authenticated")["username"] == alice.username
    finally:
        sock.close()
        kept.close()
    alice.password = "battery staple"
    alice.login()


# -- room ids and chat-admin -------------------------------------------------------------------
def test_room_ids_are_never_reused(database_url, client):
    alice = client()
    newest = make_room(alice)
    ok(chat_admin(database_url, "room", "delete", newest, "--yes"))
    assert make_room(alice) != newest


@pytest.mark.slow
def test_chat_admin_room_commands_reach_live_clients(database_url, client):
    alice, bob = client(), client()
    name = unique("Ops ")
    out = ok(chat_admin(database_url, "room", "create", name, "--owner", alice.username,
                        "--private"))
    room = re.match(r"created (room_\d+) ", out).group(1)
    assert listed(alice)[room]["kind"] == "private" and room not in listed(bob)
    idle = bob.ws()
    idle.send(action="auth", token=bob.token)
    idle.expect("authenticated")
    try:
        ok(chat_admin(database_url, "room", "add", name.lower(), bob.username))
        assert idle.expect("room-added", timeout=3)["roomId"] == room
        joined = bob.ws(join=room)
        ok(chat_admin(database_url, "room", "role", room, bob.username, "owner"))
        roles = {m["username"]: m["role"] for m in alice.get("/api/rooms/%s/members" % room).json()}
        assert roles == {alice.username: "moderator", bob.username: "owner"}
        ok(chat_admin(database_url, "room", "remove", room, alice.username, "--ban",
                      "--reason", "ops"))
        ok(chat_admin(database_url, "room", "remove", name, bob.username))
        for sock in (joined, idle):
            assert sock.expect("room-removed", timeout=3) == {
                "action": "room-removed", "roomId": room, "banned": False}
        joined.say(room, "x")  # out of a private room: it is invisible to bob now
        assert joined.expect("error")["code"] == "not_found"
    finally:
        idle.close()
        if "joined" in locals():
            joined.close()
    bans = alice.get("/api/rooms/%s/bans" % room)
    assert bans.status_code == 404  # alice is out: the private room is invisible to her now
    failed(chat_admin(database_url, "room", "add", room, alice.username), "banned")
    failed(chat_admin(database_url, "room", "add", "no such room " + unique(), bob.username),
           "No room")
    direct = status(alice.post("/api/direct", {"username": bob.username}), 201).json()["roomId"]
    failed(chat_admin(database_url, "room", "add", direct, client().username), "direct")
    failed(chat_admin(database_url, "room", "role", name, "nobody_" + unique()[:6], "owner"),
           "No user")


# -- the walk-through ----------------------------------------------------------------------------
def test_walk_through(client):
    """alice makes a private room and a direct room with bob, a spammer is banned by a
    moderator and cannot come back, and carol, outside, cannot learn that either exists."""
    alice, bob, spammer, carol = client(), client(), client(), client()
    private = make_room(alice, "private", topic="launch plans")
    status(add(alice, private, bob), 200)
    status(set_role(alice, private, bob, "moderator"), 200)
    status(add(bob, private, spammer), 200)
    direct = status(alice.post("/api/direct", {"username": bob.username}), 201).json()["roomId"]
    sock = spammer.ws(join=private)
    try:
        status(ban(bob, private, spammer, reason="spam"), 200)
        assert sock.expect("room-removed")["banned"] is True
    finally:
        sock.close()
    status(spammer.post("/api/join-room", {"roomId": private}), 404, "not_found")
    status(add(bob, private, spammer), 403, "forbidden")
    never = unknown_room_id(carol)
    for room in (private, direct):
        assert room not in listed(carol)
        for path in ("/api/chat-history/%s", "/api/rooms/%s/members"):
            seen, unknown = carol.get(path % room), carol.get(path % never)
            assert seen.status_code == unknown.status_code == 404
            assert seen.content.replace(room.encode(), b"") == \
                unknown.content.replace(never.encode(), b"")
