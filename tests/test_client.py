"""chatd_client against a real chatd: the HTTP methods today's chatd serves,
and a live session receiving, sending and resuming."""
import pytest
import requests

from chatd_client import Client, errors
from helpers import unique


def has_route(server, method, path):
    """Whether this chatd serves the route (it asks for a token before anything else)."""
    return requests.request(method, server.url + path, timeout=10).status_code == 401


def user_client(client):
    """A registered user of the helpers and the chatd_client.Client logged in as them."""
    helper = client()
    return helper, Client.login(helper.server.url, helper.username, helper.password)


def test_login_me_rooms_history(server, client):
    helper, alice = user_client(client)
    assert alice.username == helper.username and alice.me()["username"] == helper.username
    room = alice.create_room(unique("room "))["roomId"]
    assert room in alice.me()["rooms"]
    assert room in {item["roomId"] for item in alice.rooms()}
    sock = helper.ws(join=room)
    for text in ("one", "two", "three"):
        sock.say(room, text)
        sock.expect("new-message", message=text)
    page = alice.history(room, limit=2)
    assert [m["message"] for m in page["messages"]] == ["two", "three"] and page["hasMore"]
    older = alice.history(room, before=page["messages"][0]["id"])
    assert [m["message"] for m in older["messages"]] == ["one"] and not older["hasMore"]
    newer = alice.history(room, after=older["messages"][0]["id"], limit=1)
    assert [m["message"] for m in newer["messages"]] == ["two"] and newer["hasMore"]


@pytest.mark.slow
def test_register_join_leave_and_typed_errors(server, client):
    name = unique()
    anonymous = Client(server.url)
    assert anonymous.register(name, "correct horse")["username"] == name
    with pytest.raises(errors.Conflict) as info:
        anonymous.register(name.upper(), "correct horse")
    assert (info.value.status, info.value.code) == (409, "conflict")
    with pytest.raises(errors.Unauthorized):
        Client.login(server.url, name, "wrong password")
    with pytest.raises(errors.Unauthorized):
        anonymous.rooms()
    bob = Client.login(server.url, name, "correct horse")
    room = client().create_room()
    with pytest.raises(errors.Forbidden):
        bob.history(room)
    assert bob.join_room(room)["status"] == "success"
    assert bob.history(room)["messages"] == []
    bob.leave_room(room)
    with pytest.raises(errors.NotFound) as info:
        bob.history("room_99999999")
    assert info.value.message and info.value.status == 404
    with pytest.raises(errors.BadRequest) as info:
        bob.history(room, limit=0)
    assert "limit" in info.value.message


def test_live_session_receives_others_messages_in_order(server, client):
    helper, alice = user_client(client)
    room = alice.create_room(unique("room "))["roomId"]
    bob = client()
    with alice.live(rooms=[room]) as session:
        assert session.next_event(10)["action"] == "joined"
        sock = bob.ws(join=room)
        for i in range(20):
            sock.say(room, "m%d" % i)
        got = [next_message(session)["message"] for _ in range(20)]
        assert got == ["m%d" % i for i in range(20)]
        assert session.username == helper.username


@pytest.mark.slow
def test_session_sends_are_acknowledged_and_delivered_once(server, client):
    _, alice = user_client(client)
    room = alice.create_room(unique("room "))["roomId"]
    with alice.live(rooms=[room]) as session:
        sent = [session.send(room, "s%d" % i) for i in range(10)]
        mine = [next_message(session) for _ in range(10)]
        assert [e["clientMsgId"] for e in mine] == sent
        assert session.unacknowledged == []
    assert [m["message"] for m in alice.history(room)["messages"]] == ["s%d" % i for i in range(10)]


@pytest.mark.slow
def test_since_replays_the_past_and_no_since_starts_at_the_end(server, client):
    helper, alice = user_client(client)
    room = alice.create_room(unique("room "))["roomId"]
    sock = helper.ws(join=room)
    for text in ("old1", "old2"):
        sock.say(room, text)
        sock.expect("new-message", message=text)
    with alice.live(rooms=[room], since={room: 0}) as session:
        assert [next_message(session)["message"] for _ in range(2)] == ["old1", "old2"]
    with alice.live(rooms=[room]) as session:
        assert session.next_event(10)["action"] == "joined"  # it starts where the room ends now
        sock.say(room, "new")
        assert next_message(session)["message"] == "new"


def test_a_refused_join_is_an_error_event_naming_the_room(server, client):
    _, alice = user_client(client)
    room = alice.create_room(unique("room "))["roomId"]
    with alice.live(rooms=[room, "room_99999999"], since={"room_99999999": 0}) as session:
        events = [session.next_event(10) for _ in range(2)]
        error = next(e for e in events if e["action"] == "error")
        assert (error["code"], error["roomId"]) == ("not_found", "room_99999999")
        assert session.rooms == [room]


def test_a_bad_token_ends_the_session_with_unauthorized(server):
    session = Client(server.url, "not-a-token").live(rooms=[])
    with pytest.raises(errors.Unauthorized):
        session.next_event(10)


def test_http_send_edit_react_delete(server, client):
    if not has_route(server, "POST", "/api/rooms/room_1/messages"):
        pytest.skip("this chatd has no POST /api/rooms/:roomId/messages yet (section 7)")
    _, alice = user_client(client)
    room = alice.create_room(unique("room "))["roomId"]
    event = alice.send(room, "hello", client_msg_id="cid-1")
    assert event["action"] == "new-message" and event["message"] == "hello"
    assert alice.send(room, "hello", client_msg_id="cid-1")["id"] == event["id"]
    assert alice.edit(room, event["id"], "hello!")["message"] == "hello!"
    alice.react(room, event["id"], "👍")
    assert alice.history(room)["messages"][0]["reactions"][0]["emoji"] == "👍"
    alice.unreact(room, event["id"], "👍")
    alice.delete(room, event["id"])
    assert alice.history(room)["messages"] == []
    with pytest.raises(errors.NotFound):
        alice.edit(room, event["id"], "gone")


def next_message(session, timeout=10):
    """The session's next new-message event, skipping presence and the like."""
    while True:
        event = session.next_event(timeout)
        if event["action"] == "new-message":
            return event
