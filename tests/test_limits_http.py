"""Section 1's HTTP limits and section 2's login throttle, done to a real chatd."""
import select
import socket
import time

import pytest
import requests

from helpers import Chatd, Client, assert_error, unique
from rawws import http_head, memory_kib

MAX_BODY = 65536  # the default [limits] max_body_bytes


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    chatd = Chatd("sqlite:///%s" % (tmp_path_factory.mktemp("db") / "chat.db")).start()
    yield chatd
    chatd.stop()


@pytest.fixture(scope="module")
def user(server):
    return Client(server)


def still_served(server, user):
    """Someone else's ordinary request still gets its answer."""
    r = requests.get(server.url + "/api/me", headers=user.headers(), timeout=5)
    assert r.status_code == 200 and r.json()["username"] == user.username




def raw_request(server, head, body=b"", timeout=10, then_closed=False):
    """Send bytes as they are; (status, headers, body) of the answer.

    then_closed: also require that the server closes the connection after it.
    """
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        status, headers, rest = http_head(sock, time.monotonic() + timeout)
        while len(rest) < int(headers.get("content-length", 0)):
            rest += sock.recv(65536)
        if then_closed:
            assert_closed_soon(sock)
        return status, headers, rest
    finally:
        sock.close()


def assert_closed_soon(sock, timeout=2):
    """The server hung up: it does not sit reading (or draining) the rest of a body."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("the server kept the connection open after answering")


# -- bodies ----------------------------------------------------------------------

def test_413_from_content_length_without_reading_the_body(server, user):
    started = time.monotonic()
    head = ("POST /api/create-room HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Authorization: Bearer %s\r\nContent-Length: 10000000000" % user.token)
    status, headers, body = raw_request(server, head, then_closed=True)  # not one byte sent
    assert status == 413 and b'"error":"payload_too_large"' in body
    assert time.monotonic() - started < 2
    still_served(server, user)


def test_413_for_a_body_just_over_the_limit(server, user):
    room_name = "r" * (MAX_BODY + 1 - len('{"roomName": ""}'))  # as requests writes it
    r = user.post("/api/create-room", {"roomName": room_name})
    assert len(r.request.body) == MAX_BODY + 1
    assert_error(r, 413, "payload_too_large")
    # Exactly at the limit the body is read (and the name is then too long: 400).
    r = user.post("/api/create-room", {"roomName": room_name[1:]})
    assert_error(r, 400, "bad_request")
    still_served(server, user)


def test_413_for_an_endless_chunked_body_while_it_is_still_being_sent(server, user):
    peak_before = memory_kib(server.proc.pid)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(("POST /api/create-room HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  "Authorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % user.token).encode())
    chunk = b"2000\r\n" + b" " * 0x2000 + b"\r\n"
    sent, deadline = 0, time.monotonic() + 10
    try:
        while not select.select([sock], [], [], 0)[0]:  # until the server answers
            assert time.monotonic() < deadline, "no answer after %d bytes" % sent
            sock.sendall(chunk)
            sent += len(chunk)
            assert sent < 64 * 1024 * 1024, "the server read 64 MiB of a chunked body"
    except (BrokenPipeError, ConnectionResetError):
        pass  # answered and closed while we were still sending
    status, _, body = http_head(sock, time.monotonic() + 5)
    assert status == 413
    try:
        sock.sendall(chunk * 64)  # the server does not drain an endless body either
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert_closed_soon(sock)
    sock.close()
    assert memory_kib(server.proc.pid) - peak_before < 16 * 1024
    still_served(server, user)


@pytest.mark.parametrize("body", [b"[" * 30000, b'{"a":' * 12000,
                                  b"[" * 30000 + b"]" * 30000])  # well-formed, too deep
def test_deeply_nested_json_is_400(server, user, body):
    r = requests.post(server.url + "/api/create-room", data=body, timeout=10,
                      headers=dict(user.headers(), **{"Content-Type": "application/json"}))
    assert_error(r, 400, "bad_request")
    still_served(server, user)


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x", "application/jsonx", None])
def test_a_body_that_is_not_json_is_415(server, user, ctype):
    headers = user.headers()
    if ctype:
        headers["Content-Type"] = ctype
    r = requests.post(server.url + "/api/create-room", data=b'{"roomName":"x"}', headers=headers,
                      timeout=10)
    assert_error(r, 415, "unsupported_media_type")


def test_json_with_a_charset_parameter_is_fine(server, user):
    r = requests.post(server.url + "/api/create-room", data=b'{"roomName":"%s"}' % unique().encode(),
                      headers=dict(user.headers(),
                                   **{"Content-Type": "Application/JSON; charset=utf-8"}),
                      timeout=10)
    assert r.status_code == 201


@pytest.mark.parametrize("body", [b'{"roomName":"\xff\xfe"}', b'{"roomName":"caf\xe9"}',
                                  b'\xef\xbb\xbf{"roomName":"bom"}'])
def test_invalid_utf8_or_bad_json_is_400(server, user, body):
    r = requests.post(server.url + "/api/create-room", data=body, timeout=10,
                      headers=dict(user.headers(), **{"Content-Type": "application/json"}))
    assert_error(r, 400, "bad_request")


@pytest.mark.parametrize("path,body,field", [
    ("/api/register", {"username": 12345, "password": "correct horse"}, "username"),
    ("/api/register", {"username": unique(), "password": ["a"] * 10}, "password"),
    ("/api/create-room", {"roomName": {"nested": True}}, "roomName"),
    ("/api/create-room", {"roomName": None}, "roomName"),
    ("/api/join-room", {"roomId": 7}, "roomId"),
    ("/api/login", {"username": unique()}, "password"),
    ("/api/login", {"username": unique(), "password": 12345678}, "password"),
])
def test_wrong_types_are_400_naming_the_field(server, user, path, body, field):
    r = user.post(path, body)
    assert field in assert_error(r, 400, "bad_request")["message"]


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"12", b"null"])
def test_a_body_that_is_not_an_object_is_400(server, user, body):
    r = requests.post(server.url + "/api/create-room", data=body, timeout=10,
                      headers=dict(user.headers(), **{"Content-Type": "application/json"}))
    assert_error(r, 400, "bad_request")


@pytest.mark.parametrize("query", ["limit=abc", "limit=0", "limit=501", "before=1.5",
                                   "after=x", "limit=99999999999999999999999"])
def test_bad_history_parameters_are_400(server, user, query):
    room = user.create_room()
    assert_error(user.get("/api/chat-history/%s?%s" % (room, query)), 400, "bad_request")


def test_unknown_route_404_and_wrong_method_405_are_json(server, user):
    assert_error(user.get("/api/nope"), 404, "not_found")
    assert_error(user.get("/api/login"), 405, "method_not_allowed")
    assert_error(requests.delete(server.url + "/api/rooms", timeout=5), 405, "method_not_allowed")


def test_garbage_request_line_does_not_hurt(server, user):
    status, _, _ = raw_request(server, "\x00\x01 BLAH\r\nHost: x")
    assert 400 <= status < 500
    still_served(server, user)


# -- the login throttle --------------------------------------------------------------

def login(server, username, password="wrong password", forwarded=None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return requests.post(server.url + "/api/login", timeout=10, headers=headers,
                         json={"username": username, "password": password})


def throttled(response, window):
    body = assert_error(response, 429, "rate_limited")
    retry = int(response.headers["Retry-After"])
    assert 0 < retry <= window + 1
    return body


@pytest.mark.slow
def test_ten_failures_for_one_username_then_429_until_the_window_passes(tmp_path):
    window = 6
    chatd = Chatd("sqlite:///%s" % (tmp_path / "t.db"),
                  env={"CHATD_AUTH_LOGIN_FAILURE_WINDOW": str(window)}).start()
    try:
        victim, bystander = Client(chatd), Client(chatd)
        for _ in range(10):
            assert_error(login(chatd, victim.username), 401, "unauthorized")
        started = time.monotonic()
        throttled(login(chatd, victim.username), window)
        # The right password waits too (that is the point), in any case spelling.
        throttled(login(chatd, victim.username.upper(), victim.password), window)
        # Other users are not affected.
        assert login(chatd, bystander.username, bystander.password).status_code == 200
        # Once the window has passed, the right password works again.
        while login(chatd, victim.username, victim.password).status_code != 200:
            assert time.monotonic() - started < window + 3
            time.sleep(0.25)
    finally:
        chatd.stop()


@pytest.mark.slow
def test_fifty_failures_from_one_address_then_429_whatever_x_forwarded_for_says(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "a.db")).start()
    try:
        someone = Client(chatd)
        for i in range(50):  # fifty usernames: the per-username limit never trips
            assert login(chatd, unique(), forwarded="10.0.0.%d" % i).status_code == 401
        # No trusted proxies: X-Forwarded-For is the client's own claim, not believed.
        throttled(login(chatd, unique(), forwarded="192.0.2.77"), 900)
        throttled(login(chatd, someone.username, someone.password), 900)
    finally:
        chatd.stop()


def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "p.db"),
                  env={"CHATD_SERVER_TRUSTED_PROXIES": "127.0.0.0/8",
                       "CHATD_AUTH_LOGIN_FAILURES_PER_ADDRESS": "5"}).start()
    try:
        someone = Client(chatd)
        for _ in range(5):  # the last hop is the client the proxy saw
            assert login(chatd, unique(), forwarded="198.51.100.1, 203.0.113.9").status_code == 401
        throttled(login(chatd, unique(), forwarded="203.0.113.9"), 900)
        # Another client behind the same proxy is not throttled for it.
        r = login(chatd, someone.username, someone.password, forwarded="203.0.113.10")
        assert r.status_code == 200
    finally:
        chatd.stop()
