"""Issue 11's WebSocket attacks, done to a real chatd (PROTOCOL section 3,
"Fairness and cost"): floods of tiny frames, endless fragmented messages,
typing storms, a `since` from another database, joining every room.

Each attack runs on its own connection while another user checks that the
server still answers everyone else.
"""
import json
import time

import pytest
import requests

from helpers import Chatd, Client
from rawws import OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closing, Flood, RawSocket, frame, text

MAX_ROOMS = 3  # [websocket] max_rooms_per_connection, lowered for this module
MAX_FRAGMENTS = 128  # the default [websocket] max_fragments


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # The rules under test live above the database: SQLite is enough.
    env = {"CHATD_WEBSOCKET_MAX_ROOMS_PER_CONNECTION": str(MAX_ROOMS),
           "CHATD_WEBSOCKET_WRITE_TIMEOUT": "2"}
    chatd = Chatd("sqlite:///%s" % (tmp_path_factory.mktemp("db") / "chat.db"), env=env).start()
    yield chatd
    chatd.stop()


def fragmented(first, middle, last, count):
    """One text message: a start frame, `count` continuations, a final one."""
    return (frame(first, OP_TEXT, fin=False) + frame(middle, OP_CONT, fin=False) * count
            + frame(last, OP_CONT))


# Each kind: (bytes written over and over, events sent before the flood) for a room.
FLOODS = {
    "pings": lambda room: (frame(b"", OP_PING) * 4096, ()),
    # Whole messages of 102 fragments each: under the fragment cap, so the
    # connection lives and only the per-frame cost is tested.
    "empty continuations": lambda room: (fragmented(b"[", b"", b"]", 100) * 40, ()),
    "bad JSON": lambda room: (frame(b"x") * 4096, ()),
    "typing": lambda room: (text({"action": "typing", "roomId": room}) * 1024,
                            ({"action": "join", "roomId": room},)),
}


# -- 1. fairness: one connection cannot hold the others up ---------------------

@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_a_flooding_connection_leaves_everyone_else_served(server, kind):
    flooder, watcher = Client(server), Client(server)
    blob, setup = FLOODS[kind](flooder.create_room())
    room = watcher.create_room()
    sock = watcher.ws(join=room)
    flood = Flood(server, flooder.token, blob, setup)
    try:
        # Megabytes wait in the server's socket buffer from here on: while the
        # server takes them, every request below competes with the flood.
        assert _wait(lambda: flood.sent > 1 << 20, 10), "the flood never got going"
        sent_before = flood.sent
        for i in range(3):
            assert requests.get(server.url + "/healthz", timeout=3).status_code == 200
            sock.say(room, "ack %d" % i)
            sock.expect("new-message", timeout=3, message="ack %d" % i)
        assert flood.running and _wait(lambda: flood.sent > sent_before, 10), \
            "the server stopped reading the flood"
    finally:
        flood.stop()
        sock.close()


@pytest.mark.slow
def test_a_flood_whose_answers_are_never_read_is_cut_off(server):
    """Each bad frame earns an error event: the outgoing queue's bound ends it."""
    flooder, watcher = Client(server), Client(server)
    flood = Flood(server, flooder.token, frame(b"x") * 4096, read=False, rcvbuf=4096)
    try:
        assert _wait(lambda: not flood.running, 15), "the server never dropped the flood"
        assert isinstance(flood.error, (ConnectionResetError, BrokenPipeError)), flood.error
    finally:
        flood.stop()
    room = watcher.create_room()
    sock = watcher.ws(join=room)
    sock.say(room, "after")
    sock.expect("new-message", message="after")
    sock.close()


def _wait(condition, timeout):
    """helpers.wait_for with a short step: the floods move fast."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- 2. fragments: bounded count, and pings do not keep one alive ----------------

def test_a_message_in_too_many_fragments_closes_1009(server):
    raw = RawSocket(server, Client(server).token)
    raw.send(frame(b"[", OP_TEXT, fin=False) + frame(b" ", OP_CONT, fin=False) * (MAX_FRAGMENTS * 4))
    with pytest.raises(Closing) as closing:
        while True:
            raw.recv()
    assert (closing.value.code, closing.value.reason) == (1009, "too many fragments")


def test_a_message_in_as_many_fragments_as_allowed_is_read(server):
    raw = RawSocket(server, Client(server).token)
    body = json.dumps({"action": "join", "roomId": "room_999999999"}).ljust(MAX_FRAGMENTS)
    chars = [c.encode() for c in body]
    raw.send(frame(chars[0], OP_TEXT, fin=False)
             + b"".join(frame(c, OP_CONT, fin=False) + frame(b"", OP_PING) for c in chars[1:-1])
             + frame(chars[-1], OP_CONT))
    assert raw.expect("error")["code"] == "not_found"


@pytest.mark.slow
def test_pings_do_not_keep_an_unfinished_message_alive(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "f.db"),
                  env={"CHATD_WEBSOCKET_IDLE_TIMEOUT": "2"}).start()
    try:
        raw = RawSocket(chatd, Client(chatd).token)
        raw.send(frame(b"[", OP_TEXT, fin=False))
        started = time.monotonic()
        closing = None
        while closing is None and time.monotonic() - started < 10:
            raw.send(frame(b"still here", OP_PING))
            while True:
                opcode, payload = raw.recv_frame()
                if opcode == OP_CLOSE:
                    closing = Closing(payload)
                if opcode in (OP_CLOSE, OP_PONG):
                    break
            time.sleep(0.1)  # pacing the pings, not synchronisation
        waited = time.monotonic() - started
        assert closing is not None, "pings kept the unfinished message open for 10 s"
        assert (closing.code, closing.reason) == (1008, "message not finished")
        assert 1.5 < waited < 5, "closed after %.1f s with idle_timeout = 2 s" % waited
    finally:
        chatd.stop()


# -- 3. typing: once per 2 s per user and room -----------------------------------

@pytest.mark.slow
def test_typing_reaches_the_room_at_most_once_per_two_seconds(server):
    typist, other, watcher = Client(server), Client(server), Client(server)
    room = typist.create_room()
    for member in (other, watcher):
        assert member.post("/api/join-room", {"roomId": room}).status_code == 200
    watch = watcher.ws(join=room)
    sock, other_sock = typist.ws(join=room), other.ws(join=room)
    for _ in range(20):
        sock.send(action="typing", roomId=room)
    other_sock.send(action="typing", roomId=room)  # someone else's limit is their own
    sock.say(room, "marker")
    seen = watch.until(lambda e: e.get("action") == "new-message" and e["message"] == "marker")
    typing = sorted(e["username"] for e in seen if e["action"] == "user-typing")
    assert typing == sorted([typist.username, other.username])
    for s in (watch, sock, other_sock):
        s.close()


# -- 4. since beyond the room's last message -------------------------------------

def test_join_since_beyond_the_last_message_is_bad_request_and_the_connection_stays(server):
    user = Client(server)
    room = user.create_room()
    sock = user.ws(join=room)
    sock.say(room, "one")
    sock.say(room, "two")
    last = sock.expect("new-message", message="two")["id"]
    sock.close()
    for _ in range(2):  # the room live or not here: the database is asked either way
        raw = RawSocket(server, user.token)
        raw.send_event(action="join", roomId=room, since=last + 1)
        event = raw.recv()
        assert (event["action"], event["code"], event["ref"]) == ("error", "bad_request", "join")
        raw.send_event(action="join", roomId=room, since=last - 1)
        assert raw.recv()["action"] == "joined"
        assert raw.recv()["message"] == "two"
    raw.send_event(action="join", roomId=room, since=last)  # nothing to replay: fine
    assert raw.recv()["action"] == "joined"
    raw.send_event(action="send-message", roomId=room, message="three")
    assert raw.expect("new-message")["message"] == "three"


# -- 5. rooms per connection -----------------------------------------------------

def test_joining_past_max_rooms_per_connection_is_an_error_and_the_connection_stays(server):
    user = Client(server)
    rooms = [user.create_room() for _ in range(MAX_ROOMS + 1)]
    sock = user.ws()
    for room in rooms[:MAX_ROOMS]:
        sock.join(room)
    sock.send(action="join", roomId=rooms[-1])
    error = sock.expect("error")
    assert (error["code"], error["ref"]) == ("bad_request", "join")
    assert str(MAX_ROOMS) in error["message"]
    sock.join(rooms[0])  # one already joined: no new room, fine
    sock.send(action="leave", roomId=rooms[0])
    sock.expect("left")
    sock.join(rooms[-1])
    user.ws(join=rooms[0]).close()  # the cap is per connection, not per user
    sock.close()
