"""Section 3's limits, done to a real chatd with hand-made frames.

Each test does one bad thing on its own connection, checks what that client
sees (an error event, a close code, an HTTP status) and then that the server
still serves everyone else: a bystander connected since the module started
still receives a message a new user sends.
"""
import threading
import time

import pytest

from helpers import Chatd, Client, wait_for
from rawws import (OP_BINARY, OP_CONT, OP_PING, OP_TEXT, Closing, RawSocket, frame,
                   memory_kib, text)

STRICT = {"CHATD_WEBSOCKET_AUTH_TIMEOUT": "1", "CHATD_LIMITS_MESSAGE_BURST": "5",
          "CHATD_LIMITS_MESSAGES_PER_MINUTE": "60", "CHATD_LIMITS_FLOOD_STRIKES": "10"}
MAX_FRAME = 65536  # the default [websocket] max_frame_bytes


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Frame and connection limits live above the database: SQLite is enough.
    chatd = Chatd("sqlite:///%s" % (tmp_path_factory.mktemp("db") / "chat.db"), env=STRICT).start()
    yield chatd
    chatd.stop()


class Bystander:
    """A user connected to a room for the whole module, to prove others are served."""

    def __init__(self, server):
        self.server = server
        self.user = Client(server)
        self.room = self.user.create_room()
        self.sock = self.user.ws(join=self.room)

    def still_served(self):
        """A new user can log in, join and send; the old connection receives it."""
        other = Client(self.server)
        assert other.post("/api/join-room", {"roomId": self.room}).status_code == 200
        sock = other.ws(join=self.room)
        sock.say(self.room, "still here " + other.username)
        got = self.sock.expect("new-message", sender=other.username)
        assert got["message"] == "still here " + other.username
        sock.close()


@pytest.fixture(scope="module")
def bystander(server):
    watcher = Bystander(server)
    yield watcher
    watcher.sock.close()


@pytest.fixture
def user(server):
    return Client(server)


def closed_with(raw, code, timeout=10):
    got, events = raw.until_close(timeout)
    assert got == code, "closed with %s after %r" % (got, events)
    return events


# -- sizes: refused from the header, before any payload is read --------------

@pytest.mark.slow
@pytest.mark.parametrize("declared", [2 ** 40, 2 ** 32, MAX_FRAME + 1])
def test_oversize_frame_header_closes_1009_without_allocating(server, bystander, user, declared):
    peak_before = memory_kib(server.proc.pid)
    raw = RawSocket(server, user.token)
    raw.send(frame(b"", length=declared) + b"x" * 1024)  # a header that lies, a little data
    closed_with(raw, 1009)
    raw.close()
    grown_kib = memory_kib(server.proc.pid) - peak_before
    assert grown_kib < 8 * 1024, "peak RSS grew %d KiB after a %d-byte header" % (grown_kib, declared)
    bystander.still_served()


def test_fragments_adding_up_over_the_limit_close_1009(server, bystander, user):
    raw = RawSocket(server, user.token)
    part = b"a" * (MAX_FRAME // 2 + 1)
    raw.send(frame(part, OP_TEXT, fin=False) + frame(part, OP_CONT, fin=True))
    closed_with(raw, 1009)
    bystander.still_served()


def test_frame_at_the_limit_is_read(server, user):
    """The limit is inclusive: a 64 KiB frame is fine (here: not JSON, so an error event)."""
    raw = RawSocket(server, user.token)
    raw.send(frame(b" " * MAX_FRAME))
    event = raw.expect("error")
    assert event["code"] == "bad_request"
    raw.send_event(action="join", roomId="room_999999999")
    assert raw.expect("error")["code"] == "not_found"


# -- protocol violations: 1002; bad UTF-8: 1007 -------------------------------

PROTOCOL_VIOLATIONS = {
    "unmasked": frame(b'{"action":"typing"}', masked=False),
    "reserved bits": frame(b"{}", rsv=0b100),
    "unknown opcode": frame(b"{}", opcode=0x3),
    "fragmented ping": frame(b"p", OP_PING, fin=False),
    "oversize ping": frame(b"p" * 126, OP_PING),
    "continuation without start": frame(b"{}", OP_CONT),
    "new message inside a fragmented one": frame(b"{", OP_TEXT, fin=False) + frame(b"}", OP_TEXT),
}


@pytest.mark.parametrize("name", sorted(PROTOCOL_VIOLATIONS))
def test_protocol_violation_closes_1002(server, bystander, user, name):
    raw = RawSocket(server, user.token)
    raw.send(PROTOCOL_VIOLATIONS[name])
    closed_with(raw, 1002)
    raw.close()
    bystander.still_served()


@pytest.mark.parametrize("data", [
    frame(b'{"action":"\xff"}'),                                          # one frame
    frame(b'{"action":"\xe2\x82', fin=False) + frame(b'"}', OP_CONT),     # split code point, cut
], ids=["one frame", "split code point"])  # frames carry random masks: ids must not
def test_invalid_utf8_closes_1007(server, bystander, user, data):
    raw = RawSocket(server, user.token)
    raw.send(data)
    closed_with(raw, 1007)
    bystander.still_served()


def test_code_point_split_across_fragments_is_fine(server, user):
    raw = RawSocket(server, user.token)
    euro = '{"action":"join","roomId":"room_\u20ac"}'.encode("utf-8")
    cut = euro.index(b"\xe2") + 1
    raw.send(frame(euro[:cut], OP_TEXT, fin=False) + frame(euro[cut:], OP_CONT))
    assert raw.expect("error")["code"] == "not_found"  # valid text, no such room


def test_binary_frame_is_an_error_event_and_the_connection_stays(server, bystander, user):
    room = user.create_room()
    raw = RawSocket(server, user.token)
    raw.send(frame(b"\x00\x01\x02", OP_BINARY))
    event = raw.expect("error")
    assert event["code"] == "bad_request"
    raw.send_event(action="join", roomId=room)
    assert raw.expect("joined")["roomId"] == room
    bystander.still_served()


def test_ping_gets_its_pong_and_the_close_handshake_echoes_the_code(server, user):
    raw = RawSocket(server, user.token)
    raw.send(frame(b"are you there", OP_PING))
    opcode, payload = raw.recv_frame()
    assert (opcode, payload) == (0xA, b"are you there")
    raw.send(frame(b"\x0f\xa0bye", 0x8))  # 4000, an application code
    closing = raw.until_close()
    assert closing[0] == 4000


# -- authentication ------------------------------------------------------------

@pytest.mark.parametrize("first", [{"action": "join", "roomId": "room_1"},
                                   {"action": "join", "roomId": "room_1", "token": "x" * 43},
                                   {"action": "auth", "token": 12}])
def test_first_message_without_a_valid_token_is_unauthorized_1008(server, bystander, first):
    raw = RawSocket(server)
    raw.send(text(first))
    events = closed_with(raw, 1008)
    assert [e["code"] for e in events] == ["unauthorized"]
    bystander.still_served()


def test_bad_token_on_the_upgrade_is_unauthorized_1008(server, bystander):
    raw = RawSocket(server, token="not-a-token")
    events = closed_with(raw, 1008)
    assert [e["code"] for e in events] == ["unauthorized"]
    bystander.still_served()


def test_silent_connection_is_closed_after_auth_timeout(server, bystander):
    started = time.monotonic()
    raw = RawSocket(server)
    events = closed_with(raw, 1008, timeout=5)
    waited = time.monotonic() - started
    assert [e["code"] for e in events] == ["unauthorized"]
    assert waited >= 0.9, "closed after %.2f s, before auth_timeout = 1 s" % waited
    bystander.still_served()


@pytest.mark.slow
def test_authenticating_by_first_message_in_time_keeps_the_connection(server, user):
    raw = RawSocket(server)
    raw.send_event(action="auth", token=user.token)
    assert raw.expect("authenticated")["username"] == user.username
    deadline = time.monotonic() + 2.5  # well past auth_timeout
    while time.monotonic() < deadline:
        raw.send(frame(b"", OP_PING))
        assert raw.recv_frame()[0] == 0xA
    raw.send_event(action="join", roomId="room_999999999")
    assert raw.expect("error")["code"] == "not_found"


# -- floods --------------------------------------------------------------------

def test_flood_is_rate_limited_then_closed_1008_and_nothing_extra_is_stored(server, bystander):
    flooder = Client(server)
    assert flooder.post("/api/join-room", {"roomId": bystander.room}).status_code == 200
    raw = RawSocket(server, flooder.token)
    raw.send_event(action="join", roomId=bystander.room)
    raw.expect("joined")
    burst = b"".join(text({"action": "send-message", "roomId": bystander.room,
                           "message": "flood %d" % i}) for i in range(40))
    raw.send(burst)
    code, events = raw.until_close()
    assert code == 1008
    stored = [e for e in events if e["action"] == "new-message"]
    limited = [e for e in events if e["action"] == "error"]
    assert 5 <= len(stored) <= 6  # the burst (plus a token refilled meanwhile)
    assert limited and all(e["code"] == "rate_limited" for e in limited)
    assert len(limited) == 10  # [limits] flood_strikes: the tenth closes
    history = bystander.user.get("/api/chat-history/%s?limit=500" % bystander.room).json()
    from_flooder = [m["message"] for m in history["messages"] if m["sender"] == flooder.username]
    assert from_flooder == [e["message"] for e in stored]
    bystander.still_served()


def test_rate_limit_is_per_user_across_connections(server, bystander):
    spammer = Client(server)
    room = spammer.create_room()
    one, two = spammer.ws(join=room), spammer.ws(join=room)
    for i in range(5):
        two.say(room, "m%d" % i)
    one.until(lambda e: e.get("message") == "m4")
    one.say(room, "one too many")  # the burst was spent on the other connection
    seen = one.until(lambda e: e["action"] == "error")
    assert seen[-1]["code"] == "rate_limited" and seen[-1]["ref"] == "send-message"
    # A user who has not sent is not limited by someone else's flood.
    bystander.still_served()
    one.close(), two.close()


# -- origins: refused with HTTP 403 before the handshake -----------------------

def test_origin_default_is_same_origin_only(server, user):
    same = "http://127.0.0.1:%d" % server.port
    assert RawSocket(server, user.token, ["Origin: " + same]).status == 101
    assert RawSocket(server, user.token).status == 101  # no Origin: a script
    refused = RawSocket(server, user.token, ["Origin: http://evil.example"])
    assert refused.status == 403
    assert b'"error":"forbidden"' in refused.body
    other_port = RawSocket(server, user.token, ["Origin: http://127.0.0.1:1"])
    assert other_port.status == 403


@pytest.mark.slow
def test_origin_list_and_star(tmp_path):
    listed = Chatd("sqlite:///%s" % (tmp_path / "o.db"),
                   env={"CHATD_SERVER_ALLOWED_ORIGINS": "https://chat.example.com, https://b.example"}
                   ).start()
    star = Chatd("sqlite:///%s" % (tmp_path / "s.db"),
                 env={"CHATD_SERVER_ALLOWED_ORIGINS": "*"}).start()
    try:
        token = Client(listed).token
        assert RawSocket(listed, token, ["Origin: https://chat.example.com"]).status == 101
        assert RawSocket(listed, token, ["Origin: https://b.example"]).status == 101
        assert RawSocket(listed, token, ["Origin: https://evil.example"]).status == 403
        same = "http://127.0.0.1:%d" % listed.port
        assert RawSocket(listed, token, ["Origin: " + same]).status == 403  # the list replaces it
        raw = RawSocket(star, Client(star).token, ["Origin: https://anything.example"])
        assert raw.status == 101
    finally:
        listed.stop(), star.stop()


# -- keepalive ---------------------------------------------------------------------

@pytest.mark.slow
def test_server_pings_and_drops_a_silent_peer(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "k.db"),
                  env={"CHATD_WEBSOCKET_PING_INTERVAL": "0.5",
                       "CHATD_WEBSOCKET_IDLE_TIMEOUT": "2"}).start()
    try:
        user = Client(chatd)
        answering, silent = RawSocket(chatd, user.token), RawSocket(chatd, user.token)
        started = time.monotonic()
        pings = 0
        while time.monotonic() - started < 3.5:  # past idle_timeout
            opcode, payload = answering.recv_frame()
            if opcode == OP_PING:
                pings += 1
                answering.send(frame(payload, 0xA))
        assert pings >= 2  # the sweeper ticks once a second at most
        with pytest.raises((EOFError, ConnectionError)):
            while True:
                silent.recv_frame(timeout=5)  # pings, then the server drops it
        answering.send_event(action="join", roomId="room_999999999")
        assert answering.expect("error")["code"] == "not_found"
    finally:
        chatd.stop()


def test_a_peer_that_never_answers_our_close_is_dropped_after_write_timeout(tmp_path):
    # Authentication's, the pings' and the silence's deadlines are far off:
    # only the close's own (write_timeout after the peer was last heard from)
    # can drop the peer in time.
    chatd = Chatd("sqlite:///%s" % (tmp_path / "c.db"),
                  env={"CHATD_WEBSOCKET_AUTH_TIMEOUT": "600", "CHATD_WEBSOCKET_PING_INTERVAL": "3600",
                       "CHATD_WEBSOCKET_IDLE_TIMEOUT": "7200",
                       "CHATD_WEBSOCKET_WRITE_TIMEOUT": "1"}).start()
    try:
        owner, leaver = Client(chatd), Client(chatd)
        room = owner.create_room()
        assert leaver.post("/api/join-room", {"roomId": room}).status_code == 200
        silent = RawSocket(chatd, leaver.token)
        silent.send_event(action="join", roomId=room)
        silent.expect("joined")
        assert online(owner, room)[leaver.username]
        assert leaver.post("/api/logout").json() == {"status": "success"}
        code, events = silent.until_close()
        assert code == 1008 and [e["code"] for e in events if e["action"] == "error"] == ["unauthorized"]
        # The peer never answers the close: the server drops it, and it is offline.
        assert wait_for(lambda: not online(owner, room)[leaver.username], 15,
                        "the silent peer to be dropped")
    finally:
        chatd.stop()


# -- slow readers ------------------------------------------------------------------

SLOW = {"CHATD_WEBSOCKET_SEND_QUEUE": "50", "CHATD_WEBSOCKET_WRITE_TIMEOUT": "2",
        "CHATD_LIMITS_MESSAGES_PER_MINUTE": "1000000", "CHATD_LIMITS_MESSAGE_BURST": "100000"}


def online(client, room):
    members = client.get("/api/rooms/%s/members" % room).json()
    return {m["username"]: m["online"] for m in members}



class Listener(threading.Thread):
    """Reads a room's new-messages on its own thread, noting their ids in order."""

    def __init__(self, sock, expected):
        super().__init__(daemon=True)
        self.sock, self.expected = sock, expected
        self.order = []

    def run(self):
        while len(self.order) < self.expected:
            event = self.sock.recv(timeout=30)
            if event["action"] == "new-message":
                self.order.append(event["id"])


@pytest.mark.slow
def test_slow_reader_is_cut_off_and_others_get_everything_in_order(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "slow.db"), env=SLOW).start()
    try:
        owner, slow_user, sender = Client(chatd), Client(chatd), Client(chatd)
        room = owner.create_room()
        for member in (slow_user, sender):
            assert member.post("/api/join-room", {"roomId": room}).status_code == 200
        readers = [Client(chatd) for _ in range(3)]
        for member in readers:
            assert member.post("/api/join-room", {"roomId": room}).status_code == 200
        count, body = 400, "x" * 3000
        listeners = [Listener(member.ws(join=room), count) for member in readers]
        slow = RawSocket(chatd, slow_user.token, rcvbuf=4096)
        slow.send_event(action="join", roomId=room)
        slow.expect("joined")
        # From here on the slow client never reads. The sender reads its own
        # copies like any other member.
        out = sender.ws(join=room)
        listeners.append(Listener(out, count))
        for listener in listeners:
            listener.start()
        for i in range(count):
            out.say(room, "%04d %s" % (i, body))
            time.sleep(0.002)  # a steady stream, not one burst
        for listener in listeners:
            listener.join(30)
            assert len(listener.order) == count
            assert listener.order == sorted(listener.order)  # (their latency: bench/)
        # The slow client was cut off: it is offline for everyone, and what it
        # reads now ends in a 1013 close or, if even that could not be written
        # within the write deadline, in a dropped connection.
        assert wait_for(lambda: not online(owner, room)[slow_user.username], 10)
        with pytest.raises((Closing, EOFError, ConnectionError)) as ended:
            while True:
                slow.recv(timeout=10)
        if ended.type is Closing:
            assert ended.value.code == 1013
    finally:
        chatd.stop()


@pytest.mark.slow
def test_frames_from_many_rooms_never_interleave_on_one_socket(tmp_path):
    """Four rooms fan out big messages at once to one socket with a small window:
    every frame arrives whole, in order per room (partial sends, queued writes)."""
    chatd = Chatd("sqlite:///%s" % (tmp_path / "mix.db"),
                  env={"CHATD_LIMITS_MESSAGES_PER_MINUTE": "1000000",
                       "CHATD_LIMITS_MESSAGE_BURST": "100000"}).start()
    try:
        reader_user = Client(chatd)
        senders = [Client(chatd) for _ in range(4)]
        rooms = [sender.create_room() for sender in senders]
        reader = RawSocket(chatd, reader_user.token, rcvbuf=8192)
        for room in rooms:
            assert reader_user.post("/api/join-room", {"roomId": room}).status_code == 200
            reader.send_event(action="join", roomId=room)
            reader.expect("joined")
        count = 40
        sent = {room: ["%s %03d %s" % (room, i, chr(0x41 + i % 26) * 3900) for i in range(count)]
                for room in rooms}

        def send(sender, room):
            sock = sender.ws(join=room)
            for text in sent[room]:
                sock.say(room, text)
            sock.until(lambda e: e.get("message") == sent[room][-1], timeout=30)
            sock.close()

        threads = [threading.Thread(target=send, args=pair) for pair in zip(senders, rooms)]
        for thread in threads:
            thread.start()
        got = {room: [] for room in rooms}
        while sum(map(len, got.values())) < count * len(rooms):
            event = reader.recv(timeout=30)  # a spliced frame would not parse
            if event["action"] == "new-message":
                got[event["roomId"]].append(event["message"])
        for thread in threads:
            thread.join(30)
        assert got == sent
    finally:
        chatd.stop()
