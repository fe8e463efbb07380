"""Fan-out load generator (issue 8): R rooms x M members, S senders per room.

Every member of a room is one WebSocket connection; S of them also send
100-byte messages at a per-sender rate that rises step by step. Each message
text carries its step tag and its send time (CLOCK_MONOTONIC, microseconds):
"@<tag>:<us>#xxxx...". Receivers find those markers with one regex over each
read buffer, so a delivery costs a few bytecodes, not a JSON parse.

Each step: `--warmup` s at the new rate (not measured), `--measure` s whose
messages are tagged, then `--tail` s at the same rate so late deliveries of
tagged messages still count. Per step it reports the offered rate, deliveries
received per second during the measured window, the fraction of expected
deliveries (tagged messages x members) that arrived, and p50/p99 latency from
send to receipt, counting a missing delivery as infinitely late.

`--arrival` also records when each delivery reached the member's socket:
the kernel's receive timestamp (SO_TIMESTAMPNS, taken as the server's send
put the bytes in the socket) rather than when this one process got round to
reading it. With thousands of members on one load-generator core, reading
them takes as long as the server's sends, and the read time measures the
load generator as much as the server; real members each read on their own
machine. Both figures are reported.

Capacity = the highest delivered/s of a step with >= 98% delivered and
p99 <= 100 ms.

`--mix 0.2` (chatd only) is issue 13's mixed workload: every fifth action of
a sender is a change to its own anchor message instead of a new message,
alternately `edit-message` (the new text carries the marker) and `react`
(the emoji is the marker, so each one is new and stored). Their events
(`message-edited`, `reaction-added`) go to every member like messages and
count the same way; they are also counted by event name, per kind. A server
that answers `bad_request` to those actions does not have them: the run stops
at once and says so.

    taskset -c 1 python bench/loadgen.py --url ws://127.0.0.1:8081 --target plain
    taskset -c 1 python bench/loadgen.py --url ws://127.0.0.1:8080 --target chatd
"""
import argparse
import json
import os
import re
import select
import socket
import struct
import sys
import time
import urllib.parse

from wsclient import (OP_CLOSE, OP_PING, OP_PONG, chat_path, connect, create_room,
                      join, login_user, mask_frame, payloads, read_until, split_frames,
                      text_frame)

MARK = re.compile(rb"@(\d+):(\d+)#")
ERROR_EVENT = b'"action":"error"'
CHANGE_EVENTS = {"edit-message": b'"action":"message-edited"',
                 "react": b'"action":"reaction-added"'}


class UnsupportedAction(SystemExit):
    """The server does not know an action of the mixed workload."""
PASSWORD = "bench-password-1"
MIN_FRACTION, MAX_P99_MS = 0.98, 100.0


def now_us():
    return time.monotonic_ns() // 1000


SO_TIMESTAMPNS = 35   # Linux (asm-generic); the socket module does not name it
TIMESPEC = struct.Struct("qq")
ANC_SPACE = socket.CMSG_SPACE(TIMESPEC.size)


def cpu_ticks(pid="self"):
    """User + system clock ticks of a process, all its threads (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def core_ticks(cpus):
    """User + nice + system + steal ticks of these CPUs (/proc/stat). Interrupt
    time is left out: on loopback most of it is our own traffic."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *v = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                total += int(v[0]) + int(v[1]) + int(v[2]) + int(v[7])
    return total


class Usage:
    """CPU use of a pinned process, and of everything else on its cores.

    `others` is what shows a shared machine: another process (or the
    hypervisor) took part of the core the server or the load generator is
    pinned to, so a step with a high `others` says little about the server."""

    def __init__(self, pid="self"):
        self.pid = pid
        self.cpus = os.sched_getaffinity(0 if pid == "self" else pid)
        self.hz = os.sysconf("SC_CLK_TCK")

    def sample(self):
        return cpu_ticks(self.pid), core_ticks(self.cpus), time.monotonic()

    def between(self, a, b):
        """(own share of one CPU, others' share of the pinned cores) from a to b."""
        secs = (b[2] - a[2]) * self.hz
        own = (b[0] - a[0]) / secs
        others = max(0.0, (b[1] - a[1]) / secs - own) / len(self.cpus)
        return own, others


def machine_busy(pause, secs=1.0):
    """Share of all CPUs busy over pause(secs) (from /proc/stat). Called while
    the server and we are idle, so what it sees is other processes."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]          # total, idle + iowait
    t0, i0 = sample()
    pause(secs)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(loop, max_busy, give_up_s):
    """Before rerunning a disturbed step: wait for the other processes to calm
    down, still reading (and answering pings: servers drop silent clients)."""
    start = time.monotonic()
    busy = machine_busy(loop.idle)
    while busy > max_busy and time.monotonic() - start < give_up_s:
        busy = machine_busy(loop.idle)
    waited = time.monotonic() - start
    if waited > 1.5:
        print(f"   (waited {waited:.0f} s for other processes; machine now {busy * 100:.0f}% busy)",
              file=sys.stderr, flush=True)


# --- setup ------------------------------------------------------------------

def open_room_connections(args):
    """Connect R x M members and join each to its room; returns (conns, senders)."""
    url = urllib.parse.urlsplit(args.url)
    host, port = url.hostname, url.port
    tokens, room_ids = authenticate(args, host, port)
    conns, senders = [], []
    for r in range(args.rooms):
        for m in range(args.members):
            token = tokens[r * args.members + m] if tokens else None
            conn = connect(host, port, chat_path(token))
            join(conn, room_ids[r])
            conns.append(conn)
            if m < args.senders:
                senders.append(conn)
    return conns, senders


def send_anchor(conn, client_msg_id):
    """Send the message a sender's edits and reactions change; its id."""
    conn.sock.sendall(text_frame({"action": "send-message", "roomId": conn.room,
                                  "message": "anchor", "clientMsgId": client_msg_id}))
    event = read_until(conn, lambda e: e.get("clientMsgId") == client_msg_id
                       or e.get("action") == "error")
    if event["action"] == "error":
        raise RuntimeError(f"anchor message: {event}")
    return event["id"]


def authenticate(args, host, port):
    """chatd: one user per connection, rooms created by their first member.
    plain: no tokens, rooms room_1..room_R."""
    if args.target == "plain":
        return None, [f"room_{r + 1}" for r in range(args.rooms)]
    base = f"http://{host}:{port}"
    run = args.run_id
    from concurrent.futures import ThreadPoolExecutor
    conns = args.rooms * args.members
    users = min(conns, args.users) if args.users else conns
    names = [f"b{run}_{i}" for i in range(users)]
    with ThreadPoolExecutor(args.auth_threads) as pool:
        tokens = list(pool.map(lambda n: login_user(base, n, PASSWORD), names))
    tokens = [tokens[i % users] for i in range(conns)]
    room_ids = [create_room(base, tokens[r * args.members], f"bench {run} room {r + 1}")
                for r in range(args.rooms)]
    return tokens, room_ids


# --- the measuring loop -----------------------------------------------------

class Sender:
    """A connection that sends at a fixed rate from a phase offset."""
    __slots__ = ("conn", "next_us", "seq", "prefix", "changes", "anchor")

    def __init__(self, conn, index, anchor):
        self.conn, self.next_us, self.seq, self.changes = conn, 0, 0, 0
        self.prefix = f"s{index}-"
        self.anchor = anchor     # --mix: the id of the message its changes are about


class Loop:
    """epoll over all connections; sends what is due, counts what arrives."""

    def __init__(self, conns, senders, members, message_bytes, read_pause=0.0, mix=0.0,
                 anchors=None, arrival=False):
        self.ep = select.epoll()
        self.by_fd = {}
        self.arrival = arrival
        self.arrivals = {}       # tag -> latencies in us to the kernel's receive timestamp
        for c in conns:
            c.sock.setblocking(False)
            if arrival:
                c.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.by_fd[c.sock.fileno()] = c
            self.ep.register(c.sock.fileno(), select.EPOLLIN)
        anchors = anchors or [None] * len(senders)
        self.senders = [Sender(c, i, anchors[i]) for i, c in enumerate(senders)]
        self.members = members
        self.pad = message_bytes
        self.received = 0        # every marked delivery, tagged or not
        self.reads = 0
        self.sent = 0
        self.tag = b"0"          # the tag put on messages sent now; b"0" = unmeasured
        self.latencies = {}      # tag -> list of latencies in us
        self.closed = 0
        self.pending = set()     # connections with bytes the kernel did not take yet
        self.read_pause = read_pause
        self.mix = mix           # share of actions that change an anchor message
        self.sent_kinds = dict.fromkeys(("send-message",) + tuple(CHANGE_EVENTS), 0)
        self.acked = dict.fromkeys(CHANGE_EVENTS, 0)   # their events received, all members
        self.errors = 0
        self.rbuf = bytearray(1 << 18)
        self.rview = memoryview(self.rbuf)

    def set_rate(self, per_sender):
        """Restart every sender's schedule at the new rate, phases spread evenly."""
        self.interval = 1e6 / per_sender
        start, n = now_us(), len(self.senders)
        for i, s in enumerate(self.senders):
            s.next_us = start + self.interval * i / n
        self.next_due = start

    def run_until(self, end_us):
        while True:
            now = now_us()
            if now >= end_us:
                return
            if now >= self.next_due:
                self.send_due(now)
            wait = min(self.next_due, end_us) - now_us()
            self.receive(max(wait, 0) / 1e6)
            if self.pending:
                for conn in list(self.pending):
                    self.write(conn, b"")

    def idle(self, secs):
        """Send nothing for secs; keep reading."""
        end = now_us() + secs * 1e6
        while now_us() < end:
            self.receive(max(0, end - now_us()) / 1e6)
            for conn in list(self.pending):
                self.write(conn, b"")

    def drain(self, quiet_s=0.3, max_s=30.0):
        """Send nothing and read until nothing has arrived for quiet_s: the
        backlog of an overloaded step must not spill into the next one."""
        start = last = now_us()
        seen = self.received
        while now_us() - last < quiet_s * 1e6 and now_us() - start < max_s * 1e6:
            self.receive(0.05)
            if self.received != seen:
                seen, last = self.received, now_us()

    def send_due(self, now):
        """Send every action whose time has come (catching up after a stall)."""
        tag = self.tag
        for s in self.senders:
            while s.next_us <= now:
                s.seq += 1
                self.write(s.conn, self.action_frame(s, tag))
                s.next_us += self.interval
                self.sent += 1
        self.next_due = min(s.next_us for s in self.senders)

    def action_frame(self, s, tag):
        """A new message; with --mix, every 1/mix-th action changes the anchor instead."""
        marker = f"@{tag.decode()}:{now_us()}#"
        if self.mix and int(s.seq * self.mix) != int((s.seq - 1) * self.mix):
            s.changes += 1
            if s.changes % 2:
                event = {"action": "edit-message", "roomId": s.conn.room, "id": s.anchor,
                         "message": marker + "e" * (self.pad - len(marker))}
            else:   # the marker is the emoji: a new reaction each time, always stored
                event = {"action": "react", "roomId": s.conn.room, "id": s.anchor,
                         "emoji": marker}
        else:
            event = {"action": "send-message", "roomId": s.conn.room,
                     "message": marker + "x" * (self.pad - len(marker)),
                     "clientMsgId": s.prefix + str(s.seq)}
        self.sent_kinds[event["action"]] += 1
        return text_frame(event)

    def write(self, conn, frame):
        """Non-blocking send; what the kernel does not take waits in conn.out."""
        data = conn.out + frame if conn.out else frame
        try:
            n = conn.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.drop(conn)
            n = len(data)
        conn.out = data[n:]
        if conn.out:
            self.pending.add(conn)
        else:
            self.pending.discard(conn)

    def receive(self, timeout):
        if self.read_pause:
            time.sleep(self.read_pause)   # --read-pause-ms: a slower reader, see README
        events = self.ep.poll(timeout, 1024)
        if not events:
            return
        latencies, arrivals = self.latencies, self.arrivals
        buf, view = self.rbuf, self.rview
        # The kernel stamps arrivals on the wall clock, markers are monotonic:
        # the offset between them, taken per wake-up, carries one to the other.
        wall_offset = time.time_ns() // 1000 - now_us() if self.arrival else 0
        arrived = None
        for fd, _ in events:
            conn = self.by_fd[fd]
            # recv_into one reused buffer: sock.recv(256 KiB) would allocate
            # (and mmap) 256 KiB per call, which cost 3/4 of the loop's time.
            kept = len(conn.buf)
            if kept:
                buf[:kept] = conn.buf
            try:
                if self.arrival:
                    n, anc, _, _ = conn.sock.recvmsg_into([view[kept:]], ANC_SPACE)
                    arrived = arrival_us(anc, wall_offset)
                else:
                    n = conn.sock.recv_into(view[kept:])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                n = 0
            if not n:
                self.drop(conn)
                continue
            now = now_us()   # per read, not per wake-up: a wake-up may serve 200 sockets
            n += kept
            self.reads += 1
            end, control = split_frames(buf, n)
            conn.buf = bytes(buf[end:n])
            if control:
                self.on_control(conn, control)
            if buf.find(ERROR_EVENT, 0, end) >= 0:
                self.on_errors(buf, end)
            if self.mix:
                for kind, name in CHANGE_EVENTS.items():
                    self.acked[kind] += buf.count(name, 0, end)
            found = MARK.findall(buf, 0, end)
            if not found:
                continue
            self.received += len(found)
            for tag, sent in found:
                if tag != b"0":
                    lst = latencies.get(tag)
                    if lst is not None:   # None: the step is already closed, too late
                        lst.append(now - int(sent))
                        if arrived is not None:
                            arrivals[tag].append(arrived - int(sent))

    def open_tag(self, tag):
        self.latencies[tag] = []
        if self.arrival:
            self.arrivals[tag] = []

    def close_tag(self, tag):
        """The tag's latencies (read, arrival), sorted; arrival None without --arrival."""
        arrivals = self.arrivals.pop(tag, None)
        return sorted(self.latencies.pop(tag)), None if arrivals is None else sorted(arrivals)

    def on_control(self, conn, control):
        for opcode, payload in control:
            if opcode == OP_PING:
                self.write(conn, mask_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.drop(conn)

    def on_errors(self, buf, end):
        """Error events (rare): a change action refused as bad_request ends the run
        (an older chatd answers "Unknown action"); others are counted and shown."""
        for payload, _ in payloads(bytes(buf[:end]), end):
            if ERROR_EVENT not in payload:
                continue
            event = json.loads(payload)
            self.errors += 1
            if event.get("code") == "bad_request" and event.get("ref") in CHANGE_EVENTS:
                hint = ("this chatd lacks edit-message and react (PROTOCOL section 7, issue 13): "
                        "run the mixed workload against a build that has them"
                        if "nknown action" in event.get("message", "") else
                        "the load generator's change frames do not match this chatd's rules")
                raise UnsupportedAction(f"loadgen: the server refused {event['ref']}: "
                                        f"{event}\n{hint}")
            if self.errors <= 5:
                print(f"   server error event: {event}", file=sys.stderr, flush=True)

    def drop(self, conn):
        if not conn.closed:
            conn.closed = True
            self.closed += 1
            self.ep.unregister(conn.sock.fileno())


def run_step(loop, rate, step_no, args):
    """One rate step: warm up, measure, let stragglers arrive; returns its figures."""
    tag = str(step_no).encode()
    loop.set_rate(rate)
    t = now_us()
    loop.tag = b"0"
    loop.run_until(t + args.warmup * 1e6)
    loop.open_tag(tag)
    sent0, recv0, t0 = loop.sent, loop.received, now_us()
    reads0, kinds0, errors0 = loop.reads, dict(loop.sent_kinds), loop.errors
    acked0 = dict(loop.acked)
    me0, server0 = loop.me.sample(), loop.server.sample()
    loop.tag = tag
    loop.run_until(t0 + args.measure * 1e6)
    sent, recv, t1 = loop.sent - sent0, loop.received - recv0, now_us()
    me1, server1 = loop.me.sample(), loop.server.sample()
    reads = loop.reads - reads0
    kinds = {k: v - kinds0[k] for k, v in loop.sent_kinds.items()}
    acked = {k: v - acked0[k] for k, v in loop.acked.items()}
    loop.tag = b"0"
    loop.run_until(t1 + args.tail * 1e6)
    lat, arr = loop.close_tag(tag)
    expected = sent * loop.members
    secs = (t1 - t0) / 1e6
    me_cpu, me_others = loop.me.between(me0, me1)
    server_cpu, server_others = loop.server.between(server0, server1)
    return {
        "rate_per_sender": rate,
        "sent_per_s": sent / secs,
        "offered_per_s": expected / secs,
        "delivered_per_s": recv / secs,
        "fraction": len(lat) / expected if expected else 0.0,
        "p50_ms": percentile(lat, expected, 0.50),
        "p99_ms": percentile(lat, expected, 0.99),
        # --arrival: the same deliveries timed to the kernel's receive timestamp
        "arrival_p50_ms": percentile(arr, expected, 0.50) if arr is not None else None,
        "arrival_p99_ms": percentile(arr, expected, 0.99) if arr is not None else None,
        "frames_per_read": recv / reads if reads else 0.0,
        "loadgen_cpu": me_cpu,
        "loadgen_core_others": me_others,
        "server_cpu": server_cpu if args.server_pid else None,
        "server_core_others": server_others if args.server_pid else None,
        "closed": loop.closed,
        "sent_kinds": kinds,       # actions sent in the measured window, by kind
        # their events received in the window (all members), as for delivered/s
        "acked_per_s": {k: v / secs for k, v in acked.items()},
        "errors": loop.errors - errors0,
    }


def arrival_us(ancillary, wall_offset):
    """The kernel's receive timestamp of what recvmsg read, on the monotonic clock
    (of the last segment read: a read of several frames stamps them all late)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = TIMESPEC.unpack(data)
            return sec * 1000000 + nsec // 1000 - wall_offset
    return None


def percentile(sorted_us, expected, q):
    """q-quantile in ms over the expected deliveries; a missing one counts as
    infinitely late, so None when too many are missing."""
    k = max(0, int(q * expected + 0.999999) - 1)
    return sorted_us[k] / 1000 if k < len(sorted_us) else None


def others_share(step):
    return max(step["server_core_others"] or 0.0, step["loadgen_core_others"])


def disturbed(step, max_others):
    """Other processes took more than max_others of the server's or our
    pinned core during the step: it says little about the server."""
    return others_share(step) > max_others


def passes(step):
    return (step["fraction"] >= MIN_FRACTION and step["p99_ms"] is not None
            and step["p99_ms"] <= MAX_P99_MS)


def capacity(steps):
    ok = [s["delivered_per_s"] for s in steps if passes(s)]
    return max(ok) if ok else 0.0


# --- output -----------------------------------------------------------------

def fmt_ms(v):
    return "lost" if v is None else f"{v:.2f}"


def fmt_pct(v):
    return "-" if v is None else f"{v * 100:.0f}%"


def print_header():
    print(f"{'rate/sender':>11} {'msgs/s':>8} {'offered/s':>10} {'delivered/s':>12} "
          f"{'received':>9} {'p50 ms':>8} {'p99 ms':>8} {'lg cpu':>6} {'srv cpu':>7} {'others':>9}  ok", flush=True)


def print_step(s, max_wait):
    print(f"{s['rate_per_sender']:>11g} {s['sent_per_s']:>8.0f} {s['offered_per_s']:>10.0f} "
          f"{s['delivered_per_s']:>12.0f} {s['fraction'] * 100:>8.2f}% {fmt_ms(s['p50_ms']):>8} "
          f"{fmt_ms(s['p99_ms']):>8} {s['loadgen_cpu'] * 100:>5.0f}% {fmt_pct(s['server_cpu']):>7}"
          f" {fmt_pct(s['loadgen_core_others']) + '/' + fmt_pct(s['server_core_others']):>9}"
          f"  {'yes' if passes(s) else 'no'}{' (disturbed)' if disturbed(s, max_wait) else ''}"
          + (f"  ({s['closed']} connections closed)" if s["closed"] else "")
          + (f"  ({s['errors']} error events)" if s["errors"] else ""), flush=True)
    sent = s["sent_kinds"]
    if sent["edit-message"] or sent["react"]:
        secs = s["sent_per_s"] and sum(sent.values()) / s["sent_per_s"]
        print(f"{'':>11} changes/s sent: {sent['edit-message'] / secs:.0f} edits, "
              f"{sent['react'] / secs:.0f} reactions; their events received/s: "
              f"{s['acked_per_s']['edit-message']:.0f} message-edited, "
              f"{s['acked_per_s']['react']:.0f} reaction-added", flush=True)


def parse_rates(spec):
    """'50,150:400:25' -> [50, 150, 175, ..., 400]."""
    rates = []
    for part in spec.split(","):
        if ":" in part:
            lo, hi, step = (float(x) for x in part.split(":"))
            rates += [lo + i * step for i in range(int((hi - lo) / step + 1e-9) + 1)]
        else:
            rates.append(float(part))
    return rates


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fan-out load generator (issue 8).")
    ap.add_argument("--url", required=True, help="ws://HOST:PORT of the server")
    ap.add_argument("--target", choices=("chatd", "plain"), default="plain",
                    help="chatd: register/login users and create rooms; plain: no auth")
    ap.add_argument("--rooms", type=int, default=10)
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--senders", type=int, default=2, help="senders per room")
    ap.add_argument("--message-bytes", type=int, default=100)
    ap.add_argument("--rates", default="50:500:25",
                    help="per-sender msgs/s steps: list and LO:HI:STEP ranges "
                         "(50 = 20,000 deliveries/s at 10x20x2, the latency point)")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--measure", type=float, default=3.0)
    ap.add_argument("--tail", type=float, default=1.0)
    ap.add_argument("--stop-after", type=int, default=2,
                    help="stop after this many failing steps in a row (0: never)")
    ap.add_argument("--max-others", type=float, default=0.05,
                    help="a step where other processes used more than this share of "
                         "the server's or the load generator's core is disturbed ...")
    ap.add_argument("--retries", type=int, default=3,
                    help="... and is run again up to this many times")
    ap.add_argument("--quiet-timeout", type=float, default=60,
                    help="before a rerun, wait up to this long for the machine to calm down")
    ap.add_argument("--run-id", default=str(int(time.time()) % 1000000),
                    help="chatd: suffix of usernames and room names")
    ap.add_argument("--auth-threads", type=int, default=4)
    ap.add_argument("--users", type=int, default=0,
                    help="chatd: connections share this many users (0: one user each); "
                         "registering 10,000 users costs minutes of password hashing")
    ap.add_argument("--server-pid", type=int,
                    help="report this process's CPU use per step (from /proc)")
    ap.add_argument("--read-pause-ms", type=float, default=0.0,
                    help="sleep this long before each poll: a slower reader that lets "
                         "Nagle's algorithm coalesce (adds that much latency)")
    ap.add_argument("--mix", type=float, default=0.0,
                    help="chatd: this share of actions edit or react to the sender's anchor "
                         "message instead of sending one (issue 13's mixed workload: 0.2)")
    ap.add_argument("--arrival", action="store_true",
                    help="also time each delivery to the kernel's receive timestamp "
                         "(arrival at the member's socket), not only to when it was read")
    ap.add_argument("--json", help="write the steps and the capacity to this file")
    args = ap.parse_args(argv)
    if args.mix and args.target != "chatd":
        ap.error("--mix needs --target chatd: the peers know only send-message")
    if not 0 <= args.mix <= 0.5:
        ap.error("--mix is a share of actions between 0 and 0.5")

    conns, senders = open_room_connections(args)
    print(f"{len(conns)} connections in {args.rooms} rooms, {len(senders)} senders",
          file=sys.stderr, flush=True)
    anchors = [send_anchor(c, f"anchor-{args.run_id}-{n}") for n, c in enumerate(senders)
               ] if args.mix else None
    loop = Loop(conns, senders, args.members, args.message_bytes, args.read_pause_ms / 1000,
                args.mix, anchors, args.arrival)
    loop.me, loop.server = Usage(), Usage(args.server_pid or "self")
    print_header()
    steps, failures, step_no = [], 0, 0
    for rate in parse_rates(args.rates):
        attempts = []
        for attempt in range(1 + args.retries):
            step_no += 1
            step = run_step(loop, rate, step_no, args)
            attempts.append(step)
            print_step(step, args.max_others)
            if not passes(step):
                loop.drain()
            if not disturbed(step, args.max_others):
                break
            if attempt < args.retries:
                wait_for_quiet(loop, args.max_others, args.quiet_timeout)
        step = min(attempts, key=others_share)   # the least disturbed attempt counts
        steps.append(step)
        failures = 0 if passes(step) else failures + 1
        if args.stop_after and failures >= args.stop_after:
            break
        if loop.closed:
            print(f"stopping: the server closed {loop.closed} connections", flush=True)
            break
    cap = capacity(steps)
    print(f"capacity: {cap:.0f} deliveries/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"url": args.url, "target": args.target, "mix": args.mix,
                       "capacity": cap, "steps": steps}, f, indent=1)
    for c in conns:
        c.sock.close()


if __name__ == "__main__":
    main()
