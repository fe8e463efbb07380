"""Access tokens (PROTOCOL section 10): made, listed and revoked over HTTP, used on
HTTP and WebSocket, and ended as the contract says, against a real chatd."""
import calendar
import time

import pytest
import requests

from admin_tool import chat_admin, ok
from chatd.storage import models
from helpers import Socket, unique

DESCRIBED = {"id", "name", "createdAt", "expiresAt", "lastUsedAt"}
SHOWN = {"id", "name", "token", "createdAt", "expiresAt"}
DAY_MS = 86400 * 1000


def sql(database_url, statement, params=()):
    """Run one statement on the test's database, as an operator with psql would."""
    db = models.open_database(database_url, pool_size=1)
    with db.connection_context():
        db.execute_sql(statement.replace("?", db.param), params)
    if hasattr(db, "close_all"):
        db.close_all()


def bearer(token):
    return {"Authorization": "Bearer " + token}


def me(server, token):
    return requests.get(server.url + "/api/me", headers=bearer(token), timeout=10)


def new_token(user, name=None, **extra):
    r = user.post("/api/tokens", dict(name=name or unique("script "), **extra))
    assert r.status_code == 201, r.text
    return r.json()


def listed(user):
    r = user.get("/api/tokens")
    assert r.status_code == 200, r.text
    return r.json()


def iso_ms(text):
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) * 1000


def test_a_token_is_shown_once_then_listed_without_its_secret(client, server):
    alice = client()
    r = alice.post("/api/tokens", {"name": "deploy bot"})
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    forever = r.json()
    assert set(forever) == SHOWN and forever["name"] == "deploy bot"
    assert forever["expiresAt"] is None and forever["createdAt"].endswith("Z")
    assert len(forever["token"]) >= 22 and forever["token"] != alice.token
    month = new_token(alice, "monthly", expiresInDays=30)
    lives = iso_ms(month["expiresAt"]) - iso_ms(month["createdAt"])
    assert abs(lives - 30 * DAY_MS) <= 2000
    assert me(server, forever["token"]).json()["username"] == alice.username

    r = alice.get("/api/tokens")
    assert forever["token"] not in r.text and month["token"] not in r.text
    tokens = r.json()
    assert all(set(t) == DESCRIBED for t in tokens)
    assert [(t["id"], t["name"], t["expiresAt"]) for t in tokens] == [
        (forever["id"], "deploy bot", None), (month["id"], "monthly", month["expiresAt"])]
    # Only access tokens are listed, and only the caller's.
    assert listed(client()) == []


def test_bad_requests_name_the_field(client, server):
    alice = client()
    for body, field in [({}, "name"), ({"name": ""}, "name"), ({"name": "   "}, "name"),
                        ({"name": "x" * 65}, "name"), ({"name": 5}, "name"),
                        ({"name": "a\nb"}, "name"),
                        ({"name": "n", "expiresInDays": 0}, "expiresInDays"),
                        ({"name": "n", "expiresInDays": 3651}, "expiresInDays"),
                        ({"name": "n", "expiresInDays": "5"}, "expiresInDays"),
                        ({"name": "n", "expiresInDays": 1.5}, "expiresInDays"),
                        ({"name": "n", "expiresInDays": True}, "expiresInDays")]:
        r = alice.post("/api/tokens", body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"] == "bad_request" and "'%s'" % field in r.json()["message"]
    assert new_token(alice, "x" * 64, expiresInDays=None)["expiresAt"] is None
    assert new_token(alice, "ten years", expiresInDays=3650)["expiresAt"] is not None
    assert len(listed(alice)) == 2
    for method in (requests.get, requests.post):
        r = method(server.url + "/api/tokens", json={"name": "n"}, timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"


def test_last_used_at_is_written_at_most_once_a_minute(client, server, database_url):
    alice = client()
    made = new_token(alice)
    assert listed(alice)[0]["lastUsedAt"] is None
    assert me(server, made["token"]).status_code == 200
    first = listed(alice)[0]["lastUsedAt"]
    assert first is not None and first.endswith("Z")
    assert me(server, made["token"]).status_code == 200
    assert listed(alice)[0]["lastUsedAt"] == first  # used again within the minute: no write
    sql(database_url, "UPDATE token SET last_used_at = last_used_at - 61000 WHERE id = ?",
        (made["id"],))
    assert me(server, made["token"]).status_code == 200
    assert iso_ms(listed(alice)[0]["lastUsedAt"]) >= iso_ms(first) - 1000  # written again
    assert listed(alice)[0]["lastUsedAt"] != first


def test_an_access_token_works_on_every_websocket_entrance(client, server):
    alice = client()
    room = alice.create_room()
    token = new_token(alice)["token"]
    socks = [Socket(server.ws_url + "?token=" + token),
             Socket(server.ws_url, header=["Authorization: Bearer " + token]),
             Socket(server.ws_url)]
    socks[2].send(action="auth", token=token)
    assert socks[2].expect("authenticated")["username"] == alice.username
    for sock in socks:
        sock.join(room)
    socks[0].say(room, "from a script")
    for sock in socks:
        assert sock.expect("new-message")["sender"] == alice.username
        sock.close()


def test_revoking_ends_the_token_and_its_sockets_within_2s_and_no_other(client, server):
    alice, bob = client(), client()
    room = alice.create_room()
    doomed, kept = new_token(alice), new_token(alice)
    dying = Socket(server.ws_url + "?token=" + doomed["token"])
    staying = Socket(server.ws_url + "?token=" + kept["token"])
    for sock in (dying, staying):
        sock.join(room)
    # Another user's id, an unknown id and ids of no form at all are all 404.
    for token_id in (doomed["id"], 99999999, "abc", "0", "-1"):
        r = requests.delete("%s/api/tokens/%s" % (server.url, token_id),
                            headers=bearer(bob.token), timeout=10)
        assert r.status_code == 404 and r.json()["error"] == "not_found", (token_id, r.text)
    assert me(server, doomed["token"]).status_code == 200 and listed(bob) == []

    r = requests.delete("%s/api/tokens/%s" % (server.url, doomed["id"]),
                        headers=bearer(alice.token), timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "success"}
    started = time.monotonic()
    assert dying.expect("error", timeout=5)["code"] == "unauthorized"
    assert dying.close_code(timeout=5) == 1008
    assert time.monotonic() - started < 2.0
    assert me(server, doomed["token"]).status_code == 401
    assert [t["id"] for t in listed(alice)] == [kept["id"]]
    r = requests.delete("%s/api/tokens/%s" % (server.url, doomed["id"]),
                        headers=bearer(alice.token), timeout=10)
    assert r.status_code == 404
    # The other token and the login session go on.
    staying.say(room, "still here")
    assert staying.expect("new-message")["message"] == "still here"
    assert me(server, alice.token).status_code == 200
    staying.close()


def test_an_expired_token_is_refused_and_no_longer_listed(client, server, database_url):
    alice = client()
    made = new_token(alice, expiresInDays=1)
    assert me(server, made["token"]).status_code == 200
    sql(database_url, "UPDATE token SET expires_at = ? WHERE id = ?",
        (models.now_ms() - 1000, made["id"]))
    r = me(server, made["token"])
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    sock = Socket(server.ws_url)
    sock.send(action="auth", token=made["token"])
    assert sock.expect("error")["code"] == "unauthorized"
    assert sock.close_code() == 1008
    assert listed(alice) == []


def test_a_password_change_ends_login_sessions_only(client, server, database_url):
    alice = client()
    room = alice.create_room()
    access = new_token(alice)["token"]
    by_login = alice.ws(join=room)
    by_access = Socket(server.ws_url + "?token=" + access)
    by_access.join(room)
    ok(chat_admin(database_url, "user", "passwd", alice.username, "--password-stdin",
                  stdin="a brand new password\n"))
    started = time.monotonic()
    assert by_login.expect("error", timeout=5)["code"] == "unauthorized"
    assert by_login.close_code(timeout=5) == 1008
    assert time.monotonic() - started < 2.0
    assert me(server, alice.token).status_code == 401
    # The script's token and its socket go on.
    assert me(server, access).status_code == 200
    by_access.say(room, "still scripting")
    assert by_access.expect("new-message")["message"] == "still scripting"
    by_access.close()


@pytest.mark.slow
def test_disabling_the_user_ends_access_tokens_and_their_sockets(client, server, database_url):
    alice = client()
    room = alice.create_room()
    access = new_token(alice)["token"]
    sock = Socket(server.ws_url + "?token=" + access)
    sock.join(room)
    ok(chat_admin(database_url, "user", "disable", alice.username))
    started = time.monotonic()
    assert sock.close_code(timeout=5) == 1008
    assert time.monotonic() - started < 2.0
    assert me(server, access).status_code == 401
    ok(chat_admin(database_url, "user", "enable", alice.username))
    assert alice.login()
    assert me(server, access).status_code == 401  # ended, not suspended
