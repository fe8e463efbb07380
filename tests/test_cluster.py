"""Several chatd processes on one PostgreSQL and one Redis: PROTOCOL.md section 3's
guarantees across processes, a process killed with -9, and Redis restarting under
traffic. Three real chatd processes; a private redis-server the tests may stop."""
import os
import subprocess
import sys
import threading
import time

import psycopg2
import pytest
import requests
import websocket

import services
from helpers import Chatd, Client, Closed, Socket, history, unique, wait_for

BURST = 200  # messages a user may send at once (per minute: 60, one a second)
POOL = 4  # PostgreSQL connections per process: small, so the tests press on the pool
ENV = {"CHATD_LIMITS_MESSAGES_PER_MINUTE": "60", "CHATD_LIMITS_MESSAGE_BURST": str(BURST),
       "CHATD_LIMITS_FLOOD_STRIKES": "1000", "CHATD_AUTH_LOGIN_FAILURES_PER_USER": "10",
       "CHATD_DATABASE_POOL_SIZE": str(POOL)}
PRESENCE_DEADLINE = 30  # seconds: a dead process's users must be gone by then


@pytest.fixture(scope="module")
def pg_url():
    with services.postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = services.RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(pg_url, redis_server):
    """Three chatd processes A, B, C on one database and one broker."""
    procs = []
    try:
        for _ in range(3):
            procs.append(Chatd(pg_url, broker=redis_server.url, env=ENV).start())
        yield procs
    finally:
        for proc in procs:
            proc.stop()


@pytest.fixture
def running(cluster, redis_server):
    """The cluster, with any process a previous test killed started again."""
    if redis_server.proc.poll() is None:
        redis_server.thaw()  # a failed outage test may have left it frozen
    else:
        redis_server.start()
    for proc in cluster:
        if proc.proc.poll() is not None:
            proc.start()
    for proc in cluster:
        wait_for(lambda: health(proc).get("broker") == "ok", what="broker ok on %s" % proc.url)
    return cluster


# -- helpers ------------------------------------------------------------------

def health(proc):
    try:
        r = requests.get(proc.url + "/healthz", timeout=5)
    except requests.RequestException:
        return {}
    return dict(r.json(), code=r.status_code)


def ws_on(proc, user, room=None, since=None):
    """`user`'s WebSocket on process `proc`, joined to `room` if given (`.joined`)."""
    sock = Socket(proc.ws_url + "?token=" + user.token)
    if room:
        sock.joined = sock.join(room, since)
    return sock


def messages(sock, room, count, timeout=60):
    """The next `count` new-message events of `room` on this socket."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        assert left > 0, "got %d of %d messages: %r" % (len(got), count, [m["id"] for m in got])
        event = sock.recv(left)
        if event.get("action") == "new-message" and event["roomId"] == room:
            got.append(event)
    return got




def in_order_once(events, first_id, count):
    """Every id from first_id, each once, in order (ids are dense per room)."""
    return [e["id"] for e in events] == list(range(first_id, first_id + count))


def run_threads(*targets):
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)


# -- ordering and replay ------------------------------------------------------

def test_concurrent_senders_on_three_processes_every_client_gets_all_in_order_once(running):
    per_sender = 60
    owner = Client(running[0])
    room = owner.create_room()
    senders = [Client(proc) for proc in running]
    watchers = [Client(proc) for proc in running]
    sender_socks = [ws_on(proc, user, room) for proc, user in zip(running, senders)]
    watcher_socks = [ws_on(proc, user, room) for proc, user in zip(running, watchers)]
    start = threading.Barrier(len(senders))
    received = {}

    def send(i):
        start.wait()
        for n in range(per_sender):
            sender_socks[i].say(room, "p%d-%d" % (i, n), client_msg_id="p%d-%d" % (i, n))

    def receive(key, sock):
        received[key] = messages(sock, room, per_sender * len(senders))

    run_threads(*[lambda i=i: send(i) for i in range(3)],
                *[lambda i=i, s=s: receive(("sender", i), s) for i, s in enumerate(sender_socks)],
                *[lambda i=i, s=s: receive(("watcher", i), s) for i, s in enumerate(watcher_socks)])

    stored = history(owner, room)
    assert len(stored) == 3 * per_sender and in_order_once(stored, stored[0]["id"], len(stored))
    for key, events in received.items():
        assert [e["id"] for e in events] == [m["id"] for m in stored], key
        assert [e["message"] for e in events] == [m["message"] for m in stored], key
    for i in range(3):  # each sender's own messages were stored in the order it sent them
        mine = [m["message"] for m in stored if m["message"].startswith("p%d-" % i)]
        assert mine == ["p%d-%d" % (i, n) for n in range(per_sender)]


def test_join_with_since_on_another_process(running):
    a, b, c = running
    alice = Client(a)
    room = alice.create_room()
    writer = ws_on(a, alice, room)
    for n in range(20):
        writer.say(room, "m%d" % n)
    stored = messages(writer, room, 20)
    reader = Client(c)
    sock = ws_on(c, reader, room, since=stored[4]["id"])
    replay = messages(sock, room, 15)
    assert [e["message"] for e in replay] == ["m%d" % n for n in range(5, 20)]
    writer.say(room, "live")  # live after the replay, stored through a third process
    assert messages(sock, room, 1)[0]["message"] == "live"
    b_sock = ws_on(b, reader, room, since=0)
    assert [e["message"] for e in messages(b_sock, room, 21)] == \
        ["m%d" % n for n in range(20)] + ["live"]


# -- presence -----------------------------------------------------------------

def settle(room, obs, markers):
    """Events on obs until a marker sent from each of `markers` (one socket per
    process) has arrived: whatever a process published before it came first."""
    texts = set()
    for sock in markers:
        text = unique("marker ")
        sock.say(room, text)
        texts.add(text)
    seen = []
    while texts:
        seen += obs.until(lambda e: e.get("action") == "new-message" and e["message"] in texts)
        texts.discard(seen[-1]["message"])
    return seen


def online(user, room, name):
    members = user.get("/api/rooms/%s/members" % room).json()
    return any(m["username"] == name and m["online"] for m in members)


def test_presence_is_once_per_user_across_processes(running):
    a, b, c = running
    observer = Client(c)
    room = observer.create_room()
    obs = ws_on(c, observer, room)
    pinger = Client(a)
    markers = [ws_on(proc, pinger, room) for proc in running]
    roamer = Client(a)
    on_a = ws_on(a, roamer, room)
    on_b = ws_on(b, roamer, room)
    assert roamer.username in on_b.joined["members"]
    assert online(observer, room, roamer.username)
    on_a.close()
    on_b.close()
    wait_for(lambda: not online(observer, room, roamer.username), what="the roamer to go offline")
    events = settle(room, obs, markers)
    presence = ("user-joined", "user-left")  # member-added names the roamer too (section 7)
    assert [e["action"] for e in events if e.get("username") == roamer.username and
            e["action"] in presence] == ["user-joined", "user-left"]


def test_killed_process_takes_its_presence_within_30s(running):
    a, b, c = running
    observer = Client(a)
    room = observer.create_room()
    obs = ws_on(a, observer, room)
    doomed = Client(c)  # only on C: gone with it
    ws_on(c, doomed, room)
    obs.expect("user-joined", username=doomed.username)
    survivor = Client(b)  # on C and on B: stays
    ws_on(c, survivor, room)
    on_b = ws_on(b, survivor, room)
    obs.expect("user-joined", username=survivor.username)
    c.kill()
    killed = time.monotonic()
    left = obs.expect("user-left", timeout=PRESENCE_DEADLINE + 5)
    assert time.monotonic() - killed <= PRESENCE_DEADLINE
    assert left == {"action": "user-left", "username": doomed.username, "roomId": room}
    assert not online(observer, room, doomed.username)
    assert online(observer, room, survivor.username)
    on_b.close()
    assert obs.expect("user-left")["username"] == survivor.username


def test_typing_room_deletion_and_disabling_reach_every_process(running, pg_url):
    a, b, c = running
    owner = Client(a)
    room = owner.create_room()
    typist = Client(a)
    typing_sock = ws_on(a, typist, room)
    watchers = [ws_on(proc, Client(proc), room) for proc in (b, c)]
    typing_sock.send(action="typing", roomId=room)
    for sock in watchers:
        assert sock.expect("user-typing")["username"] == typist.username
    doomed = ws_on(c, typist, room)
    admin(pg_url, "user", "disable", typist.username)  # chat-admin, on the database alone
    for sock in (typing_sock, doomed):
        assert sock.close_code() == 1008
    admin(pg_url, "room", "delete", room, "--yes")
    for sock in watchers:
        assert sock.expect("room-deleted", timeout=5)["roomId"] == room


def admin(database, *args):
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "chat-admin"),
                             "--database", database, *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


# -- limits across processes --------------------------------------------------

def answers(sock, mine):
    """(acknowledged, rate limited) among this socket's sends, read until each is answered."""
    acked = limited = 0
    while acked + limited < len(mine):
        event = sock.recv(15)
        if event.get("action") == "new-message" and event.get("clientMsgId") in mine:
            acked += 1
        elif event.get("action") == "error" and event.get("code") == "rate_limited":
            limited += 1
    return acked, limited


def test_message_rate_limit_is_per_user_across_processes(running):
    user = Client(running[0])
    room = user.create_room()
    socks = [ws_on(proc, user, room) for proc in running]
    sends = BURST + 60  # 20 over the burst on each process: per-process buckets would take all
    for n in range(sends):
        socks[n % 3].say(room, "flood %d" % n, client_msg_id="f%d" % n)
    results = [answers(sock, {"f%d" % n for n in range(i, sends, 3)})
               for i, sock in enumerate(socks)]
    accepted = sum(acked for acked, _ in results)
    # One bucket for the user across processes: the burst, plus one a second refilled.
    assert BURST <= accepted <= BURST + 10
    assert sum(limited for _, limited in results) == sends - accepted
    assert len(history(user, room)) == accepted


def test_login_throttle_is_per_user_across_processes(running):
    user = Client(running[0])
    for n in range(10):  # 4 failures on A, 3 on B, 3 on C: 10 for this user in all
        r = requests.post(running[n % 3].url + "/api/login",
                          json={"username": user.username, "password": "wrong password"},
                          timeout=10)
        assert r.status_code == 401
    for proc in running:
        r = requests.post(proc.url + "/api/login",
                          json={"username": user.username, "password": user.password},
                          timeout=10)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


# -- failures -----------------------------------------------------------------

OUTAGES = {  # (take Redis away, bring it back)
    "restart": (lambda redis: redis.stop(), lambda redis: redis.start()),
    "unreachable": (lambda redis: redis.freeze(), lambda redis: redis.thaw()),
}


@pytest.mark.parametrize("outage", sorted(OUTAGES))
def test_redis_outage_under_traffic_loses_nothing(running, redis_server, outage):
    """Redis restarting (its data lost) or not answering for a while, under traffic."""
    away, back = OUTAGES[outage]
    a, b, c = running
    owner = Client(a)
    room = owner.create_room()
    procs = running * 2  # two users on each process, each under the rate limit
    socks = [ws_on(proc, Client(proc), room) for proc in procs]
    sent = []
    stop = threading.Event()

    def traffic():  # every 20 ms a message, from A, B and C in turn
        while not stop.is_set():
            text = "t%d" % len(sent)
            socks[len(sent) % len(socks)].say(room, text, client_msg_id=text)
            sent.append(text)
            stop.wait(0.02)

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        wait_for(lambda: len(sent) > 30, what="traffic before the restart")
        away(redis_server)
        for proc in running:
            wait_for(lambda: health(proc).get("broker") == "down", what="broker down")
            assert health(proc)["code"] == 200 and health(proc)["database"] == "ok"
        during = len(sent)
        wait_for(lambda: len(sent) > during + 30, what="traffic while Redis is down")
        back(redis_server)
        for proc in running:
            wait_for(lambda: health(proc).get("broker") == "ok", what="broker back", timeout=30)
        after = len(sent)
        wait_for(lambda: len(sent) > after + 30, what="traffic after the restart")
    finally:
        stop.set()
        thread.join(10)
    total = len(sent)
    # The last sends may still be on their way to the database: wait for them
    # (a lost one fails here, loudly), then compare.
    wait_for(lambda: len(history(owner, room)) >= total, what="every message sent stored")
    stored = history(owner, room)
    assert sorted(m["message"] for m in stored) == sorted(sent)
    assert in_order_once(stored, stored[0]["id"], total)
    for sock in socks:  # connected throughout: resync filled in what pub/sub missed
        assert in_order_once(messages(sock, room, total, timeout=30), stored[0]["id"], total)
    half = stored[total // 2]["id"]
    late = ws_on(b, Client(b), room, since=half)
    assert [e["id"] for e in messages(late, room, len(stored) - total // 2 - 1)] == \
        [m["id"] for m in stored[total // 2 + 1:]]


GONE = (Closed, OSError, websocket.WebSocketConnectionClosedException)


def test_process_killed_mid_traffic_clients_resume_elsewhere(running):
    a, b, c = running
    owner = Client(a)
    room = owner.create_room()
    steady = ws_on(a, Client(a), room)
    mover = Client(c)  # sends and reads on C until C dies, then on B
    count = 150
    events = []  # every new-message the mover read, on C and then on B
    acked = set()
    resent = set()
    resumed = []

    def read(sock, timeout):
        try:
            while True:
                event = sock.recv(timeout)
                if event.get("action") == "new-message":
                    events.append(event)
                    acked.add(event.get("clientMsgId"))
        except websocket.WebSocketTimeoutException:
            pass

    def run_mover():
        sock, n = ws_on(c, mover, room), 0
        while len(acked) < count:
            try:
                if n < count:
                    sock.say(room, "x%d" % n, client_msg_id="x%d" % n)
                    n += 1
                read(sock, 0.01 if n < count else 5)
            except GONE:
                last = max((e["id"] for e in events), default=0)
                sock = ws_on(b, mover, room, since=last)
                resumed.append(last)
                for k in range(n):  # what has no acknowledgement is sent again, same clientMsgId
                    if "x%d" % k not in acked:
                        resent.add("x%d" % k)
                        sock.say(room, "x%d" % k, client_msg_id="x%d" % k)

    thread = threading.Thread(target=run_mover)
    thread.start()
    wait_for(lambda: len(acked) > 40, what="traffic before the kill")
    c.kill()
    thread.join(90)
    assert not thread.is_alive() and len(resumed) == 1
    stored = history(owner, room)
    assert sorted(m["message"] for m in stored) == sorted("x%d" % n for n in range(count))
    first_seen = []
    for event in events:
        if event["id"] in first_seen:  # only a retry's acknowledgement may come twice
            assert event["clientMsgId"] in resent
        else:
            first_seen.append(event["id"])
    assert first_seen == [m["id"] for m in stored]
    assert [e["id"] for e in messages(steady, room, count)] == [m["id"] for m in stored]


# -- PostgreSQL under gevent --------------------------------------------------

def test_a_blocked_query_stalls_no_one_else(running, pg_url):
    a = running[0]
    user = Client(a)
    room = user.create_room()
    sock = ws_on(a, user, room)
    room_pk = int(room.split("_")[1])
    locker = psycopg2.connect(pg_url)
    try:
        with locker.cursor() as cur:  # hold the room's row: storing a message must wait
            cur.execute('SELECT 1 FROM "room" WHERE "id" = %s FOR UPDATE', (room_pk,))
            sock.say(room, "waits for the lock")
            started = time.monotonic()
            for _ in range(5):
                assert user.get("/api/rooms").status_code == 200
                assert health(a)["code"] == 200
            other = Client(a)  # a new user, a new room, a WebSocket join there
            ws_on(a, other, other.create_room())
            assert time.monotonic() - started < 5
        locker.rollback()
    finally:
        locker.close()
    assert messages(sock, room, 1)[0]["message"] == "waits for the lock"


def test_connections_go_back_to_the_pool(running, pg_url):
    a = running[0]
    user = Client(a)
    room = user.create_room()
    results = []

    def read():
        results.append(user.get("/api/chat-history/" + room).status_code)

    run_threads(*[read for _ in range(40)])  # ten times the pool, at once
    assert results == [200] * 40
    assert len(backend_states(pg_url)) <= 3 * POOL
    # Every connection came back with its transaction finished (a pooled one left
    # inside a transaction would stay so; the pollers' are gone in microseconds).
    wait_for(lambda: "idle in transaction" not in backend_states(pg_url),
             what="no connection idle in a transaction", timeout=5)


def backend_states(pg_url):
    """The state of every connection to the test database but this one."""
    admin = psycopg2.connect(pg_url)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT state FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid()")
            return [state for (state,) in cur.fetchall()]
    finally:
        admin.close()
