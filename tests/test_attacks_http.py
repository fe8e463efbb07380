"""Attacks on the HTTP side (issue 11): slow heads, connection floods, unstorable
strings, forged log lines, leaked tokens, and the contract slips next to them."""
import json
import socket
import time

import pytest
import requests

from helpers import Chatd, Client, assert_error, unique, wait_for
from rawws import http_head

UNSTORABLE = ["\\ud800abc", "abc\\udfff", "a\\u0000b"]  # as JSON escapes: raw they are invalid




def post_raw(server, path, text, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    return requests.post(server.url + path, data=text.encode(), headers=headers, timeout=10)


def closed_by_server(sock, timeout):
    """Whether the server hangs up (EOF or reset) within `timeout`; what it sent before."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True, data
            data += chunk
    except ConnectionResetError:
        return True, data
    except socket.timeout:
        return False, data


def still_served(server, user):
    r = requests.get(server.url + "/api/me", headers=user.headers(), timeout=5)
    assert r.status_code == 200, r.text


# -- 1. slow heads and connection floods -----------------------------------------------------------

@pytest.mark.slow
def test_a_request_head_that_never_ends_is_closed_after_header_timeout(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "t.db"),
                  env={"CHATD_SERVER_HEADER_TIMEOUT": "1"}).start()
    try:
        user = Client(chatd)
        line = socket.create_connection(("127.0.0.1", chatd.port))
        line.sendall(b"GET /api/me HT")  # never finishes its request line
        headers = socket.create_connection(("127.0.0.1", chatd.port))
        headers.sendall(b"GET /api/me HTTP/1.1\r\nHost: x\r\n")  # nor its headers
        idle = socket.create_connection(("127.0.0.1", chatd.port))
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # keep-alive, then silent
        status, _, _ = http_head(idle, time.monotonic() + 5)
        assert status == 200
        still_served(chatd, user)  # meanwhile everyone else is served
        started = time.monotonic()
        closed, sent = closed_by_server(line, 5)
        assert closed and sent == b""
        closed, sent = closed_by_server(headers, 5)
        assert closed and sent.startswith(b"HTTP/1.1 408 ")
        assert json.loads(sent.partition(b"\r\n\r\n")[2])["error"] == "request_timeout"
        assert closed_by_server(idle, 5)[0]
        assert time.monotonic() - started < 3
        for sock in (line, headers, idle):
            sock.close()
        still_served(chatd, user)
    finally:
        chatd.stop()


def test_connections_over_the_per_address_cap_are_refused_until_some_close(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "c.db"),
                  env={"CHATD_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "4"}).start()
    try:
        user = Client(chatd)
        holders = [socket.create_connection(("127.0.0.1", chatd.port)) for _ in range(4)]
        for sock in holders:
            sock.sendall(b"GET /api/me HT")
        # The fifth from the same address gets a clean refusal.
        extra = socket.create_connection(("127.0.0.1", chatd.port), timeout=5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = http_head(extra, time.monotonic() + 5)
        assert status == 503 and headers["retry-after"]
        assert b'"error":"unavailable"' in body
        assert closed_by_server(extra, 5)[0]
        extra.close()
        for sock in holders:
            sock.close()
        assert wait_for(lambda: requests.get(chatd.url + "/api/me", headers=user.headers(),
                                             timeout=5).status_code == 200, 5)
        metrics = requests.get(chatd.url + "/metrics", timeout=5).text
        assert 'chatd_rejected_frames_total{reason="connections_per_address"} 1.0' in metrics
    finally:
        chatd.stop()


def test_a_trusted_proxy_is_not_capped(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "p.db"),
                  env={"CHATD_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "2",
                       "CHATD_SERVER_TRUSTED_PROXIES": "127.0.0.0/8"}).start()
    try:
        holders = [socket.create_connection(("127.0.0.1", chatd.port)) for _ in range(4)]
        for sock in holders:
            sock.sendall(b"GET /api/me HT")
        assert requests.get(chatd.url + "/healthz", timeout=5).status_code == 200
        for sock in holders:
            sock.close()
    finally:
        chatd.stop()


# -- 2. lone surrogates and NUL, on both databases -------------------------------------------------

@pytest.mark.parametrize("bad", UNSTORABLE)
@pytest.mark.parametrize("field", ["username", "password"])
def test_unstorable_strings_in_login_and_register_are_400_naming_the_field(server, bad, field):
    good = {"username": unique(), "password": "correct horse"}
    for path in ("/api/login", "/api/register"):
        text = json.dumps(good)[:-1] + ', "%s": "%s"}' % (field, bad)
        assert_error(post_raw(server, path, text), 400, "bad_request", field)


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_unstorable_strings_in_any_field_are_400_naming_it(server, bad):
    user = Client(server)
    room = user.create_room()
    cases = [("/api/create-room", '{"roomName": "%s"}' % bad, "roomName"),
             ("/api/join-room", '{"roomId": "%s"}' % bad, "roomId"),
             ("/api/join-room", '{"roomId": "%s", "username": "%s"}' % (room, bad), "username"),
             ("/api/create-room", '{"roomName": "x", "extra": ["ok", {"k": "%s"}]}' % bad,
              "extra")]
    for path, text, field in cases:
        assert_error(post_raw(server, path, text, user.token), 400, "bad_request", field)
    assert_error(post_raw(server, "/api/create-room", '{"%s": 1}' % bad, user.token),
                 400, "bad_request")
    still_served(server, user)


@pytest.mark.parametrize("bad", UNSTORABLE)
def test_unstorable_strings_on_websocket_are_bad_request_and_the_connection_stays(server, bad):
    user = Client(server)
    room = user.create_room()
    sock = user.ws()
    try:
        for frame in ['{"action": "%s"}' % bad,
                      '{"action": "join", "roomId": "%s"}' % bad,
                      '{"action": "send-message", "roomId": "%s", "message": "%s"}' % (room, bad)]:
            sock.ws.send(frame)
            event = sock.expect("error")
            assert event["code"] == "bad_request" and event["message"], event
        sock.join(room)  # still open and working
    finally:
        sock.close()


# -- 3. login slips --------------------------------------------------------------------------------

@pytest.mark.parametrize("body,field", [
    ({"username": "someone"}, "password"),
    ({"password": "correct horse"}, "username"),
    ({"username": "someone", "password": 12345678}, "password"),
    ({"username": ["x"], "password": "correct horse"}, "username"),
    ({}, "username"),
])
def test_login_with_a_missing_or_mistyped_field_is_400(server, body, field):
    r = requests.post(server.url + "/api/login", json=body, timeout=10)
    assert_error(r, 400, "bad_request", field)


# -- 4. room ids are opaque ------------------------------------------------------------------------

OTHER_FORMS = ["room_nope", "12", "room_99999999", "room_" + "9" * 40, "9" * 40, "room_0"]


@pytest.mark.parametrize("room_id", OTHER_FORMS)
def test_an_unknown_room_id_of_any_form_is_404_and_not_found(server, room_id):
    user = Client(server)
    for path in ("/api/join-room", "/api/leave-room"):
        assert_error(user.post(path, {"roomId": room_id}), 404, "not_found")
    for path in ("/api/chat-history/", "/api/rooms/%s/members"):
        url = path % room_id if "%s" in path else path + room_id
        assert_error(user.get(url), 404, "not_found")
    sock = user.ws()
    try:
        sock.send(action="join", roomId=room_id)
        assert sock.expect("error")["code"] == "not_found"
        for action in ("send-message", "leave", "typing"):  # never joined: never a 400
            sock.send(action=action, roomId=room_id, message="hi")
            event = sock.expect("error")
            assert event["code"] in ("not_found", "not_joined"), (action, event)
    finally:
        sock.close()


def test_a_room_id_that_is_not_a_string_stays_400(server):
    user = Client(server)
    for value in (7, None, ["room_1"]):
        assert_error(user.post("/api/join-room", {"roomId": value}), 400, "bad_request", "roomId")


# -- 5. security headers ---------------------------------------------------------------------------

@pytest.mark.slow
def test_security_headers(server):
    user = Client(server)
    responses = [requests.get(server.url + "/", timeout=5),
                 requests.get(server.url + "/static/js/main.js", timeout=5),
                 requests.get(server.url + "/healthz", timeout=5),
                 requests.get(server.url + "/api/nope", timeout=5),
                 user.get("/api/me"), user.get("/api/rooms")]
    for r in responses:
        assert r.headers["X-Content-Type-Options"] == "nosniff", r.url
    for page in responses[:2]:
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "ws://127.0.0.1:%d" % server.port in policy
        assert page.headers["Referrer-Policy"] in ("no-referrer", "same-origin")
    login = requests.post(server.url + "/api/login", timeout=5,
                          json={"username": user.username, "password": user.password})
    assert login.status_code == 200 and login.headers["Cache-Control"] == "no-store"
    assert login.headers["X-Content-Type-Options"] == "nosniff"


# -- 6 and 7. log lines ----------------------------------------------------------------------------

def log_lines_with(server, text):
    return [line for line in server.lines if text in line]


def marked(server, mark):
    """Wait until a request carrying `mark` has been logged (lines come through a pipe)."""
    requests.get(server.url + "/healthz?mark=" + mark, timeout=5)
    assert wait_for(lambda: log_lines_with(server, mark), 5)


def test_request_text_cannot_forge_a_log_line(server):
    forged = "FORGED-" + unique()
    for path in ["/api/x%0a" + forged, "/api/x%0d%0a" + forged, "/api/x%1b[31m" + forged,
                 "/api/x?q=%0a" + forged]:
        requests.get(server.url + path, timeout=5)
    requests.post(server.url + "/api/login", timeout=5,
                  json={"username": "a\n" + forged, "password": "x\n" + forged})
    marked(server, unique("end"))
    lines = log_lines_with(server, forged)
    assert len(lines) == 5, lines
    for line in lines:  # each is a request's own line, its text escaped
        assert line.split(" ")[3].startswith("chatd.http:"), line
        assert "\x1b" not in line and "\r" not in line
    assert "x\\x0a" + forged in "".join(lines)


def test_tokens_never_reach_the_log(server):
    user = Client(server)
    token = user.token
    for path in ["/api/me?access_token=" + token, "/api/me?apikey=" + token,
                 "/api/me?whatever=" + token, "/api/rooms/" + token + "/members",
                 "/api/chat-history/x" + token, "/api/me?Token=short"]:
        requests.get(server.url + path, timeout=5)
    marked(server, unique("end"))
    assert not log_lines_with(server, token)
    assert not log_lines_with(server, "short")
    assert log_lines_with(server, "access_token=%5Bredacted%5D")
    assert log_lines_with(server, "/api/rooms/[redacted]/members")


@pytest.mark.slow
def test_log_lines_name_the_client_address_and_the_user(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "l.db"),
                  env={"CHATD_SERVER_TRUSTED_PROXIES": "127.0.0.0/8"}).start()
    try:
        user = Client(chatd)
        user.get("/api/me")
        requests.post(chatd.url + "/api/login", timeout=5,
                      headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
                      json={"username": "mallory vs " + user.username, "password": "guess"})
        marked(chatd, unique("end"))
        me = [line for line in log_lines_with(chatd, "GET /api/me ")]
        assert me and " 127.0.0.1 GET /api/me 200 " in me[0]
        assert me[0].rstrip().endswith("user=" + user.username)
        failed = log_lines_with(chatd, "POST /api/login 401")
        assert len(failed) == 1 and " 203.0.113.9 POST /api/login 401 " in failed[0]
        assert failed[0].rstrip().endswith("user=mallory\\x20vs\\x20" + user.username)
    finally:
        chatd.stop()


# -- 8. pywsgi's own answers and the static files' errors, in JSON ---------------------------------

def raw_exchange(server, data):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        sock.sendall(data)
        status, headers, body = http_head(sock, time.monotonic() + 10)
        while len(body) < int(headers.get("content-length", 0)):
            body += sock.recv(65536)
        return status, headers, body
    finally:
        sock.close()


@pytest.mark.parametrize("head,status,code", [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "bad_request"),
    (b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad_request"),
])
def test_pywsgi_own_errors_are_json(server, head, status, code):
    got, headers, body = raw_exchange(server, head)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    parsed = json.loads(body)
    assert parsed["status"] == "error" and parsed["error"] == code and parsed["message"]


def test_static_file_refusals_are_json_with_a_proper_message(server):
    status, headers, body = raw_exchange(
        server, b"GET /static/..%2f..%2fsetup.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 403 and json.loads(body) == {
        "status": "error", "error": "forbidden", "message": "This file may not be read."}
    r = requests.get(server.url + "/static/nope.js", timeout=5)
    assert_error(r, 404, "not_found")
    assert "Internal" not in r.json()["message"]


def test_websocket_upgrade_refusals_are_json(server):
    base = (b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")
    for extra in (b"", b"Sec-WebSocket-Version: 99\r\n"):
        status, headers, body = raw_exchange(server, base + extra + b"\r\n")
        assert status == 400 and json.loads(body)["error"] == "bad_request"
        assert headers["x-content-type-options"] == "nosniff"


# -- 9. the HTTP latency histogram -----------------------------------------------------------------

def test_http_latency_histogram_by_route(server):
    user = Client(server)
    user.get("/api/me")
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert 'chatd_http_request_duration_seconds_count{route="/api/me"}' in text
    assert 'chatd_http_request_duration_seconds_bucket{le="0.005",route="/api/me"}' in text
