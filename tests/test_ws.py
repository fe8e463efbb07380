"""Section 3's WebSocket protocol and guarantees against a real chatd."""
import threading

import pytest
import requests

from helpers import Socket, unique


def test_seed_flow_two_users_chat(server, client):
    alice, bob = client(), client()
    room = alice.create_room("TechTalk " + unique())
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200
    a = alice.ws()
    joined = a.join(room)
    assert joined["message"].startswith("Welcome to TechTalk") and joined["members"] == [alice.username]
    b = bob.ws()
    joined = b.join(room)
    assert sorted(joined["members"]) == sorted([alice.username, bob.username])
    assert a.expect("user-joined")["username"] == bob.username

    a.say(room, "hello bob", client_msg_id="c1")
    got_b = b.expect("new-message")
    got_a = a.expect("new-message")
    assert got_a == got_b
    assert got_a["sender"] == alice.username and got_a["message"] == "hello bob"
    assert got_a["roomId"] == room and got_a["clientMsgId"] == "c1" and got_a["timestamp"].endswith("Z")
    b.say(room, "hi alice")
    assert a.expect("new-message")["message"] == "hi alice"

    history = bob.get("/api/chat-history/" + room).json()["messages"]
    assert [(m["sender"], m["message"]) for m in history] == [
        (alice.username, "hello bob"), (bob.username, "hi alice")]
    assert history[0]["id"] == got_a["id"] and history[0]["timestamp"] == got_a["timestamp"]
    a.close(), b.close()


def test_three_ways_to_authenticate(server, client):
    alice = client()
    room = alice.create_room()
    by_header = Socket(server.ws_url, header=["Authorization: Bearer " + alice.token])
    by_header.join(room)
    by_query = Socket(server.ws_url + "?token=" + alice.token)
    by_query.join(room)
    by_message = Socket(server.ws_url)
    by_message.send(action="join", roomId=room, token=alice.token)
    assert by_message.expect("joined")["roomId"] == room
    for sock in (by_header, by_query, by_message):
        sock.close()


@pytest.mark.parametrize("first", [{"action": "join", "roomId": "room_1"},
                                   {"action": "join", "roomId": "room_1", "token": "bogus"}])
def test_unauthenticated_first_message_is_refused(server, first):
    sock = Socket(server.ws_url)
    sock.send(**first)
    event = sock.recv()
    assert event["action"] == "error" and event["code"] == "unauthorized"
    assert sock.close_code() == 1008


def test_bad_token_on_upgrade_is_refused(server):
    sock = Socket(server.ws_url + "?token=bogus")
    assert sock.recv()["code"] == "unauthorized"
    assert sock.close_code() == 1008


def test_recoverable_errors_keep_the_connection(server, client):
    alice, bob = client(), client()
    room = alice.create_room()
    sock = alice.ws()
    cases = [
        ('{"action": ', "bad_request"),
        ('[1]', "bad_request"),
        ('{"action": "dance"}', "bad_request"),
        ('{"roomId": "room_1"}', "bad_request"),
        ('{"action": "send-message", "roomId": "%s", "message": "x"}' % room, "not_joined"),
        ('{"action": "typing", "roomId": "%s"}' % room, "not_joined"),
        ('{"action": "send-message", "roomId": "room_99999999", "message": "x"}', "not_found"),
        ('{"action": "typing", "roomId": "room_nope"}', "not_found"),
        ('{"action": "join", "roomId": "room_999999"}', "not_found"),
        ('{"action": "join", "roomId": 5}', "bad_request"),
        ('{"action": "join", "roomId": "%s", "username": "%s"}' % (room, bob.username), "forbidden"),
        ('{"action": "join", "roomId": "%s", "since": "x"}' % room, "bad_request"),
        ('{"action": "join", "roomId": "%s", "since": "0"}' % room, "bad_request"),  # a string
        ('{"action": "join", "roomId": "%s", "since": -1}' % room, "bad_request"),
        ('{"action": "join", "roomId": "%s", "since": %d}' % (room, 10 ** 30), "bad_request"),
    ]
    for frame, code in cases:
        sock.ws.send(frame)
        event = sock.expect("error")
        assert event["code"] == code, (frame, event)
    sock.join(room)
    for message, code in [("", "bad_request"), ("   ", "bad_request"), (5, "bad_request"),
                          ("x" * 4001, "payload_too_large")]:
        sock.send(action="send-message", roomId=room, message=message)
        event = sock.expect("error")
        assert event["code"] == code and event["ref"] == "send-message"
    sock.say(room, "x" * 4000)
    assert len(sock.expect("new-message")["message"]) == 4000
    assert len(alice.get("/api/chat-history/" + room).json()["messages"]) == 1
    sock.close()


def test_join_without_http_join_makes_member(client):
    alice, bob = client(), client()
    room = alice.create_room()
    sock = bob.ws(join=room)
    assert room in bob.get("/api/me").json()["rooms"]
    sock.close()


def test_resume_with_since_after_disconnect(client):
    alice, bob = client(), client()
    room = alice.create_room()
    a = alice.ws(join=room)
    b = bob.ws(join=room)
    a.say(room, "one")
    last_seen = b.expect("new-message", message="one")["id"]
    b.close()
    for text in ["two", "three", "four"]:
        a.say(room, text)
    a.expect("new-message", message="four")
    b = bob.ws()
    b.join(room, since=last_seen)
    a.say(room, "five")
    events = b.until(lambda e: e.get("message") == "five")
    texts = [e["message"] for e in events if e["action"] == "new-message"]
    assert texts == ["two", "three", "four", "five"]
    ids = [e["id"] for e in events if e["action"] == "new-message"]
    assert ids == sorted(ids) and ids[0] > last_seen
    a.close(), b.close()


def test_since_replay_races_live_messages_without_gap_or_duplicate(client):
    alice, bob = client(), client()
    room = alice.create_room()
    a = alice.ws(join=room)
    for i in range(300):
        a.say(room, "before %d" % i)
    a.expect("new-message", timeout=30, message="before 299")
    stop = threading.Event()
    failures = []  # what went wrong on the sender's threads, asserted below

    def read_echoes(sender):
        try:
            sender.until(lambda e: e.get("message") == "last", timeout=60)
        except Exception as exc:
            failures.append(exc)

    def keep_sending():
        sender = alice.ws(join=room)
        # The sender reads its echoes as it goes, as a client must: one whose
        # reading stops is cut off as too slow (1013), and what it sends
        # after that is never read (this test once lost "last" so, under load).
        echoes = threading.Thread(target=read_echoes, args=(sender,))
        echoes.start()
        try:
            i = 0
            while not stop.is_set() and i < 2000:
                sender.say(room, "live %d" % i)
                i += 1
            sender.say(room, "last")
        except Exception as exc:
            failures.append(exc)
        finally:
            echoes.join()
            sender.close()

    thread = threading.Thread(target=keep_sending)
    thread.start()
    b = bob.ws()
    b.join(room, since=0)
    stop.set()
    thread.join()
    assert not failures, failures
    events = [e for e in b.until(lambda e: e.get("message") == "last", timeout=60)
              if "seq" in e]  # every sequenced event (section 7): member-added is seq 1
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, seqs[-1] + 1))
    a.close(), b.close()


def test_client_msg_id_retry_stores_nothing_new(client):
    alice, bob = client(), client()
    room = alice.create_room()
    a = alice.ws(join=room)
    b = bob.ws(join=room)
    a.say(room, "once", client_msg_id="retry-1")
    first = a.expect("new-message")
    a.close()
    a = alice.ws(join=room)  # the retry comes on a new connection, as after a drop
    a.say(room, "once", client_msg_id="retry-1")
    again = a.expect("new-message")
    assert again == first
    b.say(room, "marker")
    events = b.until(lambda e: e.get("message") == "marker")
    assert [e["message"] for e in events if e["action"] == "new-message"] == ["once", "marker"]
    # The same clientMsgId from another user is another message.
    b.say(room, "mine", client_msg_id="retry-1")
    assert b.expect("new-message", message="mine")["sender"] == bob.username
    history = alice.get("/api/chat-history/" + room).json()["messages"]
    assert [m["message"] for m in history] == ["once", "marker", "mine"]
    a.close(), b.close()


def test_presence_is_per_user_across_connections(client):
    alice, bob = client(), client()
    room = alice.create_room()
    watcher = alice.ws(join=room)
    tab1 = bob.ws(join=room)
    assert watcher.expect("user-joined")["username"] == bob.username
    tab2 = bob.ws(join=room)  # second tab: no second user-joined
    assert sorted(tab2.join(room)["members"]) == sorted([alice.username, bob.username])
    members = {m["username"]: m["online"] for m in alice.get("/api/rooms/%s/members" % room).json()}
    assert members == {alice.username: True, bob.username: True}
    tab1.send(action="leave", roomId=room)
    assert tab1.expect("left")["roomId"] == room
    tab1.close()  # a drop too
    tab2.say(room, "still here")  # a marker through the same room: whatever came before it
    events = watcher.until(lambda e: e.get("message") == "still here")
    assert not [e for e in events if e["action"] in ("user-joined", "user-left")]
    tab2.close()  # the last connection drops: one user-left
    assert watcher.expect("user-left") == {"action": "user-left", "username": bob.username,
                                           "roomId": room}
    watcher.close()


def test_typing_reaches_others_only(client):
    alice, bob = client(), client()
    room = alice.create_room()
    a = alice.ws(join=room)
    b = bob.ws(join=room)
    a.send(action="typing", roomId=room)
    assert b.expect("user-typing") == {"action": "user-typing", "username": alice.username,
                                       "roomId": room}
    a.say(room, "done")
    events = a.until(lambda e: e.get("message") == "done")
    assert not [e for e in events if e["action"] == "user-typing"]
    a.close(), b.close()


def test_leave_stops_delivery_but_keeps_membership(client):
    alice, bob = client(), client()
    room = alice.create_room()
    a = alice.ws(join=room)
    b = bob.ws(join=room)
    b.send(action="leave", roomId=room, username=bob.username)
    b.expect("left", roomId=room)
    a.say(room, "after leave")
    a.expect("new-message")
    b.send(action="send-message", roomId=room, message="x")
    assert b.expect("error")["code"] == "not_joined"
    assert room in bob.get("/api/me").json()["rooms"]
    a.close(), b.close()


def test_order_with_concurrent_senders(client):
    users = [client() for _ in range(4)]
    room = users[0].create_room()
    listeners = [u.ws(join=room) for u in users[:2]]
    per_sender = 100

    def send_all(user, n):
        sock = user.ws(join=room)
        for i in range(per_sender):
            sock.say(room, "%s-%d" % (user.username, i))
        sock.expect("new-message", timeout=60, message="%s-%d" % (user.username, per_sender - 1))
        sock.close()

    threads = [threading.Thread(target=send_all, args=(u, i)) for i, u in enumerate(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = per_sender * len(users)
    for sock in listeners:
        got = []
        while len(got) < total:
            event = sock.recv(timeout=30)
            if event["action"] == "new-message":
                got.append(event)
        ids = [e["id"] for e in got]
        assert ids == sorted(ids) and len(set(ids)) == total
        for user in users:  # each sender's messages stored in the order sent
            mine = [int(e["message"].rsplit("-", 1)[1]) for e in got if e["sender"] == user.username]
            assert mine == list(range(per_sender))
        sock.close()
    history = users[0].get("/api/chat-history/%s?limit=500" % room).json()["messages"]
    assert [m["id"] for m in history] == ids


def test_plain_get_on_chat_is_a_json_error(server):
    r = requests.get(server.url + "/chat")
    assert r.status_code == 400 and r.json()["error"] == "bad_request"
