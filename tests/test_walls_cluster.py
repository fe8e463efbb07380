"""Rooms with walls across three chatd processes on one PostgreSQL and a private Redis:
a ban reaches the banned user's sockets on every process, and a direct room asked
for by both users at once on different processes is one room."""
import threading

import requests

from helpers import Client, unique
from test_cluster import cluster, pg_url, redis_server, running, ws_on  # noqa: F401 (fixtures)


def as_user_on(proc, user):
    """The same user (same token) talking to another process."""
    other = Client(proc, user.username, register=False)
    other.token = user.token
    return other


def test_a_ban_takes_the_user_out_on_every_process_at_once(running):
    a, b, c = running
    owner, mod, spammer = Client(a), Client(a), Client(a)
    room = owner.post("/api/create-room", {"roomName": unique("busy ")}).json()["roomId"]
    assert owner.post("/api/rooms/%s/members" % room, {"username": mod.username}).ok
    assert requests.patch(a.url + "/api/rooms/%s/members/%s" % (room, mod.username),
                          json={"role": "moderator"}, headers=owner.headers(), timeout=10).ok
    assert spammer.post("/api/join-room", {"roomId": room}).ok
    sockets = [ws_on(proc, spammer, room) for proc in running]
    talker = ws_on(a, owner, room)
    try:
        r = as_user_on(b, mod).post("/api/rooms/%s/bans" % room,
                                    {"username": spammer.username, "reason": "spam"})
        assert r.status_code == 200, r.text
        for sock in sockets:
            assert sock.expect("room-removed", timeout=5) == {
                "action": "room-removed", "roomId": room, "banned": True}
        # A message after the ban, then a per-user event from the same process:
        # each socket gets the second without the first.
        talker.say(room, "after the ban")
        talker.expect("new-message", message="after the ban")
        other = owner.post("/api/create-room", {"roomName": unique("other ")}).json()["roomId"]
        assert owner.post("/api/rooms/%s/members" % other, {"username": spammer.username}).ok
        for sock in sockets:
            seen = sock.until(lambda e: e.get("action") == "room-added", timeout=5)
            assert not any(e.get("action") == "new-message" for e in seen), seen
            sock.send(action="send-message", roomId=room, message="let me back")
            assert sock.expect("error")["code"] == "not_joined"
        for proc in running:
            r = as_user_on(proc, spammer).post("/api/join-room", {"roomId": room})
            assert r.status_code == 403, r.text
    finally:
        for sock in sockets + [talker]:
            sock.close()


def test_direct_rooms_asked_for_at_once_on_two_processes_are_one_room(running):
    a, b, _ = running
    pairs = [(Client(a), Client(b)) for _ in range(4)]
    for alice, bob in pairs:
        answers = [None, None]
        start = threading.Barrier(2)

        def ask(i, user, peer):
            start.wait()
            answers[i] = user.post("/api/direct", {"username": peer.username})

        threads = [threading.Thread(target=ask, args=(0, alice, bob)),
                   threading.Thread(target=ask, args=(1, bob, alice))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(r.status_code for r in answers) == [200, 201], [r.text for r in answers]
        assert answers[0].json()["roomId"] == answers[1].json()["roomId"]
        rooms = [item for item in alice.get("/api/rooms").json() if item["kind"] == "direct"]
        assert len(rooms) == 1 and rooms[0]["peer"] == bob.username
        members = alice.get("/api/rooms/%s/members" % rooms[0]["roomId"]).json()
        assert sorted(m["username"] for m in members) == sorted([alice.username, bob.username])
