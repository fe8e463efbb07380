"""Issue 11's floods: what one flooding WebSocket costs everyone else.

Starts chatd (pinned to core 0, as run_fanout.py does) or uses --url/--pid,
then for each kind of flood runs one connection writing that kind of frame
as fast as loopback takes it, for --seconds, while on the other side of the
server a user sends a message and waits for its acknowledgement (its own
`new-message`), over and over, and a second thread asks GET /healthz over
and over. Prints per kind the flood's rate and the others' latencies
(p50/p99/max), and a row without a flood to compare with. Loopback only.

    bench/.venv/bin/python bench/attack_flood.py
    bench/.venv/bin/python bench/attack_flood.py --seconds 3 --kinds pings,typing
    bench/.venv/bin/python bench/attack_flood.py --url http://127.0.0.1:8080 --pid 1234

Kinds: pings (6-byte pings), continuations (a text message of 100 empty
continuation frames, over and over: under the fragment cap), badjson
(one-byte text frames, each answered by an error event) and typing.
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.request

from run_fanout import CHATD_ENV, CHATD_PY, start_server, stop_server
from wsclient import (OP_PING, OP_TEXT, chat_path, connect, create_room, join, login_user,
                      mask_frame, read_until, text_frame)

PASSWORD = "bench-password-1"
OP_CONT = 0x0


def fragment(opcode, payload, fin):
    frame = bytearray(mask_frame(opcode, payload))
    if not fin:
        frame[0] &= 0x7F
    return bytes(frame)


def flood_bytes(kind, room):
    if kind == "pings":
        return mask_frame(OP_PING, b"") * 4096
    if kind == "continuations":
        one = (fragment(OP_TEXT, b"[", False) + fragment(OP_CONT, b"", False) * 100
               + fragment(OP_CONT, b"]", True))
        return one * 40
    if kind == "badjson":
        return mask_frame(OP_TEXT, b"x") * 4096
    if kind == "typing":
        return text_frame({"action": "typing", "roomId": room}) * 1024
    raise SystemExit("unknown kind %r" % kind)


class Flood:
    """A writer thread and a reader thread (that drops what it reads) on one connection."""

    def __init__(self, conn, blob):
        self.conn, self.blob, self.sent, self.stopped = conn, blob, 0, False
        conn.sock.settimeout(None)
        self.threads = [threading.Thread(target=self._write, daemon=True),
                        threading.Thread(target=self._read, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _write(self):
        try:
            while not self.stopped:
                self.conn.sock.sendall(self.blob)
                self.sent += len(self.blob)
        except OSError:
            pass

    def _read(self):
        try:
            while not self.stopped and self.conn.sock.recv(1 << 16):
                pass
        except OSError:
            pass

    def stop(self):
        self.stopped = True
        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        for thread in self.threads:
            thread.join(5)
        self.conn.sock.close()


def acks(conn, room, seconds, timeout):
    """Latencies of send -> own new-message, one message at a time."""
    out, end, i = [], time.monotonic() + seconds, 0
    while time.monotonic() < end:
        text = "ack %d" % i
        started = time.monotonic()
        conn.sock.sendall(text_frame({"action": "send-message", "roomId": room, "message": text}))
        try:
            read_until(conn, lambda e: e.get("message") == text, timeout)
            out.append(time.monotonic() - started)
        except (TimeoutError, socket.timeout):
            out.append(float("inf"))
            break  # the server is frozen: the next ack would wait behind this one
        i += 1
    return out


def healthz(base, stop, out, timeout):
    while not stop.is_set():
        started = time.monotonic()
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=timeout) as resp:
                resp.read()
            out.append(time.monotonic() - started)
        except OSError:
            out.append(float("inf"))
        stop.wait(0.05)


def summary(values):
    if not values:
        return "%6s %8s %8s %8s" % (0, "-", "-", "-")
    values = sorted(values)

    def ms(v):
        return "lost" if v == float("inf") else "%.1f" % (v * 1000)
    return "%6d %8s %8s %8s" % (len(values), ms(values[len(values) // 2]),
                                ms(values[min(len(values) - 1, int(len(values) * 0.99))]),
                                ms(values[-1]))


def run_kind(kind, host, port, setup, seconds, timeout):
    """One flood (or none) against the acks and probes; (flood MB/s, acks, probes)."""
    flooder_token, flood_room, user_token, room = setup
    base = "http://%s:%d" % (host, port)
    user = connect(host, port, chat_path(user_token))  # before the flood: it may freeze all
    join(user, room)
    flood = None
    if kind != "none":
        conn = connect(host, port, chat_path(flooder_token))
        if kind == "typing":
            join(conn, flood_room)
        flood = Flood(conn, flood_bytes(kind, flood_room))
        time.sleep(0.5)  # from here on the server's socket buffer stays full
    stop, probes = threading.Event(), []
    prober = threading.Thread(target=healthz, args=(base, stop, probes, timeout), daemon=True)
    prober.start()
    sent_before = flood.sent if flood else 0
    started = time.monotonic()
    latencies = acks(user, room, seconds, timeout)
    elapsed = time.monotonic() - started
    stop.set()
    prober.join(timeout + 1)
    rate = ((flood.sent - sent_before) / elapsed / 1e6) if flood else 0.0
    if flood:
        flood.stop()
    user.sock.close()
    return rate, latencies, probes


def users(base):
    """Two users (registration may be rate limited per address) and a room each."""
    run = "%x" % int(time.time() * 1000)
    flooder = login_user(base, "flood" + run, PASSWORD)
    user = login_user(base, "acks" + run, PASSWORD)
    return (flooder, create_room(base, flooder, "flood " + run),
            user, create_room(base, user, "acks " + run))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="none,pings,continuations,badjson,typing")
    ap.add_argument("--seconds", type=float, default=5.0, help="per kind")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="an ack or /healthz slower than this counts as lost")
    ap.add_argument("--url", help="a chatd already running (http://HOST:PORT)")
    ap.add_argument("--pid", type=int, help="its pid (informational)")
    ap.add_argument("--server-core", type=int, default=0)
    args = ap.parse_args()
    proc = None
    tmpdir = tempfile.mkdtemp(prefix="attack-flood-")
    if args.url:
        base = args.url.rstrip("/")
        host, port = base.split("//")[1].split(":")
        port = int(port)
    else:
        if not os.path.exists(CHATD_PY):
            sys.exit("chatd's venv %s is missing: make install" % CHATD_PY)
        db = "sqlite:///" + os.path.join(tmpdir, "flood.db")
        proc, (host, port) = start_server([CHATD_PY, "-m", "chatd", "--port", "0",
                                           "--database", db], CHATD_ENV,
                                          os.path.join(tmpdir, "chatd.log"), args.server_core)
        base = "http://%s:%d" % (host, port)
    print("%-14s %9s | %6s %8s %8s %8s | %6s %8s %8s %8s" % (
        "flood", "MB/s in", "acks", "p50 ms", "p99 ms", "max ms",
        "health", "p50 ms", "p99 ms", "max ms"))
    try:
        setup = users(base)
        for kind in args.kinds.split(","):
            rate, latencies, probes = run_kind(kind, host, port, setup, args.seconds, args.timeout)
            print("%-14s %9.2f | %s | %s" % (kind, rate, summary(latencies), summary(probes)),
                  flush=True)
    finally:
        if proc is not None:
            stop_server(proc)


if __name__ == "__main__":
    main()
