"""Faults done to a real chatd: kill -9 under load, SIGTERM, a locked database."""
import json
import random
import socket
import sqlite3
import threading
import time

import pytest
import requests

from helpers import GENEROUS, Chatd, Client, history, room_log, unique, wait_for
from rawws import RawSocket, http_head


def stored_texts(client, room):
    """{id: text} of every stored message of the room."""
    return {m["id"]: m["message"] for m in history(client, room)}


# -- kill -9 under a write load --------------------------------------------------

class Writer(threading.Thread):
    """Sends messages as fast as they are acknowledged; notes every new-message it sees."""

    def __init__(self, client, room, stop):
        super().__init__(daemon=True)
        self.sock = client.ws(join=room)
        self.room, self.stop = room, stop
        self.seen = {}  # id -> text, from every new-message this connection received

    def run(self):
        n = 0
        try:
            while not self.stop.is_set():
                for _ in range(5):  # a few in flight at once
                    n += 1
                    self.sock.say(self.room, "%s #%d" % (self.name, n))
                for _ in range(5):
                    event = self.sock.recv(timeout=5)
                    if event.get("action") == "new-message":
                        self.seen[event["id"]] = event["message"]
        except Exception:
            pass  # the server was killed under us: expected




def test_kill_9_under_load_loses_no_acknowledged_message(database_url):
    chatd = Chatd(database_url, env=GENEROUS).start()
    try:
        owner = Client(chatd)
        rooms = [owner.create_room() for _ in range(2)]
        users = [Client(chatd) for _ in range(4)]
        for user in users:
            for room in rooms:
                assert user.post("/api/join-room", {"roomId": room}).status_code == 200
        for round_ in range(3):
            stop = threading.Event()
            writers = [Writer(user, rooms[i % 2], stop) for i, user in enumerate(users)]
            for writer in writers:
                writer.start()
            wait_for(lambda: all(len(w.seen) >= 20 for w in writers), 10)
            time.sleep(random.uniform(0, 0.2))  # a random moment of the load
            chatd.kill()  # SIGKILL: no chance to flush anything
            stop.set()
            for writer in writers:
                writer.join(10)
            chatd.start()
            for user in users:
                user.login()
            stored = {room: stored_texts(owner, room) for room in rooms}
            for writer in writers:
                assert writer.seen, "the load produced nothing before the kill"
                lost = {i: t for i, t in writer.seen.items() if stored[writer.room].get(i) != t}
                assert not lost, "round %d: acknowledged but not in history: %r" % (round_, lost)
            for room in rooms:  # the room's log stays dense: nothing half-written
                seqs = [event["seq"] for event in room_log(owner, room)]
                assert seqs == list(range(1, len(seqs) + 1))
        # The restarted server serves as before.
        sock = users[0].ws(join=rooms[0])
        sock.say(rooms[0], "after the crashes")
        assert sock.expect("new-message")["message"] == "after the crashes"
    finally:
        chatd.stop()


# -- SIGTERM ---------------------------------------------------------------------

def test_sigterm_closes_websockets_1001_and_exits_0_within_10s(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "term.db"), env=GENEROUS).start()
    user, listener_user = Client(chatd), Client(chatd)
    room = user.create_room()
    assert listener_user.post("/api/join-room", {"roomId": room}).status_code == 200
    listener = listener_user.ws(join=room)
    # A peer that never reads nor answers the close handshake must not hold the exit up.
    deaf = RawSocket(chatd, user.token, rcvbuf=4096)
    deaf.send_event(action="join", roomId=room)
    deaf.expect("joined")
    sender = user.ws(join=room)
    count = 300
    for i in range(count):  # the listener reads none of these yet: a backlog
        sender.say(room, "%03d %s" % (i, "x" * 1000))
    acks = [e for e in sender.until(lambda e: e.get("message", "").startswith("%03d" % (count - 1)))
            if e["action"] == "new-message"]
    assert len(acks) == count
    port, started = chatd.port, time.monotonic()
    chatd.proc.terminate()
    # Every frame queued before SIGTERM reaches the listener, then the 1001.
    got = listener.until(lambda e: e.get("message", "").startswith("%03d" % (count - 1)))
    assert [e["id"] for e in got if e["action"] == "new-message"] == [a["id"] for a in acks]
    assert listener.close_code() == 1001
    assert sender.close_code() == 1001
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    code = chatd.proc.wait(15)
    took = time.monotonic() - started
    assert code == 0 and took < 10, "exit %s after %.1f s" % (code, took)
    assert "stopped" in chatd.log()
    chatd.stop()  # already gone: forgets the old address
    chatd.start()
    user.login()
    assert len(stored_texts(user, room)) == count
    chatd.stop()


def test_sigterm_lets_a_request_in_flight_finish(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "flight.db")).start()
    user = Client(chatd)
    body = json.dumps({"roomName": unique("late ")}).encode()
    sock = socket.create_connection(("127.0.0.1", chatd.port), timeout=10)
    sock.sendall(("POST /api/create-room HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Authorization: Bearer %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n"
                  % (user.token, len(body))).encode())
    # 100 Continue comes when chatd starts reading the body: the request is in flight.
    assert http_head(sock, time.monotonic() + 10)[0] == 100
    port, stopped = chatd.port, time.monotonic()
    chatd.proc.terminate()

    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True
    assert wait_for(refused, 5)  # shutting down: no new connections
    sock.sendall(body)
    status, _, rest = http_head(sock, time.monotonic() + 10)
    assert status == 201
    assert chatd.proc.wait(15) == 0
    assert time.monotonic() - stopped < 5, "the answered keep-alive connection held the exit up"
    sock.close()


# -- the database locked by another process ------------------------------------------

@pytest.fixture
def locked_server(tmp_path):
    path = tmp_path / "locked.db"
    chatd = Chatd("sqlite:///%s" % path, env=GENEROUS).start()
    yield chatd, str(path)
    chatd.stop()


class Lock:
    """Another process's write transaction (BEGIN EXCLUSIVE) held on the database file.

    In WAL mode this is the write lock: nobody else can write, readers still
    read. It is what a stuck chat-admin, or a tool left in a transaction, does.
    """

    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None, timeout=5)

    def __enter__(self):
        self.db.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc):
        self.db.execute("ROLLBACK")
        self.db.close()


def test_locked_database_gets_json_503_and_the_server_keeps_serving(locked_server):
    chatd, path = locked_server
    user = Client(chatd)
    room = user.create_room()
    sock = user.ws(join=room)
    with Lock(path):
        started = time.monotonic()
        answer = requests.post(chatd.url + "/api/create-room", json={"roomName": unique("r ")},
                               headers=user.headers(), timeout=30)
        waited = time.monotonic() - started
        assert answer.status_code == 503
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json()["status"] == "error" and answer.json()["error"] == "unavailable"
        assert waited < 10, "a write waited %.1f s for the lock" % waited
        health = requests.get(chatd.url + "/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["database"] == "down"
        # Reads still work: WAL readers do not wait for the writer.
        assert user.get("/api/chat-history/" + room).status_code == 200
        sock.say(room, "while locked")  # waits for the lock (next test), is not lost
    # Released: everything works again, on the same connection too.
    assert wait_for(lambda: requests.get(chatd.url + "/healthz", timeout=5).status_code == 200, 5)
    assert sock.expect("new-message")["message"] == "while locked"
    sock.say(room, "after the lock")
    assert sock.expect("new-message")["message"] == "after the lock"
    assert list(stored_texts(user, room).values()) == ["while locked", "after the lock"]
    sock.close()


def test_messages_sent_while_the_file_is_locked_past_the_busy_timeout_are_all_stored(
        locked_server):
    """The message writer waits out a lock held longer than its busy timeout
    (models.LOCK_WAIT, 5 s): every message is acknowledged once it is released."""
    chatd, path = locked_server
    users = [Client(chatd) for _ in range(3)]
    room = users[0].create_room()
    socks = []
    for user in users:
        user.post("/api/join-room", {"roomId": room})
        socks.append(user.ws(join=room))
    with Lock(path):
        for n, sock in enumerate(socks):
            for i in range(5):
                sock.say(room, "m%d.%d" % (n, i), client_msg_id="c%d.%d" % (n, i))
        time.sleep(6.5)  # the fault: a lock held past the writer's busy timeout
    for n, sock in enumerate(socks):
        acks = [e for e in sock.until(
            lambda e: e.get("action") == "error" or e.get("clientMsgId") == "c%d.4" % n,
            timeout=30) if e.get("action") in ("new-message", "error")]
        assert [e["action"] for e in acks if e.get("action") == "error"] == []
        assert {e["clientMsgId"] for e in acks} >= {"c%d.%d" % (n, i) for i in range(5)}
    stored = stored_texts(users[0], room)
    assert sorted(stored.values()) == sorted("m%d.%d" % (n, i) for n in range(3) for i in range(5))
    assert "Traceback" not in chatd.log(), chatd.log()
    for sock in socks:
        sock.close()


def test_healthz_answers_quickly_while_a_write_waits_for_the_lock(locked_server):
    chatd, path = locked_server
    user = Client(chatd)
    with Lock(path):
        waiting = threading.Thread(target=lambda: user.post("/api/create-room",
                                                            {"roomName": unique("r ")}))
        waiting.start()
        slowest = 0.0
        for _ in range(10):
            started = time.monotonic()
            assert requests.get(chatd.url + "/healthz", timeout=5).status_code == 503
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < 1.5, "/healthz took %.2f s while a write waited" % slowest
        waiting.join(30)
    assert requests.get(chatd.url + "/healthz", timeout=5).status_code == 200
