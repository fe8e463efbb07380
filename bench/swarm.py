"""Many WebSocket clients in a few processes: the load of issue 18 (hold, storm).

Each worker process runs one asyncio loop over its share of the clients, a
bare asyncio.Protocol each (no StreamReader, no library: a few hundred bytes
of Python state per client). Clients bind to source addresses 127.0.0.2 ...
127.0.0.9 in turn: one source address has only ~28,000 ephemeral ports.

A client connects with its token, joins its room (with `since` = the last
seq it saw, after a reconnect), answers pings, and per room checks that seqs
arrive consecutively (a gap or a duplicate is counted). When its connection
drops it reconnects with the web client's backoff (chatd/web/js/socket.js):
a delay drawn from 0 to a base of 0.5 s doubling per failed attempt up to
10 s (full jitter), back to 0.5 s once a connection is upgraded. A sender client also sends --rate messages
a second whose text carries its send time; a client is "live" again after a
drop when it receives a message sent after it noticed the drop: in-order
delivery means the replay is then complete.

The coordinator talks to workers over a pipe: "report" -> a dict of counters.
"""
import asyncio
import json
import random
import socket
import struct
import time

from wsclient import OP_CLOSE, OP_PING, OP_PONG, chat_path, mask_frame, upgrade_request

SOURCES = ["127.0.0.%d" % i for i in range(2, 10)]
BACKOFF_START, BACKOFF_CAP = 0.5, 10.0   # as the web client's


def now_us():
    return time.monotonic_ns() // 1000


class Client(asyncio.Protocol):
    __slots__ = ("w", "index", "token", "room", "transport", "buf", "state", "last_seq",
                 "attempt", "dropped_at", "live_at", "sender", "gaps", "dups", "received",
                 "drops", "relogin")

    def __init__(self, worker, index, token, room, sender):
        self.w, self.index, self.token, self.room = worker, index, token, room
        self.sender = sender
        self.transport, self.buf, self.state = None, b"", "down"
        self.last_seq = None
        self.attempt = 0
        self.dropped_at = self.live_at = None
        self.gaps = self.dups = self.received = self.drops = 0
        self.relogin = False

    # -- connection ----------------------------------------------------------
    async def connect(self):
        w = self.w
        while not w.stopping:
            try:
                if self.relogin:
                    self.token = await w.login(self.index)
                    self.relogin = False
                source = SOURCES[self.index % len(SOURCES)] if w.sources else None
                await w.loop.create_connection(lambda: self, w.host, w.port,
                                               local_addr=(source, 0) if source else None)
                return
            except (OSError, asyncio.TimeoutError, ConnectionError):
                w.connect_errors += 1
                await asyncio.sleep(self.backoff())

    def backoff(self):
        base = min(BACKOFF_CAP, BACKOFF_START * 2 ** self.attempt)
        self.attempt += 1
        return random.uniform(0, base)

    def connection_made(self, transport):
        self.transport, self.buf, self.state = transport, b"", "handshake"
        transport.write(upgrade_request(self.w.host, self.w.port, chat_path(self.token)))

    def connection_lost(self, exc):
        was = self.state
        self.transport, self.state = None, "down"
        w = self.w
        if was == "open":
            self.drops += 1
            w.open -= 1
        if w.stopping:
            return
        if self.dropped_at is None or self.live_at is not None:
            self.dropped_at, self.live_at = now_us(), None
            self.attempt = 0
            if w.relogin_left > 0:     # the login storm: this one must log in again
                w.relogin_left -= 1
                self.relogin = True
        w.loop.call_later(self.backoff(), w.spawn, self.connect())

    def data_received(self, data):
        buf = self.buf + data if self.buf else data
        if self.state == "handshake":
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = buf
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.w.refused += 1
                self.transport.close()
                return
            self.state = "open"
            self.w.open += 1
            self.attempt = 0
            body = {"action": "join", "roomId": self.room}
            if self.last_seq is not None:
                body["since"] = self.last_seq
            self.send_json(body)
            buf = rest
        self.buf = self.frames(buf)

    def frames(self, buf):
        i, n = 0, len(buf)
        while i + 2 <= n:
            length, head = buf[i + 1] & 0x7F, 2
            if length == 126:
                if i + 4 > n:
                    break
                length, head = struct.unpack_from("!H", buf, i + 2)[0], 4
            elif length == 127:
                if i + 10 > n:
                    break
                length, head = struct.unpack_from("!Q", buf, i + 2)[0], 10
            if i + head + length > n:
                break
            opcode = buf[i] & 0x0F
            payload = buf[i + head:i + head + length]
            i += head + length
            if opcode == 0x1:
                self.on_event(payload)
            elif opcode == OP_PING:
                self.transport.write(mask_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.transport.close()
                return b""
        return buf[i:]

    def send_json(self, obj):
        if self.transport is not None:
            self.transport.write(mask_frame(0x1, json.dumps(obj, separators=(",", ":")).encode()))

    # -- events ----------------------------------------------------------------
    def on_event(self, payload):
        if b'"new-message"' not in payload:
            if b'"joined"' in payload:
                self.w.joins += 1
            return
        event = json.loads(payload)
        seq = event.get("seq", event.get("id"))
        self.received += 1
        if self.last_seq is not None:
            if seq > self.last_seq + 1:
                self.gaps += seq - self.last_seq - 1
            elif seq <= self.last_seq:
                self.dups += 1
                return
        self.last_seq = seq
        if self.dropped_at is not None and self.live_at is None:
            sent = event["message"].partition("#")[0]
            if sent.startswith("t") and int(sent[1:]) >= self.dropped_at:
                self.live_at = now_us()


class Worker:
    def __init__(self, cfg):
        self.host, self.port = cfg["host"], cfg["port"]
        self.sources = cfg.get("sources", True)
        self.cfg = cfg
        self.stopping = False
        self.open = self.joins = self.refused = self.connect_errors = 0
        self.relogin_left = 0
        self.login_ms = []
        self.tasks = set()

    def spawn(self, coro):
        # The loop keeps only weak references to tasks: a reconnect waiting in
        # create_connection would be garbage-collected (and never finish).
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def login(self, index):
        """POST /api/login on a raw stream: (part of) the login storm."""
        name = self.cfg["usernames"][index]
        body = json.dumps({"username": name, "password": self.cfg["password"]}).encode()
        t0 = time.monotonic()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            answer = await reader.read()
        finally:
            writer.close()
        head, _, rest = answer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError("login: " + head[:40].decode(errors="replace"))
        self.login_ms.append((time.monotonic() - t0) * 1000)
        return json.loads(rest)["token"]

    async def send_loop(self, rate):
        interval = 1.0 / rate
        senders = [c for c in self.clients if c.sender]
        while not self.stopping:
            for c in senders:
                if c.state == "open":
                    c.send_json({"action": "send-message", "roomId": c.room,
                                 "message": "t%d#" % now_us()})
            await asyncio.sleep(interval)

    def report(self):
        cs = self.clients
        live = [c.live_at - c.dropped_at for c in cs if c.live_at is not None]
        return {"clients": len(cs), "open": self.open, "joins": self.joins,
                "refused": self.refused, "connect_errors": self.connect_errors,
                "drops": sum(c.drops for c in cs), "gaps": sum(c.gaps for c in cs),
                "dups": sum(c.dups for c in cs), "received": sum(c.received for c in cs),
                "clients_with_gaps": sum(1 for c in cs if c.gaps),
                "clients_with_dups": sum(1 for c in cs if c.dups),
                "down_not_live": sum(1 for c in cs if c.dropped_at is not None and c.live_at is None),
                "live_last_us": max((c.live_at for c in cs if c.live_at), default=None),
                "live_ms_max": max(live) / 1000 if live else None,
                "logins": len(self.login_ms), "login_ms": sorted(self.login_ms),
                "rss_kib": rss_kib("self")}

    async def main(self, pipe):
        cfg = self.cfg
        self.loop = asyncio.get_running_loop()
        self.clients = [Client(self, i, cfg["tokens"][i], cfg["rooms"][i], i in cfg["senders"])
                        for i in range(len(cfg["tokens"]))]
        # Connect in batches so the listen queue is not flooded at setup.
        batch = cfg.get("batch", 200)
        deadline = time.monotonic() + cfg.get("setup_timeout", 600)
        for k in range(0, len(self.clients), batch):
            await asyncio.gather(*(c.connect() for c in self.clients[k:k + batch]))
            while self.joins < min(k + batch, len(self.clients)) - self.refused \
                    and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        if cfg.get("rate"):
            self.loop.create_task(self.send_loop(cfg["rate"]))
        done = asyncio.Event()
        self.loop.add_reader(pipe.fileno(), self.on_command, pipe, done)
        pipe.send({"ready": True, **self.report()})
        await done.wait()

    def on_command(self, pipe, done):
        cmd = pipe.recv()
        if cmd.get("relogin"):
            self.relogin_left = cmd["relogin"]
            self.login_ms = []   # figures of this storm only
        if cmd.get("stop"):
            self.stopping = True
            for c in self.clients:
                if c.transport is not None:
                    c.transport.close()
            done.set()
        pipe.send(self.report())


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_worker(cfg, pipe):
    asyncio.run(Worker(cfg).main(pipe))


def raise_nofile(n):
    """Room for n sockets in this process and its workers (root may raise the hard limit)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 4096
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def start_workers(cfgs):
    """One process per config; returns [(process, pipe)] once every worker is connected."""
    import multiprocessing
    ctx = multiprocessing.get_context("fork")
    workers = []
    for cfg in cfgs:
        here, there = ctx.Pipe()
        proc = ctx.Process(target=run_worker, args=(cfg, there), daemon=True)
        proc.start()
        workers.append((proc, here))
    return workers


def stop_workers(workers):
    """Ask every worker to stop; kill those that do not within a few seconds."""
    if not workers:
        return
    try:
        ask(workers, {"stop": True}, timeout=10)
    except (TimeoutError, OSError, EOFError):
        pass
    for wproc, _pipe in workers:
        wproc.join(5)
        if wproc.is_alive():
            wproc.kill()


def ask(workers, cmd=None, timeout=60):
    """Send cmd (default: report) to every worker; their answers."""
    for _proc, pipe in workers:
        pipe.send(cmd or {})
    out = []
    for _proc, pipe in workers:
        if not pipe.poll(timeout):
            raise TimeoutError("a worker did not answer")
        out.append(pipe.recv())
    return out


def total(reports, key):
    return sum(r[key] or 0 for r in reports)


def split(items, parts):
    return [items[k::parts] for k in range(parts)]


def socket_ok():
    """Whether 127.0.0.2 can be bound (Linux routes all of 127/8 to lo)."""
    try:
        with socket.socket() as s:
            s.bind((SOURCES[0], 0))
        return True
    except OSError:
        return False
