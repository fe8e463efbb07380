"""The room log across three chatd processes on one PostgreSQL and a private Redis:
long polling woken from another process, mixed changes from several processes in one
order everywhere, and a client resuming after kill -9 of chatd with exactly history."""
import threading
import time

import requests

from helpers import Client
from roomlog_helpers import SEQUENCED, apply, events_after, history, replay
from test_cluster import cluster, pg_url, redis_server, running, run_threads, ws_on  # noqa: F401


def collect(sock, room, last_seq, timeout=60):
    """The sequenced events of `room` on this socket up to seq `last_seq`."""
    got = []
    deadline = time.monotonic() + timeout
    while not got or got[-1]["seq"] < last_seq:
        left = deadline - time.monotonic()
        assert left > 0, "got up to %s of %d" % (got[-1]["seq"] if got else None, last_seq)
        event = sock.recv(left)
        if event.get("action") in SEQUENCED and event["roomId"] == room:
            got.append(event)
    return got


def test_a_long_poll_on_one_process_wakes_on_a_message_stored_by_another(running):
    alice = Client(running[0])
    room = alice.create_room()
    answer = {}

    def poll():
        r = requests.get(running[1].url + "/api/rooms/%s/events?after=1&wait=20" % room,
                         headers=alice.headers(), timeout=30)
        answer["events"] = r.json()["events"]
    thread = threading.Thread(target=poll)
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)  # likely waiting by now; the answer is the same if not, only less telling
    assert alice.post("/api/rooms/%s/messages" % room, {"message": "from A"}).status_code == 201
    thread.join(25)
    assert [e["message"] for e in answer["events"]] == ["from A"]
    assert time.monotonic() - started < 15  # woken, not timed out


def test_mixed_changes_from_three_processes_arrive_in_one_order_everywhere(running):
    owner = Client(running[0])
    room = owner.create_room()
    users = [Client(proc) for proc in running]
    for user in users:
        user.post("/api/join-room", {"roomId": room})
    socks = [ws_on(proc, user, room) for proc, user in zip(running, users)]
    watchers = [ws_on(proc, owner, room) for proc in running]
    base = [None] * 3
    for i, sock in enumerate(socks):
        sock.say(room, "base %d" % i)
        base[i] = sock.expect("new-message", message="base %d" % i)["id"]
    rounds = 15

    def act(i):
        def run():
            for n in range(rounds):
                socks[i].say(room, "m%d-%d" % (i, n))
                socks[i].send(action="edit-message", roomId=room, id=base[i],
                              message="base %d v%d" % (i, n))
                socks[i].send(action="react", roomId=room, id=base[(i + 1) % 3],
                              emoji="e%d" % n)
            # a connection's actions are handled in order: once this is back, all are stored
            socks[i].say(room, "done %d" % i)
            socks[i].expect("new-message", message="done %d" % i, timeout=60)
        return run
    run_threads(act(0), act(1), act(2))
    final = socks[0]
    final.say(room, "the end")
    last = final.expect("new-message", message="the end", timeout=60)["seq"]
    seen = [collect(w, room, last) for w in watchers]
    first = seen[0][0]["seq"]
    assert [e["seq"] for e in seen[0]] == list(range(first, last + 1))
    assert seen[0] == seen[1] == seen[2]
    full = replay(ws_on(running[2], owner), room, 0, last)
    assert apply(full) == history(owner, room)
    assert events_after(owner, room, 0) == full[:500]


def test_a_client_resumes_after_kill_9_of_chatd_with_exactly_history(running):
    owner = Client(running[0])
    room = owner.create_room()
    writer = ws_on(running[1], owner, room)
    watcher = ws_on(running[2], owner, room)
    writer.say(room, "keep")
    keep = writer.expect("new-message", message="keep")["id"]
    stop = threading.Event()

    def traffic():
        n = 0
        while not stop.is_set() and n < 60:  # within the cluster's burst of 200
            try:
                writer.say(room, "t%d" % n)
                writer.send(action="react", roomId=room, id=keep, emoji="r%d" % (n % 5))
                if n % 7 == 0:
                    writer.send(action="edit-message", roomId=room, id=keep, message="k%d" % n)
            except Exception:
                return
            n += 1
    thread = threading.Thread(target=traffic)
    thread.start()
    largest = 0
    state = {}
    for _ in range(20):  # the watcher applies what it sees, keeping the largest seq
        event = watcher.recv(20)
        if event.get("action") in SEQUENCED:
            state = apply([event], state) if event["seq"] > largest else state
            largest = max(largest, event["seq"])
    running[2].kill()  # the watcher's chatd dies mid-traffic
    stop.set()
    thread.join(30)
    writer.say(room, "after")
    last = writer.expect("new-message", message="after", timeout=60)["seq"]
    resumed = replay(ws_on(running[0], owner), room, largest, last)
    assert [e["seq"] for e in resumed] == list(range(largest + 1, last + 1))
    assert apply(resumed, state) == history(owner, room)
