"""Operations against a real chatd: /metrics, systemd's notify socket and unit, logs,
and an operator's chat-admin ending a user's sessions while chatd runs."""
import configparser
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from admin_tool import chat_admin, ok
from helpers import Chatd, Client, ROOT, Socket, unique, wait_for
from rawws import OP_BINARY, RawSocket, frame

UNIT = os.path.join(ROOT, "packaging", "chatd.service")
SOCKET_UNIT = os.path.join(ROOT, "packaging", "chatd.socket")


@pytest.fixture(scope="module")
def database_path(tmp_path_factory):
    return str(tmp_path_factory.mktemp("db") / "chat.db")


@pytest.fixture(scope="module")
def server(database_path):
    chatd = Chatd("sqlite:///" + database_path).start()
    yield chatd
    chatd.stop()



# -- /metrics ---------------------------------------------------------------------

def scrape(server, **kwargs):
    r = requests.get(server.url + "/metrics", timeout=5, **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        assert family.name.startswith("chatd_"), family.name
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_connections_rooms_messages_rejections_and_requests(server):
    before = scrape(server)
    alice, bob = Client(server), Client(server)
    room = alice.create_room()
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200
    a, b = alice.ws(join=room), bob.ws(join=room)
    for i in range(3):
        a.say(room, "m%d" % i)
        b.expect("new-message", message="m%d" % i)
    binary = RawSocket(server, alice.token)
    binary.send(frame(b"\x01", OP_BINARY))
    assert binary.expect("error")["code"] == "bad_request"
    unmasked = RawSocket(server, alice.token)
    unmasked.send(frame(b"{}", masked=False))
    assert unmasked.until_close()[0] == 1002
    assert RawSocket(server, alice.token, ["Origin: http://evil.example"]).status == 403
    assert alice.get("/api/nope").status_code == 404
    assert alice.get("/api/chat-history/" + room).status_code == 200

    def counted():
        now = scrape(server)
        return all(value(now, name, **labels) - value(before, name, **labels) == delta
                   for name, labels, delta in [
                       ("chatd_rejected_frames_total", {"reason": "protocol_error"}, 1),
                       ("chatd_rejected_frames_total", {"reason": "binary"}, 1),
                       ("chatd_rejected_frames_total", {"reason": "origin"}, 1)])
    assert wait_for(counted, 5)
    now = scrape(server)
    delta = lambda name, **labels: value(now, name, **labels) - value(before, name, **labels)
    assert value(now, "chatd_websocket_connections") == 3  # a, b and the binary sender
    assert value(now, "chatd_rooms_active") >= 1
    assert delta("chatd_messages_received_total") == 3
    assert delta("chatd_messages_delivered_total") == 6  # 3 messages x 2 members
    assert delta("chatd_message_store_to_broadcast_seconds_count") == 3
    assert 0 < delta("chatd_message_store_to_broadcast_seconds_sum") < 3
    assert delta("chatd_http_requests_total", route="/api/create-room", status="201") == 1
    assert delta("chatd_http_requests_total", route="/api/chat-history/<room_id>",
                 status="200") == 1
    assert delta("chatd_http_requests_total", route="unmatched", status="404") == 1
    for sock in (a, b):
        sock.close()
    binary.close()
    assert wait_for(lambda: value(scrape(server), "chatd_websocket_connections") == 0, 5)


def test_metrics_only_for_allowed_networks(tmp_path):
    nowhere = Chatd("sqlite:///%s" % (tmp_path / "n.db"),
                    env={"CHATD_METRICS_ALLOWED_NETWORKS": "192.0.2.0/24"}).start()
    proxied = Chatd("sqlite:///%s" % (tmp_path / "p.db"),
                    env={"CHATD_SERVER_TRUSTED_PROXIES": "127.0.0.1"}).start()
    try:
        r = requests.get(nowhere.url + "/metrics", timeout=5)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert requests.get(nowhere.url + "/healthz", timeout=5).status_code == 200
        # Behind a trusted proxy the client it names is who asks, not the proxy.
        outside = {"X-Forwarded-For": "203.0.113.5"}
        assert requests.get(proxied.url + "/metrics", headers=outside, timeout=5).status_code == 403
        inside = {"X-Forwarded-For": "127.0.0.1"}
        scrape(proxied, headers=inside)
    finally:
        nowhere.stop(), proxied.stop()


# -- systemd -----------------------------------------------------------------------

@pytest.mark.parametrize("abstract", [False, True])
def test_ready_and_stopping_reach_a_fake_notify_socket(tmp_path, abstract):
    path = "\0chatd-test-%s" % unique() if abstract else str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(10)
    env = {"NOTIFY_SOCKET": "@" + path[1:] if abstract else path}
    chatd = Chatd("sqlite:///%s" % (tmp_path / "sd.db"), env=env).start()
    try:
        assert listener.recv(4096) == b"READY=1"
        # READY=1 is sent once the server listens: it answers right away.
        assert requests.get(chatd.url + "/healthz", timeout=5).status_code == 200
        chatd.proc.terminate()
        assert listener.recv(4096) == b"STOPPING=1"
        assert chatd.proc.wait(15) == 0
    finally:
        chatd.kill()
        listener.close()


def unit():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(UNIT)
    return parser


def test_unit_file_is_type_notify_and_sandboxed():
    service = unit()["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].split()[0].endswith("/chatd")
    assert service["DynamicUser"] == "yes" or service.get("User") not in (None, "root")
    for key, expected in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                          ("PrivateTmp", "yes"), ("ProtectHome", "yes"),
                          ("StateDirectory", "chatd"), ("CapabilityBoundingSet", "")]:
        assert service[key] == expected, key
    assert float(service["TimeoutStopSec"]) > 10  # above chatd's own shutdown timeout


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_file_passes_systemd_analyze(tmp_path):
    # verify checks that ExecStart exists: point it at this checkout's chatd.
    chatd = os.path.join(os.path.dirname(sys.executable), "chatd")
    with open(UNIT) as source:
        text = source.read().replace("/opt/chatd/.venv/bin/chatd", chatd)
    copy = tmp_path / "chatd.service"
    copy.write_text(text)
    socket_unit = tmp_path / "chatd.socket"  # the service requires it: verified together
    shutil.copy(SOCKET_UNIT, socket_unit)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(socket_unit), str(copy)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr  # warnings exit 0
    security = subprocess.run(["systemd-analyze", "--offline=true", "security", str(copy)],
                              capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert exposure and float(exposure.group(1)) <= 2.0, security.stdout[-500:]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_instance_units_pass_systemd_analyze(tmp_path):
    """chatd@.service, its socket and chatd.target, as instance 8081: no error and
    no warning (verify exits 0 on an unknown key or a bad dependency; it warns)."""
    chatd = os.path.join(os.path.dirname(sys.executable), "chatd")
    for name in ("chatd@.service", "chatd@.socket", "chatd.target"):
        with open(os.path.join(ROOT, "deploy", name)) as source:
            text = source.read().replace("/opt/chatd/.venv/bin/chatd", chatd)
        (tmp_path / name).write_text(text)
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no",
                             str(tmp_path / "chatd@8081.socket"), str(tmp_path / "chatd@8081.service"),
                             str(tmp_path / "chatd.target")],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and verify.stderr == "", verify.stderr


# -- logs ----------------------------------------------------------------------------

def log_lines_with(server, text):
    return [line for line in server.log().splitlines() if text in line]


def test_one_log_line_per_request_with_its_request_id(server):
    user = Client(server)
    ids = []
    for path in ("/api/me", "/api/rooms", "/api/nope", "/healthz"):
        r = requests.get(server.url + path, headers=user.headers(), timeout=5)
        ids.append((r.headers["X-Request-Id"], path, str(r.status_code)))
    assert len({rid for rid, _, _ in ids}) == len(ids)
    for rid, path, status in ids:
        assert wait_for(lambda: log_lines_with(server, rid), 2)
        lines = log_lines_with(server, rid)
        assert len(lines) == 1 and path in lines[0] and " %s " % status in lines[0], lines


@pytest.mark.slow
def test_an_ordinary_session_logs_no_error(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "quiet.db")).start()
    user = Client(chatd)
    room = user.create_room()
    sock = user.ws(join=room)
    sock.say(room, "hello")
    sock.expect("new-message")
    sock.close()
    left_open = user.ws(join=room)  # still open at SIGTERM
    assert chatd.stop() == 0
    left_open.close()
    assert "Traceback" not in chatd.log() and " ERROR " not in chatd.log(), chatd.log()


def test_no_password_or_token_reaches_the_log(server):
    password = "pw-" + unique("secret")
    user = Client(server, password=password)
    room = user.create_room()
    secrets = [password, user.token]
    # Every way a token travels: query string (WebSocket and HTTP), header, first message.
    by_query = user.ws(join=room)
    by_header = Socket(server.ws_url, header=["Authorization: Bearer " + user.token])
    by_message = Socket(server.ws_url)
    by_message.send(action="join", roomId=room, token=user.token)
    by_message.expect("joined")
    requests.get(server.url + "/api/rooms?token=%s&password=%s" % (user.token, password), timeout=5)
    requests.get(server.url + "/healthz?token=" + user.token, timeout=5)
    # Failures too: a wrong password, a revoked token, a bad body carrying a password.
    requests.post(server.url + "/api/login", json={"username": user.username, "password": password + "x"},
                  timeout=5)
    requests.post(server.url + "/api/login", data='{"username": 1, "password": "%s"' % password,
                  headers={"Content-Type": "application/json"}, timeout=5)
    old = user.token
    user.post("/api/logout")
    requests.get(server.url + "/api/me", headers={"Authorization": "Bearer " + old}, timeout=5)
    for sock in (by_query, by_header, by_message):
        sock.close()
    mark = "end-of-test-" + unique()
    requests.get(server.url + "/healthz?" + mark, timeout=5)
    assert wait_for(lambda: log_lines_with(server, mark), 2)
    assert wait_for(lambda: log_lines_with(server, "GET /chat 101") and
                    len(log_lines_with(server, user.username)) >= 3, 5)
    assert log_lines_with(server, "token=%5Bredacted%5D")
    for secret in secrets:
        assert not log_lines_with(server, secret), "a secret reached the log"


def test_unexpected_exception_is_logged_with_its_id_and_answered_500_internal(server,
                                                                              database_path):
    user = Client(server)
    room = user.create_room()
    # A fault no request can cause: a row the code never writes (a text timestamp).
    with sqlite3.connect(database_path) as db:
        db.execute("UPDATE room SET created_at = 'garbage' WHERE id = ?", (int(room[5:]),))
    try:
        r = user.get("/api/rooms")
        assert r.status_code == 500
        body = r.json()
        rid = r.headers["X-Request-Id"]
        assert body["status"] == "error" and body["error"] == "internal"
        assert rid in body["message"]
        assert "Traceback" not in r.text and "garbage" not in r.text and "Error" not in r.text
        assert wait_for(lambda: len(log_lines_with(server, rid)) >= 2, 2)
        logged = server.log()[server.log().index(rid):]
        assert "Traceback" in logged  # the details are in the log, with the id
        # The server goes on serving.
        assert user.get("/api/me").status_code == 200
    finally:
        with sqlite3.connect(database_path) as db:
            db.execute("UPDATE room SET created_at = 0 WHERE id = ?", (int(room[5:]),))
    assert user.get("/api/rooms").status_code == 200


# -- an operator ends a user's sessions while chatd runs ------------------------------

@pytest.mark.parametrize("command", ["disable", "passwd"])
def test_chat_admin_ends_every_token_and_connection_of_the_user_within_2s(
        server, database_path, command):
    alice, bob = Client(server), Client(server)
    room = bob.create_room()
    assert alice.post("/api/join-room", {"roomId": room}).status_code == 200
    phone_token = alice.token
    laptop_token = alice.login()
    tabs = [Socket(server.ws_url + "?token=" + phone_token),
            Socket(server.ws_url, header=["Authorization: Bearer " + laptop_token]),
            Socket(server.ws_url)]
    tabs[2].send(action="auth", token=laptop_token)
    tabs[2].expect("authenticated")
    for tab in tabs:
        tab.join(room)
    watcher = bob.ws(join=room)
    args = ["user", command, alice.username]
    stdin = "a brand new password\n" if command == "passwd" else ""
    ok(chat_admin("sqlite:///" + database_path, *(args + (["--password-stdin"] if stdin else [])),
                  stdin=stdin))
    started = time.monotonic()
    for tab in tabs:
        events = tab.until(lambda e: e["action"] == "error", timeout=5)
        assert events[-1]["code"] == "unauthorized"
        assert tab.close_code(timeout=5) == 1008
    assert time.monotonic() - started < 2.0
    for token in (phone_token, laptop_token):
        r = requests.get(server.url + "/api/me", headers={"Authorization": "Bearer " + token},
                         timeout=5)
        assert r.status_code == 401
    # Everyone else stays: bob sees alice leave and goes on chatting.
    assert watcher.expect("user-left")["username"] == alice.username
    watcher.say(room, "still here")
    assert watcher.expect("new-message")["message"] == "still here"
    watcher.close()
