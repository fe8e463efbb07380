"""Deleting erases (PROTOCOL section 7), the per-user rate over every change, and the
sender's read marker: against real chatd processes."""
import os
import urllib.parse

import pytest
import requests

from admin_tool import chat_admin, ok
from helpers import Chatd, Client, unique
from roomlog_helpers import events_after, history, replay


@pytest.mark.slow
def test_a_deleted_text_is_gone_from_the_sqlite_file_history_replay_and_export(tmp_path):
    path = tmp_path / "chat.db"
    url = "sqlite:///%s" % path
    server = Chatd(url).start()
    secret = "erase-me-" + unique()
    try:
        alice = Client(server)
        room = alice.create_room()
        sock = alice.ws(join=room)
        sock.say(room, secret + " first")
        first = sock.expect("new-message")
        for version in ("second", "third"):
            sock.send(action="edit-message", roomId=room, id=first["id"],
                      message="%s %s" % (secret, version))
            sock.expect("message-edited", message="%s %s" % (secret, version))
        sock.send(action="react", roomId=room, id=first["id"], emoji="👀")
        sock.say(room, "what stays")
        kept = sock.expect("new-message", message="what stays")
        sock.send(action="delete-message", roomId=room, id=first["id"])
        deleted = sock.expect("message-deleted", id=first["id"])
        assert deleted["deletedBy"] == alice.username
        seen = replay(alice.ws(), room, 0, deleted["seq"])
        assert secret not in repr(seen)
        assert [e.get("deleted") for e in seen if e.get("id") == first["id"] and
                e["action"] in ("new-message", "message-edited")] == [True, True, True]
        assert list(history(alice, room)) == [kept["id"]]
        assert secret not in repr(events_after(alice, room))
        sock.close()
    finally:
        assert server.stop() == 0
    assert not os.path.exists(str(path) + "-wal")
    assert secret.encode() not in path.read_bytes()
    exported = ok(chat_admin(url, "history", "export", room))
    assert secret not in exported and "what stays" in exported


@pytest.fixture(scope="module")
def strict(database_url):
    """A chatd with a small rate: 60 a minute, a burst of 3."""
    chatd = Chatd(database_url, env={"CHATD_LIMITS_MESSAGES_PER_MINUTE": "60",
                                     "CHATD_LIMITS_MESSAGE_BURST": "3",
                                     "CHATD_LIMITS_FLOOD_STRIKES": "1000"}).start()
    yield chatd
    chatd.stop()


def test_every_change_takes_from_one_bucket_whatever_the_transport(strict):
    alice = Client(strict)
    room = alice.create_room()
    sock = alice.ws(join=room)
    base = "/api/rooms/%s/messages" % room
    r = alice.post(base, {"message": "one"})
    assert r.status_code == 201
    msg = r.json()["id"]
    sock.send(action="react", roomId=room, id=msg, emoji="👍")
    sock.send(action="edit-message", roomId=room, id=msg, message="two")
    sock.expect("message-edited")
    # the bucket is empty now: each transport says so, and when to retry
    sock.send(action="unreact", roomId=room, id=msg, emoji="👍")
    err = sock.expect("error", ref="unreact")
    assert err["code"] == "rate_limited" and err["retryAfter"] >= 1
    r = requests.delete("%s%s/%d" % (strict.url, base, msg), headers=alice.headers(), timeout=10)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert alice.post(base, {"message": "three"}).status_code == 429
    path = "%s/%d/reactions/%s" % (base, msg, urllib.parse.quote("👍"))
    assert requests.put(strict.url + path, headers=alice.headers(), timeout=10).status_code == 429


def test_sending_moves_the_senders_read_marker(server):
    """readUpTo follows the sender's own messages, over either transport (PROTOCOL
    section 8), as soon as anyone can read it; the mention counts for its user."""
    alice, bob = Client(server), Client(server)
    room = alice.create_room()
    bob.post("/api/join-room", {"roomId": room})
    sock = alice.ws(join=room)
    sock.say(room, "hello @" + bob.username)
    first = sock.expect("new-message")
    r = alice.post("/api/rooms/%s/messages" % room, {"message": "again"})
    second = r.json()["id"]

    def counts(user):
        return next(item for item in user.get("/api/rooms").json()
                    if item["roomId"] == room)
    assert counts(alice)["readUpTo"] == second and counts(alice)["unread"] == 0
    seen_by_bob = counts(bob)
    assert seen_by_bob["readUpTo"] < first["id"]
    assert (seen_by_bob["unread"], seen_by_bob["mentions"]) == (2, 1)
