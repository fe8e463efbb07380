"""PROTOCOL.md section 7 against a real chatd, on SQLite and PostgreSQL: every change
is an event in the room's one sequence; replay, /events and history agree."""
import urllib.parse

import pytest

from helpers import unique
from roomlog_helpers import SEQUENCED, apply, events_after, history, replay

WAITERS = 200  # long polls at once (under [server] max_connections_per_address)


def pair(client):
    """alice owns a room bob is in, both joined on a WebSocket."""
    alice, bob = client(), client()
    room = alice.create_room()
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200
    return alice, bob, room, alice.ws(join=room), bob.ws(join=room)


def said(sock, room, text, **extra):
    sock.send(action="send-message", roomId=room, message=text, **extra)
    return sock.expect("new-message", message=text)


def error(sock, ref):
    return sock.expect("error", ref=ref)


def test_each_action_makes_its_event_with_seq_one_more_each_time(client):
    alice, bob, room, a, b = pair(client)
    first = said(a, room, "hello @%s and @nobody" % bob.username.upper())
    assert first["mentions"] == [bob.username] and first["id"] == first["seq"]
    reply = said(b, room, "hi", replyTo=first["id"])
    assert reply["replyTo"] == first["id"] and "mentions" not in reply
    a.send(action="edit-message", roomId=room, id=first["id"], message="hello all")
    edited = b.expect("message-edited")
    assert (edited["id"], edited["sender"], edited["message"]) == (first["id"], alice.username,
                                                                   "hello all")
    assert "mentions" not in edited
    b.send(action="react", roomId=room, id=first["id"], emoji="👍")
    b.send(action="react", roomId=room, id=first["id"], emoji="👍")  # stores nothing
    b.send(action="react", roomId=room, id=first["id"], emoji=":shipit:")
    b.send(action="unreact", roomId=room, id=first["id"], emoji="👍")
    b.send(action="unreact", roomId=room, id=first["id"], emoji="👍")  # nothing to remove
    a.expect("reaction-removed")
    a.send(action="delete-message", roomId=room, id=reply["id"])  # the owner may
    deleted = b.expect("message-deleted")
    assert deleted["id"] == reply["id"] and deleted["deletedBy"] == alice.username
    c = bob.ws()
    events = replay(c, room, first["seq"] - 1, deleted["seq"])
    kinds = [e["action"] for e in events]
    assert kinds == ["new-message", "new-message", "message-edited", "reaction-added",
                     "reaction-added", "reaction-removed", "message-deleted"]
    assert [e["seq"] for e in events] == list(range(first["seq"], deleted["seq"] + 1))
    assert all(set(e) >= {"roomId", "seq", "timestamp"} for e in events)
    assert events[3]["emoji"] == "👍" and events[3]["username"] == bob.username


def test_one_connection_sees_every_change_in_seq_order_once(client):
    alice, bob, room, a, b = pair(client)
    base = said(a, room, "base")["seq"]
    for i in range(5):
        a.send(action="send-message", roomId=room, message="m%d" % i)
        b.send(action="react", roomId=room, id=base, emoji="e%d" % i)
        a.send(action="edit-message", roomId=room, id=base, message="base v%d" % i)
    want = base + 15
    got = [e for e in b.until(lambda e: e.get("seq") == want)
           if e.get("action") in SEQUENCED and e["seq"] > base]
    assert [e["seq"] for e in got] == list(range(base + 1, want + 1))


def test_errors(client):
    alice, bob, room, a, b = pair(client)
    mine = said(a, room, "alice's")
    b.send(action="edit-message", roomId=room, id=mine["id"], message="bob was here")
    assert error(b, "edit-message")["code"] == "forbidden"
    b.send(action="delete-message", roomId=room, id=mine["id"])  # not the owner nor moderator
    assert error(b, "delete-message")["code"] == "forbidden"
    for action, extra in (("edit-message", {"message": "x"}), ("delete-message", {}),
                          ("react", {"emoji": "👍"}), ("unreact", {"emoji": "👍"})):
        a.send(action=action, roomId=room, id=10 ** 9, **extra)
        assert error(a, action)["code"] == "not_found"
    for bad in ("", "two words", "a" * 33, "x\u0007", 5):
        a.send(action="react", roomId=room, id=mine["id"], emoji=bad)
        assert error(a, "react")["code"] == "bad_request"
    a.send(action="send-message", roomId=room, message="reply", replyTo=10 ** 9)
    assert error(a, "send-message")["code"] == "not_found"
    a.send(action="edit-message", roomId=room, id=mine["id"], message="")
    assert error(a, "edit-message")["code"] == "bad_request"
    a.send(action="delete-message", roomId=room, id=mine["id"])
    a.expect("message-deleted", id=mine["id"])
    for action, extra in (("edit-message", {"message": "x"}), ("delete-message", {}),
                          ("react", {"emoji": "👍"})):
        a.send(action=action, roomId=room, id=mine["id"], **extra)
        assert error(a, action)["code"] == "not_found"
    a.send(action="send-message", roomId=room, message="reply", replyTo=mine["id"])
    assert error(a, "send-message")["code"] == "not_found"
    outsider = client().ws()
    outsider.send(action="react", roomId=room, id=1, emoji="👍")
    assert error(outsider, "react")["code"] == "forbidden"
    outsider.send(action="react", roomId="room_999999999", id=1, emoji="👍")
    assert error(outsider, "react")["code"] == "not_found"


def test_the_sender_deletes_their_own_and_repeated_reactions_store_nothing(client):
    alice, bob, room, a, b = pair(client)
    msg = said(b, room, "oops")
    last = msg["seq"]
    for _ in range(2):
        b.send(action="react", roomId=room, id=msg["id"], emoji="🎉")
    b.send(action="delete-message", roomId=room, id=msg["id"])
    b.expect("message-deleted", id=msg["id"], deletedBy=bob.username)
    kinds = [e["action"] for e in events_after(alice, room, last)]
    assert kinds == ["reaction-added", "message-deleted"]


def test_membership_changes_are_in_the_log(client):
    alice, bob = client(), client()
    room = alice.create_room()
    a = alice.ws(join=room)
    bob.post("/api/join-room", {"roomId": room})
    added = a.expect("member-added", username=bob.username)
    assert added["role"] == "member" and "by" not in added
    bob.post("/api/join-room", {"roomId": room})  # joining twice adds nothing
    assert bob.post("/api/leave-room", {"roomId": room}).status_code == 200
    removed = a.expect("member-removed", username=bob.username)
    assert removed["banned"] is False and "by" not in removed
    assert removed["seq"] == added["seq"] + 1
    log = events_after(alice, room)
    assert [(e["action"], e["username"]) for e in log] == [
        ("member-added", alice.username), ("member-added", bob.username),
        ("member-removed", bob.username)]
    assert log[0]["role"] == "owner" and log[0]["seq"] == 1


def mixed_changes(alice, bob, room, a, b):
    """A bit of everything, the deleted message's text unique so it can be looked for."""
    secret = "secret-" + unique()
    one = said(a, room, "one @" + bob.username)
    two = said(b, room, secret)
    a.send(action="react", roomId=room, id=one["id"], emoji="👍")
    b.send(action="react", roomId=room, id=one["id"], emoji="👍")
    b.send(action="react", roomId=room, id=two["id"], emoji="❤")
    b.send(action="edit-message", roomId=room, id=two["id"], message=secret + " edited")
    b.expect("message-edited", id=two["id"])
    b.send(action="delete-message", roomId=room, id=two["id"])
    b.expect("message-deleted", id=two["id"])
    a.send(action="edit-message", roomId=room, id=one["id"], message="one, edited")
    three = said(a, room, "three", replyTo=one["id"], clientMsgId="c3")
    b.send(action="react", roomId=room, id=three["id"], emoji=":+1:")
    b.send(action="unreact", roomId=room, id=one["id"], emoji="👍")
    last = b.expect("reaction-removed")["seq"]
    return secret, last


def test_since_replay_from_zero_and_after_a_disconnect_ends_with_history(client):
    alice, bob, room, a, b = pair(client)
    middle = said(a, room, "before the drop")["seq"]
    earlier = replay(alice.ws(), room, 0, middle)
    b.close()
    secret, last = mixed_changes(alice, bob, room, a, bob.ws(join=room))
    full = replay(alice.ws(), room, 0, last)
    assert [e["seq"] for e in full] == list(range(1, last + 1))
    assert secret not in repr(full)
    assert [e for e in full if e.get("deleted")] and all(
        e["message"] == "" for e in full if e.get("deleted"))
    assert apply(full) == history(alice, room)
    resumed = replay(bob.ws(), room, middle, last)
    assert apply(resumed, apply(earlier)) == history(alice, room)
    items = history(alice, room)
    edited = [i for i in items.values() if i["message"] == "one, edited"][0]
    assert "editedAt" in edited and "mentions" not in edited
    assert edited["reactions"] == [{"emoji": "👍", "count": 1, "users": [alice.username]}]
    assert events_after(alice, room) == full  # /events is the replay
    assert events_after(alice, room, middle) == resumed


def test_events_endpoint_pages_and_validates(client):
    alice, bob, room, a, b = pair(client)
    for i in range(5):
        said(a, room, "p%d" % i)
    r = alice.get("/api/rooms/%s/events?after=1&limit=2" % room)
    body = r.json()
    assert body["roomId"] == room and body["hasMore"] is True
    assert [e["seq"] for e in body["events"]] == [2, 3]
    for query in ("after=-1", "after=x", "limit=0", "limit=501", "wait=31", "wait=1.5",
                  "after=99999"):
        r = alice.get("/api/rooms/%s/events?%s" % (room, query))
        assert r.status_code == 400, (query, r.text)
    assert client().get("/api/rooms/%s/events" % room).status_code == 403
    assert alice.get("/api/rooms/room_99999999/events").status_code == 404


def test_http_changes_reach_live_clients(client):
    alice, bob, room, a, b = pair(client)
    base = "/api/rooms/%s/messages" % room
    r = bob.post(base, {"message": "by script", "clientMsgId": "s1"})
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["action"] == "new-message" and event["clientMsgId"] == "s1"
    assert a.expect("new-message", id=event["id"])["message"] == "by script"
    again = bob.post(base, {"message": "by script", "clientMsgId": "s1"})
    assert again.status_code == 200 and again.json()["id"] == event["id"]
    r = requests_call(bob, "PATCH", "%s/%d" % (base, event["id"]), {"message": "fixed"})
    assert r.status_code == 200 and r.json()["action"] == "message-edited"
    assert a.expect("message-edited", id=event["id"])["message"] == "fixed"
    emoji = urllib.parse.quote("👍")
    path = "%s/%d/reactions/%s" % (base, event["id"], emoji)
    for _ in range(2):
        r = requests_call(alice, "PUT", path)
        assert r.status_code == 200 and r.json() == {"status": "success"}
    assert a.expect("reaction-added", id=event["id"])["emoji"] == "👍"
    assert requests_call(alice, "DELETE", path).status_code == 200
    a.expect("reaction-removed", id=event["id"])
    assert requests_call(alice, "PUT", "%s/%d/reactions/%s" % (base, event["id"], "a%20b")
                         ).status_code == 400
    assert requests_call(alice, "PATCH", "%s/%d" % (base, event["id"]),
                         {"message": "mine now"}).status_code == 403
    assert requests_call(bob, "DELETE", "%s/%d" % (base, event["id"])).status_code == 200
    a.expect("message-deleted", id=event["id"])
    assert requests_call(bob, "DELETE", "%s/%d" % (base, event["id"])).status_code == 404
    assert bob.post(base, {"message": "x", "replyTo": event["id"]}).status_code == 404
    assert client().post(base, {"message": "x"}).status_code == 403
    assert bob.post(base, {}).status_code == 400


def requests_call(user, method, path, body=None):
    import requests
    return requests.request(method, user.server.url + path, json=body, headers=user.headers(),
                            timeout=30)


@pytest.mark.slow
def test_long_polls_wait_without_slowing_chat_and_wake_on_a_message(client):
    import threading
    import requests
    alice, bob, room, a, b = pair(client)
    last = said(a, room, "start")["seq"]
    answers = []
    url = alice.server.url + "/api/rooms/%s/events?after=%d&wait=20" % (room, last)

    def poll():
        answers.append(requests.get(url, headers=alice.headers(), timeout=30).json())
    threads = [threading.Thread(target=poll) for _ in range(WAITERS)]
    for thread in threads:
        thread.start()
    # chat goes on while they wait: an HTTP and a WebSocket message go through
    assert bob.post("/api/rooms/%s/messages" % room, {"message": "wake"}).status_code == 201
    said(b, room, "still chatting")
    for thread in threads:
        thread.join(25)
    assert len(answers) == WAITERS
    assert all(answer["events"] and answer["events"][0]["message"] == "wake"
               for answer in answers), answers[:3]


def test_a_long_poll_answers_empty_after_its_wait(client):
    alice, bob, room, a, b = pair(client)
    last = said(a, room, "quiet")["seq"]
    assert events_after(alice, room, last, wait=1) == []
