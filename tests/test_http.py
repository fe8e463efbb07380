"""Section 2's endpoints and section 1's error contract against a real chatd."""
import re

import requests

from helpers import assert_error, unique

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")




def test_register_login_me(server):
    name = unique()
    r = requests.post(server.url + "/api/register", json={"username": name, "password": "password1"})
    assert r.status_code == 201 and r.json() == {"status": "success", "username": name}
    r = requests.post(server.url + "/api/login", json={"username": name, "password": "password1"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success" and len(body["token"]) >= 22
    me = requests.get(server.url + "/api/me", headers={"Authorization": "Bearer " + body["token"]})
    assert me.status_code == 200
    assert me.json()["username"] == name and me.json()["rooms"] == []
    assert ISO.match(me.json()["createdAt"])


def test_register_rejects_bad_fields_and_duplicates(server):
    url = server.url + "/api/register"
    name = unique()
    assert requests.post(url, json={"username": name, "password": "password1"}).status_code == 201
    assert_error(requests.post(url, json={"username": name.upper(), "password": "password1"}), 409, "conflict")
    for body, field in [({"username": "ab", "password": "password1"}, "username"),
                        ({"username": "bad name!", "password": "password1"}, "username"),
                        ({"username": unique(), "password": "short"}, "password"),
                        ({"username": unique(), "password": 12345678}, "password"),
                        ({"password": "password1"}, "username")]:
        assert field in assert_error(requests.post(url, json=body), 400, "bad_request")["message"]


def test_login_same_answer_for_unknown_user_and_wrong_password(server, client):
    alice = client()
    url = server.url + "/api/login"
    wrong = requests.post(url, json={"username": alice.username, "password": "wrong password"})
    unknown = requests.post(url, json={"username": unique(), "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_auth_required_and_bad_tokens(server):
    for path in ["/api/rooms", "/api/me", "/api/chat-history/room_1", "/api/rooms/room_1/members"]:
        assert_error(requests.get(server.url + path), 401, "unauthorized")
        assert_error(requests.get(server.url + path, headers={"Authorization": "Bearer nope"}),
                     401, "unauthorized")


def test_logout_revokes_the_token(client):
    alice = client()
    assert alice.post("/api/logout").json() == {"status": "success"}
    assert_error(alice.get("/api/me"), 401, "unauthorized")


def test_rooms_create_list_join_leave_members(client):
    alice, bob = client(), client()
    name = unique("Tech Talk ")
    r = alice.post("/api/create-room", {"roomName": "  %s  " % name, "creator": alice.username})
    assert r.status_code == 201
    room = r.json()["roomId"]
    assert r.json()["status"] == "success" and re.match(r"room_\d+\Z", room)
    listed = {item["roomId"]: item for item in bob.get("/api/rooms").json()}
    assert listed[room]["roomName"] == name  # trimmed
    assert_error(bob.post("/api/create-room", {"roomName": name.upper()}), 409, "conflict")
    assert_error(bob.get("/api/chat-history/" + room), 403, "forbidden")
    r = bob.post("/api/join-room", {"roomId": room, "username": bob.username})
    assert r.json() == {"status": "success", "message": "Joined room %s" % name}
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200  # twice is fine
    members = alice.get("/api/rooms/%s/members" % room).json()
    assert sorted(m["username"] for m in members) == sorted([alice.username, bob.username])
    assert all(m["online"] is False for m in members)
    assert room in bob.get("/api/me").json()["rooms"]
    assert bob.post("/api/leave-room", {"roomId": room}).json() == {"status": "success"}
    assert room not in bob.get("/api/me").json()["rooms"]
    assert_error(bob.get("/api/rooms/%s/members" % room), 403, "forbidden")


def test_acting_as_another_user_is_forbidden(client):
    alice, bob = client(), client()
    assert_error(alice.post("/api/create-room", {"roomName": unique(), "creator": bob.username}),
                 403, "forbidden")
    room = bob.create_room()
    assert_error(alice.post("/api/join-room", {"roomId": room, "username": bob.username}),
                 403, "forbidden")


def test_room_validation(client):
    alice = client()
    for name in ["", "   ", "x" * 65, "bad\x00name", 42, None]:
        body = assert_error(alice.post("/api/create-room", {"roomName": name}), 400, "bad_request")
        assert "roomName" in body["message"]
    assert_error(alice.post("/api/join-room", {"roomId": "room_999999"}), 404, "not_found")
    assert_error(alice.post("/api/join-room", {"roomId": "lobby"}), 404, "not_found")  # opaque
    assert_error(alice.get("/api/chat-history/room_999999"), 404, "not_found")


def test_history_pagination(server, client):
    alice = client()
    room = alice.create_room()
    sock = alice.ws(join=room)
    for i in range(1, 251):
        sock.say(room, "message %d" % i)
    sock.expect("new-message", timeout=30, message="message 250")
    sock.close()

    latest = alice.get("/api/chat-history/" + room).json()
    assert latest["roomId"] == room and latest["hasMore"] is True
    texts = [m["message"] for m in latest["messages"]]
    assert texts == ["message %d" % i for i in range(201, 251)]
    first = latest["messages"][0]
    assert set(first) >= {"id", "sender", "message", "timestamp"}
    assert first["sender"] == alice.username and ISO.match(first["timestamp"])

    # Walk back to the start with before=, 100 at a time.
    pages, before = [], latest["messages"][0]["id"]
    while True:
        page = alice.get("/api/chat-history/%s?limit=100&before=%d" % (room, before)).json()
        pages.insert(0, page["messages"])
        if not page["hasMore"]:
            break
        before = page["messages"][0]["id"]
    ids = [m["id"] for page in pages for m in page] + [m["id"] for m in latest["messages"]]
    assert len(ids) == 250 and ids == sorted(ids) and len(set(ids)) == 250

    after = alice.get("/api/chat-history/%s?after=%d&limit=500" % (room, ids[9])).json()
    assert [m["id"] for m in after["messages"]] == ids[10:] and after["hasMore"] is False
    middle = alice.get("/api/chat-history/%s?after=%d&limit=10" % (room, ids[9])).json()
    assert [m["id"] for m in middle["messages"]] == ids[10:20] and middle["hasMore"] is True

    for query in ["limit=0", "limit=501", "limit=ten", "before=x", "after=1.5"]:
        assert_error(alice.get("/api/chat-history/%s?%s" % (room, query)), 400, "bad_request")


def test_error_shapes_for_routes_methods_and_bodies(server, client):
    alice = client()
    assert_error(requests.get(server.url + "/api/nope"), 404, "not_found")
    assert_error(requests.delete(server.url + "/api/rooms"), 405, "method_not_allowed")
    assert_error(requests.get(server.url + "/api/login"), 405, "method_not_allowed")
    headers = dict(alice.headers(), **{"Content-Type": "application/json"})
    url = server.url + "/api/create-room"
    assert_error(requests.post(url, data="{not json", headers=headers), 400, "bad_request")
    assert_error(requests.post(url, data="[1, 2]", headers=headers), 400, "bad_request")
    assert_error(requests.post(url, data=b'{"roomName": "\xff"}', headers=headers), 400, "bad_request")
    assert_error(requests.post(url, data="roomName=x", headers=dict(
        alice.headers(), **{"Content-Type": "application/x-www-form-urlencoded"})),
        415, "unsupported_media_type")
    assert requests.post(url, data='{"roomName": "%s"}' % unique(), headers=dict(
        alice.headers(), **{"Content-Type": "application/json; charset=utf-8"})).status_code == 201


def test_healthz(server):
    r = requests.get(server.url + "/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_web_client_is_served(server):
    r = requests.get(server.url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"]
