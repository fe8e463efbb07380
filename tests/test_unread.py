"""Read markers and unread counts (PROTOCOL.md section 8), on SQLite and PostgreSQL.

Real chatd, real clients: markers move only forward, reach every device of
the user (sockets joined to no room too), and GET /api/rooms counts what a
user has not read: others' messages after the marker, not deleted.
"""
import pytest
import requests

from helpers import Client, wait_for


def send(sock, room, text):
    """Say `text` in `room` and return its id once the server acknowledged it."""
    sock.say(room, text)
    return sock.expect("new-message", roomId=room, message=text)["id"]


def item(client, room):
    r = client.get("/api/rooms")
    assert r.status_code == 200, r.text
    return next(entry for entry in r.json() if entry["roomId"] == room)


def read(client, room, up_to):
    return client.post("/api/rooms/%s/read" % room, {"upTo": up_to})


@pytest.fixture
def pair(client):
    """Alice's room with Bob in it, each with a socket joined to it."""
    alice, bob = client(), client()
    room = alice.create_room()
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200
    a, b = alice.ws(join=room), bob.ws(join=room)
    yield alice, bob, room, a, b
    a.close()
    b.close()


def roomlog_present(server):
    """Whether this chatd edits and deletes messages (issue 13, merged separately)."""
    someone = Client(server)
    room = someone.create_room()
    r = requests.delete(server.url + "/api/rooms/%s/messages/1" % room,
                        headers=someone.headers(), timeout=10)
    return not (r.status_code in (404, 405) and "route" in r.json().get("message", ""))


@pytest.fixture
def roomlog(server):
    if not roomlog_present(server):
        pytest.skip("needs message edits, deletions and mentions (issue 13)")


def test_a_new_member_starts_with_nothing_unread(client):
    alice, bob = client(), client()
    room = alice.create_room()
    with_alice = alice.ws(join=room)
    for n in range(3):
        send(with_alice, room, "before bob %d" % n)
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200
    entry = item(bob, room)
    assert entry["unread"] == 0 and entry["mentions"] == 0
    assert entry["readUpTo"] == entry["lastSeq"] >= 3
    with_alice.close()


def test_others_messages_are_unread_own_ones_never(pair):
    alice, bob, room, a, b = pair
    send(b, room, "from bob")  # never unread for bob
    ids = [send(a, room, "from alice %d" % n) for n in range(3)]
    entry = item(bob, room)
    assert entry["unread"] == 3 and entry["lastSeq"] >= ids[-1]
    assert item(alice, room)["unread"] == 0  # sending moved her marker past bob's message
    assert read(bob, room, ids[0]).json() == {"status": "success", "readUpTo": ids[0]}
    assert item(bob, room)["unread"] == 2


def test_rooms_the_caller_is_not_in_carry_no_counts(pair, client):
    alice, bob, room, a, b = pair
    stranger = client()
    entry = item(stranger, room)
    assert not {"lastSeq", "readUpTo", "unread", "mentions"} & set(entry)


def test_the_marker_only_moves_forward_and_stops_at_the_last_message(pair):
    alice, bob, room, a, b = pair
    ids = [send(a, room, "m%d" % n) for n in range(3)]
    assert read(bob, room, ids[1]).json()["readUpTo"] == ids[1]
    assert read(bob, room, ids[0]).json()["readUpTo"] == ids[1]  # smaller: nothing changes
    assert item(bob, room)["readUpTo"] == ids[1]
    last = item(bob, room)["lastSeq"]
    assert read(bob, room, last + 1000).json()["readUpTo"] == last  # clamped
    assert item(bob, room)["unread"] == 0


@pytest.mark.parametrize("body", [{}, {"upTo": "3"}, {"upTo": -1}, {"upTo": 1.5},
                                  {"upTo": True}, {"upTo": None}])
def test_a_bad_up_to_is_a_bad_request(pair, body):
    alice, bob, room, a, b = pair
    r = bob.post("/api/rooms/%s/read" % room, body)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
    assert "upTo" in r.json()["message"]


def test_only_members_move_markers(pair, client):
    alice, bob, room, a, b = pair
    stranger = client()
    r = read(stranger, room, 1)
    assert r.status_code in (403, 404)  # 404 once the room is invisible (issue 14)
    for unknown in ("room_99999999", "room_nope", "12"):
        r = read(bob, unknown, 1)
        assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert read(bob, room, 1).status_code == 200


def test_every_device_hears_the_marker_also_sockets_in_no_room(pair):
    alice, bob, room, a, b = pair
    idle = bob.ws()
    idle.send(action="auth", token=bob.token)
    idle.expect("authenticated")
    ids = [send(a, room, "seen on both %d" % n) for n in range(2)]
    assert read(bob, room, ids[1]).status_code == 200
    for sock in (b, idle):
        assert sock.expect("read-marker", roomId=room)["upTo"] == ids[1]
    # the WebSocket action does the same, and its sender hears it too
    c = send(a, room, "third")
    b.send(action="read", roomId=room, upTo=c)
    for sock in (b, idle):
        assert sock.expect("read-marker", roomId=room)["upTo"] == c
    assert item(bob, room)["readUpTo"] == c
    idle.close()


def test_the_read_action_answers_errors_as_events(pair):
    alice, bob, room, a, b = pair
    b.send(action="read", roomId=room)
    assert b.expect("error", ref="read")["code"] == "bad_request"
    b.send(action="read", roomId="room_99999999", upTo=1)
    assert b.expect("error", ref="read")["code"] == "not_found"


def test_a_marker_that_does_not_move_is_not_announced(pair):
    alice, bob, room, a, b = pair
    first = send(a, room, "one")
    second = send(a, room, "two")
    read(bob, room, second)
    b.expect("read-marker", upTo=second)
    read(bob, room, first)  # changes nothing, announces nothing
    third = send(a, room, "three")
    read(bob, room, third)
    seen = b.until(lambda e: e.get("action") == "read-marker")
    assert seen[-1]["upTo"] == third


def test_leaving_and_joining_again_starts_with_nothing_unread(pair):
    alice, bob, room, a, b = pair
    send(a, room, "while bob is in")
    assert bob.post("/api/leave-room", {"roomId": room}).status_code == 200
    send(a, room, "while bob is out")
    assert "unread" not in item(bob, room)
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200
    entry = item(bob, room)
    assert entry["unread"] == 0 and entry["readUpTo"] == entry["lastSeq"]


# -- with issue 13's edits, deletions and mentions ------------------------------------
def edit(client, room, msg_id, text):
    r = requests.patch(client.server.url + "/api/rooms/%s/messages/%d" % (room, msg_id),
                       json={"message": text}, headers=client.headers(), timeout=10)
    assert r.status_code == 200, r.text


def delete(client, room, msg_id):
    r = requests.delete(client.server.url + "/api/rooms/%s/messages/%d" % (room, msg_id),
                        headers=client.headers(), timeout=10)
    assert r.status_code == 200, r.text


def test_deleted_messages_stop_counting_edits_change_nothing(roomlog, pair):
    alice, bob, room, a, b = pair
    ids = [send(a, room, "to count %d" % n) for n in range(3)]
    assert item(bob, room)["unread"] == 3
    delete(alice, room, ids[1])
    edit(alice, room, ids[0], "edited, still unread")
    entry = item(bob, room)
    assert entry["unread"] == 2 and entry["lastSeq"] > ids[-1]


def test_mentions_count_the_unread_messages_that_name_the_caller(roomlog, pair):
    alice, bob, room, a, b = pair
    first = send(a, room, "hi @%s" % bob.username)
    send(a, room, "no mention")
    third = send(a, room, "again @%s." % bob.username.upper())
    entry = item(bob, room)
    assert (entry["unread"], entry["mentions"]) == (3, 2)
    read(bob, room, first)
    assert (item(bob, room)["unread"], item(bob, room)["mentions"]) == (2, 1)
    delete(alice, room, third)
    assert (item(bob, room)["unread"], item(bob, room)["mentions"]) == (1, 0)


def test_sending_moves_the_senders_marker(roomlog, pair):
    alice, bob, room, a, b = pair
    send(a, room, "alice")
    mine = send(b, room, "bob answers")
    entry = item(bob, room)
    assert entry["readUpTo"] >= mine and entry["unread"] == 0
