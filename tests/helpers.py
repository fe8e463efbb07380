"""Start real chatd processes and talk to them as clients do."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import requests
import websocket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTENING = re.compile(r"listening on (http://[^\s\"]+)")  # in a text or a JSON line
# Functional tests register many users and create many rooms from one
# address; the hourly limits have tests of their own, which set them lower.
ROOMY = {"CHATD_AUTH_REGISTRATIONS_PER_HOUR": "1000000", "CHATD_LIMITS_ROOMS_PER_HOUR": "1000000"}
# A test's sockets left open at its end never read the server's 1001 close:
# a short shutdown keeps each stop from waiting out the default grace (2 s).
QUICK_STOP = {"CHATD_SERVER_SHUTDOWN_TIMEOUT": "1"}


# systemd's socket activation, done as systemd does it: the listening socket
# (argv[1]) becomes descriptor 3, LISTEN_FDS says how many (argv[2]) and
# LISTEN_PID names the process exec'd (the same pid): ACTIVATE FD COUNT ARGV...
ACTIVATE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
            "os.environ.update(LISTEN_FDS=sys.argv[2], LISTEN_PID=str(os.getpid())); "
            "os.execv(sys.argv[3], sys.argv[3:])")


class Chatd:
    """One chatd process on a free port, its stderr collected.

    With `listener` (a listening socket of the test's), chatd is started the
    way systemd starts it from chatd.socket: that socket handed over as
    descriptor 3, kept open by the test across restarts.
    """

    def __init__(self, database, broker=None, env=None, port=0, args=(), listener=None):
        self.listener = listener
        self.database = database
        self.broker = broker
        self.env = {**os.environ, **ROOMY, **QUICK_STOP, **(env or {})}
        self.port = port
        self.args = list(args)
        self.proc = None
        self.lines = []
        self.url = None

    def start(self, timeout=30):
        cmd = [sys.executable, "-m", "chatd", "--port", str(self.port),
               "--database", self.database] + self.args
        if self.broker:
            cmd += ["--broker", self.broker]
        passed = ()
        if self.listener is not None:
            passed = (self.listener.fileno(),)
            cmd = [sys.executable, "-c", ACTIVATE, str(passed[0]), "1"] + cmd
        self.lines = []
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace", pass_fds=passed)
        found = threading.Event()
        threading.Thread(target=self._collect, args=(found,), daemon=True).start()
        if not found.wait(timeout) or self.url is None:
            self.kill()
            raise RuntimeError("chatd did not start:\n" + self.log())
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def _collect(self, found):
        for line in self.proc.stderr:
            self.lines.append(line)
            match = LISTENING.search(line)
            if match and self.url is None:
                self.url = match.group(1)
                found.set()
        found.set()

    @property
    def ws_url(self):
        return self.url.replace("http://", "ws://") + "/chat"

    def log(self):
        return "".join(self.lines)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.url = None
        return self.proc.returncode if self.proc else None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.url = None

    def restart(self):
        """Stop, then start on the same port and database."""
        self.stop()
        return self.start()


def wait_for(condition, timeout=20, what=None, step=0.05, sleep=time.sleep):
    """Poll `condition` until it holds; fail the test, naming `what`, after `timeout` s.

    The one way tests wait for something to happen (never a bare sleep). It
    returns True so that `assert wait_for(...)` reads naturally. In-process
    tests of greenlets pass sleep=gevent.sleep, so the greenlets run meanwhile.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %gs waiting for %s"
                                 % (timeout, what or getattr(condition, "__name__", "a condition")))
        sleep(step)
    return True


# Functional tests send hundreds of messages; the limits have tests of their own.
GENEROUS = {"CHATD_LIMITS_MESSAGES_PER_MINUTE": "1000000", "CHATD_LIMITS_MESSAGE_BURST": "100000"}


def assert_error(response, status, code, field=None):
    """An HTTP answer with the JSON error shape, that status and code (naming `field`)."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "error" and body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    if field:
        assert "'%s'" % field in body["message"], body
    return body


def history(user, room):
    """Every stored message of the room, oldest first, page by page."""
    return _every_page(user, "/api/chat-history/%s?limit=500&after=%%d" % room, "messages", "id")


def room_log(user, room):
    """Every sequenced event of the room's log, in seq order (GET /events, page by page)."""
    return _every_page(user, "/api/rooms/%s/events?limit=500&after=%%d" % room, "events", "seq")


def _every_page(user, path, items, position):
    """The items of every page of `path` (after=%d takes the last item's `position`)."""
    found, more = [], True
    while more:
        r = user.get(path % (found[-1][position] if found else 0))
        assert r.status_code == 200, r.text
        found += r.json()[items]
        more = r.json()["hasMore"]
    return found


def unique(prefix="u"):
    return "%s%s" % (prefix, uuid.uuid4().hex[:10])


class Client:
    """A user of a chatd: HTTP calls with its token, WebSockets on demand."""

    def __init__(self, server, username=None, password="correct horse", register=True):
        self.server = server
        self.username = username or unique()
        self.password = password
        self.token = None
        if register:
            r = self.post("/api/register", {"username": self.username, "password": password},
                          auth=False)
            assert r.status_code == 201, r.text
            self.login()

    def login(self):
        r = self.post("/api/login", {"username": self.username, "password": self.password},
                      auth=False)
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        return self.token

    def headers(self, auth=True):
        return {"Authorization": "Bearer %s" % self.token} if auth and self.token else {}

    def post(self, path, body=None, auth=True, **kwargs):
        return requests.post(self.server.url + path, json=body, headers=self.headers(auth),
                             timeout=30, **kwargs)

    def get(self, path, auth=True, **kwargs):
        return requests.get(self.server.url + path, headers=self.headers(auth), timeout=30,
                            **kwargs)

    def create_room(self, name=None):
        r = self.post("/api/create-room", {"roomName": name or unique("room ")})
        assert r.status_code == 201, r.text
        return r.json()["roomId"]

    def ws(self, join=None, since=None):
        """An authenticated WebSocket, joined to `join` if given."""
        sock = Socket(self.server.ws_url + "?token=" + self.token)
        if join:
            sock.join(join, since)
        return sock


class Socket:
    """websocket-client with JSON helpers and deadlines instead of sleeps."""

    def __init__(self, url, timeout=10, **options):
        self.ws = websocket.create_connection(url, timeout=timeout, **options)

    def send(self, **event):
        self.ws.send(json.dumps(event))

    def recv(self, timeout=10):
        self.ws.settimeout(timeout)
        opcode, data = self.ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise Closed(close_code(data))
        return json.loads(data)

    def until(self, predicate, timeout=10):
        """Events up to and including the first that matches."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching event; saw %r" % seen)
            event = self.recv(left)
            seen.append(event)
            if predicate(event):
                return seen

    def expect(self, action, timeout=10, **fields):
        """Skip to the next event with this action (and fields); return it."""
        def match(event):
            return event.get("action") == action and all(
                event.get(k) == v for k, v in fields.items())
        return self.until(match, timeout)[-1]

    def join(self, room_id, since=None):
        body = {"action": "join", "roomId": room_id}
        if since is not None:
            body["since"] = since
        self.send(**body)
        return self.expect("joined", roomId=room_id)

    def say(self, room_id, text, client_msg_id=None):
        body = {"action": "send-message", "roomId": room_id, "message": text}
        if client_msg_id:
            body["clientMsgId"] = client_msg_id
        self.send(**body)

    def close_code(self, timeout=10):
        """Read until the server's close frame; its code (None on a bare EOF)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketConnectionClosedException:
                return None
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return close_code(data)
        raise AssertionError("the server did not close the connection")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


class Closed(Exception):
    def __init__(self, code):
        super().__init__("closed with %s" % code)
        self.code = code


def close_code(data):
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else None
