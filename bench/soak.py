"""A bounded soak: several senders and connection churn against a real chatd on SQLite.

It found issue 11's "database is locked": under ordinary load, with logins
and reconnects writing beside the message writer, a few sends were
answered `internal`. It reports what every send got back:

    sends, acks, unanswered, errors by code, ack latency p50/p99

Senders (one user each, spread over the rooms) send at a steady rate, each
message with a clientMsgId, and count their own new-message as the ack.
Every `--reconnect-every` messages a sender drops its WebSocket and opens a
new one (waiting out the acks of the old one first). Churners meanwhile log
in over HTTP (a token write), connect, join, leave and close, over and over.

    bench/.venv/bin/python bench/soak.py                 # 60 s, starts its own chatd
    bench/.venv/bin/python bench/soak.py --seconds 180 --senders 12 --rate 10
    bench/.venv/bin/python bench/soak.py --url http://127.0.0.1:8080   # a running chatd

Uses only the standard library and bench/wsclient.py (it speaks to chatd
over HTTP and WebSocket alone); chatd runs from the repository's .venv.
"""
import argparse
import collections
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_fanout import CHATD_ENV, CHATD_PY, start_server, stop_server  # noqa: E402
from wsclient import (OP_CLOSE, api, chat_path, connect, create_room, join, login_user,  # noqa: E402
                      split_frames, text_frame)

PASSWORD = "soak-password-1"
ACK_GRACE = 10.0  # seconds a sender waits for its last acks before it counts them unanswered


class Tally:
    """What every thread saw, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sends = self.acks = 0
        self.errors = collections.Counter()  # WebSocket error code, or close:<code>
        self.http = collections.Counter()  # churners' unexpected HTTP statuses
        self.latencies = []  # ms, send to own new-message
        self.connections = 0
        self.unanswered = 0

    def add(self, **counts):
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


def events(conn):
    """Complete frames in conn.buf as (opcode, payload); keeps the rest."""
    end, _ = split_frames(conn.buf)
    out, i, data = [], 0, conn.buf
    while i < end:
        opcode, length, head = data[i] & 0x0F, data[i + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(data[i + 2:i + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[i + 2:i + 10], "big"), 10
        out.append((opcode, data[i + head:i + head + length]))
        i += head + length
    conn.buf = data[end:]
    return out


class Sender(threading.Thread):
    def __init__(self, index, addr, token, room, args, tally, stop_at):
        super().__init__(daemon=True)
        self.index, self.addr, self.token, self.room = index, addr, token, room
        self.args, self.tally, self.stop_at = args, tally, stop_at
        self.pending = {}  # clientMsgId -> send time
        self.n = 0

    def run(self):
        while time.monotonic() < self.stop_at:
            try:
                self.one_connection()
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.tally.add(unanswered=len(self.pending))
                with self.tally.lock:
                    self.tally.errors["connection: %s" % type(exc).__name__] += 1
                self.pending.clear()

    def one_connection(self):
        conn = connect(*self.addr, path=chat_path(self.token))
        try:
            join(conn, self.room)
            self.tally.add(connections=1)
            interval = 1.0 / self.args.rate
            next_send = time.monotonic()
            sent_here = 0
            while time.monotonic() < self.stop_at and sent_here < self.args.reconnect_every:
                now = time.monotonic()
                if now >= next_send:
                    self.send(conn)
                    sent_here += 1
                    next_send += interval
                self.read(conn, max(0.0, next_send - time.monotonic()))
            deadline = time.monotonic() + ACK_GRACE
            while self.pending and time.monotonic() < deadline:
                self.read(conn, 0.2)
            self.tally.add(unanswered=len(self.pending))
            self.pending.clear()
        finally:
            conn.sock.close()

    def send(self, conn):
        self.n += 1
        cmid = "s%d-%d" % (self.index, self.n)
        self.pending[cmid] = time.monotonic()
        conn.sock.sendall(text_frame({"action": "send-message", "roomId": self.room,
                                      "message": "soak %s" % cmid, "clientMsgId": cmid}))
        self.tally.add(sends=1)

    def read(self, conn, timeout):
        conn.sock.settimeout(max(0.001, timeout))
        try:
            chunk = conn.sock.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            raise ConnectionError("closed by the server")
        conn.buf += chunk
        for opcode, payload in events(conn):
            if opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                with self.tally.lock:
                    self.tally.errors["close:%s" % code] += 1
                raise ConnectionError("closed with %s" % code)
            self.on_event(payload)

    def on_event(self, payload):
        try:
            event = json.loads(payload)
        except ValueError:
            return  # a ping's payload
        action = event.get("action")
        if action == "new-message" and event.get("clientMsgId") in self.pending:
            sent = self.pending.pop(event["clientMsgId"])
            with self.tally.lock:
                self.tally.acks += 1
                self.tally.latencies.append((time.monotonic() - sent) * 1000.0)
        elif action == "error":
            with self.tally.lock:
                self.tally.errors[event.get("code", "?")] += 1
            # An error answers the oldest send it can be (errors carry no clientMsgId).
            if event.get("ref") == "send-message" and self.pending:
                self.pending.pop(next(iter(self.pending)))


class Churner(threading.Thread):
    """Log in, connect, join, leave, close; again. Each login writes a token."""

    def __init__(self, base, addr, username, rooms, tally, stop_at):
        super().__init__(daemon=True)
        self.base, self.addr, self.username, self.rooms = base, addr, username, rooms
        self.tally, self.stop_at = tally, stop_at

    def run(self):
        n = 0
        while time.monotonic() < self.stop_at:
            n += 1
            status, body = api(self.base, "/api/login",
                               {"username": self.username, "password": PASSWORD})
            if status != 200:
                with self.tally.lock:
                    self.tally.http["login %d" % status] += 1
                time.sleep(0.2)
                continue
            try:
                conn = connect(*self.addr, path=chat_path(body["token"]))
                join(conn, self.rooms[n % len(self.rooms)])
                conn.sock.sendall(text_frame({"action": "leave", "roomId": conn.room}))
                conn.sock.close()
                self.tally.add(connections=1)
            except (OSError, ConnectionError, TimeoutError) as exc:
                with self.tally.lock:
                    self.tally.errors["churn: %s" % type(exc).__name__] += 1
            status, _ = api(self.base, "/api/logout", {}, body["token"])
            if status != 200:
                with self.tally.lock:
                    self.tally.http["logout %d" % status] += 1


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(tally, seconds):
    rows = [("seconds", "%.0f" % seconds), ("sends", tally.sends), ("acks", tally.acks),
            ("unanswered", tally.unanswered),
            ("ack p50 ms", "%.1f" % percentile(tally.latencies, 0.50)),
            ("ack p99 ms", "%.1f" % percentile(tally.latencies, 0.99)),
            ("connections", tally.connections)]
    rows += [("error %s" % code, n) for code, n in sorted(tally.errors.items())]
    rows += [("http %s" % what, n) for what, n in sorted(tally.http.items())]
    width = max(len(name) for name, _ in rows)
    print("-" * (width + 12))
    for name, value in rows:
        print("%-*s %10s" % (width, name, value))
    print("-" * (width + 12))


def soak(base, args):
    parsed = urllib.parse.urlparse(base)
    addr = (parsed.hostname, parsed.port)
    run = "%x" % int(time.time())
    owner = login_user(base, "soak_owner_%s" % run, PASSWORD)
    rooms = [create_room(base, owner, "soak %s %d" % (run, i)) for i in range(args.rooms)]
    tokens = [login_user(base, "soak_s%d_%s" % (i, run), PASSWORD) for i in range(args.senders)]
    churners = ["soak_c%d_%s" % (i, run) for i in range(args.churners)]
    for name in churners:
        login_user(base, name, PASSWORD)
    tally = Tally()
    started = time.monotonic()
    stop_at = started + args.seconds
    threads = [Sender(i, addr, token, rooms[i % len(rooms)], args, tally, stop_at)
               for i, token in enumerate(tokens)]
    threads += [Churner(base, addr, name, rooms, tally, stop_at) for name in churners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report(tally, time.monotonic() - started)
    return tally


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to soak (60)")
    ap.add_argument("--senders", type=int, default=8, help="sending users (8)")
    ap.add_argument("--rate", type=float, default=12.0, help="messages/s per sender (12)")
    ap.add_argument("--rooms", type=int, default=4, help="rooms the senders spread over (4)")
    ap.add_argument("--churners", type=int, default=4,
                    help="threads that log in, connect, join, leave and close, over and over (4)")
    ap.add_argument("--reconnect-every", type=int, default=100,
                    help="messages a sender sends on one connection before reconnecting (100)")
    ap.add_argument("--url", help="a running chatd (http://HOST:PORT); default: start one "
                                  "on SQLite in a temporary folder")
    ap.add_argument("--server-core", type=int, default=0, help="core chatd is pinned to (0)")
    args = ap.parse_args(argv)
    if args.url:
        tally = soak(args.url.rstrip("/"), args)
    else:
        with tempfile.TemporaryDirectory(prefix="chatd-soak-") as tmpdir:
            argv = [CHATD_PY, "-m", "chatd", "--port", "0",
                    "--database", "sqlite:///" + os.path.join(tmpdir, "soak.db")]
            log_path = os.path.join(tmpdir, "chatd.log")
            proc, (host, port) = start_server(argv, CHATD_ENV, log_path, args.server_core)
            try:
                tally = soak("http://%s:%d" % (host, port), args)
            finally:
                stop_server(proc)
                with open(log_path) as log:
                    tracebacks = log.read().count("Traceback")
                print("chatd log: %d traceback(s)" % tracebacks)
    return 0 if tally.sends == tally.acks and not tally.errors else 1


if __name__ == "__main__":
    sys.exit(main())
