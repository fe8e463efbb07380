"""One upgraded WebSocket: reading frames fairly and with limits, buffered writes.

Reads: FrameReader takes bytes from the socket into a buffer that exists
only while bytes wait (an idle connection holds none), cuts frames with the
pure codec (wscodec) and yields to the other greenlets after a bounded
amount of work, so no peer keeps the hub.

Writes: `Connection.send(frame)` only appends to the connection's buffer and
marks it dirty; one Flusher greenlet per server writes each dirty buffer
with a single non-blocking send (so every frame queued for a socket in one
loop turn leaves in one syscall). What the kernel will not take at once is
finished by a writer greenlet of that connection under a write deadline. A
buffer past its bound means the peer does not read: it is cut off.
"""
import logging
import socket
import time

import gevent
import gevent.event

from .wscodec import (CLOSE_TRY_LATER, OP_CLOSE, OP_PING, OP_PONG, Assembler, CloseConnection,
                      close_frame, encode_frame, parse_frame, peer_close_code)

log = logging.getLogger("chatd.wsconn")

# Peers vanish; these are expected, not errors.
SOCKET_GONE = (ConnectionError, BrokenPipeError, socket.timeout, OSError)

# Fairness: gevent's recv only switches when the socket would block, so a
# peer that keeps its socket full would keep the hub forever. The reader
# yields after this much work: frames, plus one per 4 KiB of payload.
WORK_PER_TURN = 32


class PeerClosed(Exception):
    """The peer sent a close frame or the TCP stream ended."""


class Draining(Exception):
    """Our close frame went out while a message was being read: stop handling frames."""


class FrameReader:
    """Reads whole messages from a socket, with the codec's caps."""

    __slots__ = ("_recv", "_buf", "_pos", "max_bytes", "assembler", "_work")

    def __init__(self, sock, pending, max_bytes, max_fragments):
        self._recv = sock.recv
        self._buf = pending
        self._pos = 0  # where the next frame starts in _buf (no copy per frame)
        self.max_bytes = max_bytes
        self.assembler = Assembler(max_bytes, max_fragments)
        self._work = 0

    def frame(self):
        """One frame: (fin, opcode, payload). Limits are checked from the header."""
        while True:
            frame, end = parse_frame(self._buf, self._pos, self.max_bytes)
            if frame is not None:
                break
            self._fill(end)
        if end == len(self._buf):
            self._buf, self._pos = b"", 0
        else:
            self._pos = end
        self._pace(len(frame[2]))
        return frame

    def _fill(self, end):
        """Read until the buffer could hold a frame ending at `end`."""
        rest = self._buf[self._pos:] if self._pos else self._buf
        missing = end - self._pos - len(rest)
        chunk = self._recv(max(missing, 4096))
        if not chunk:
            raise PeerClosed()
        self._buf, self._pos = rest + chunk, 0

    def _pace(self, length):
        self._work += 1 + (length >> 12)
        if self._work >= WORK_PER_TURN:
            self._work = 0
            gevent.sleep(0)

    def message(self, on_control):
        """The next data message as (opcode, payload); control frames go to on_control."""
        while True:
            fin, opcode, payload = self.frame()
            if opcode >= OP_CLOSE:
                on_control(opcode, payload)
                continue
            whole = self.assembler.add(fin, opcode, payload)
            if whole is not None:
                return whole


class Flusher:
    """The one greenlet that writes every dirty connection's buffer.

    Owned by the server: started with it, stopped at shutdown.
    """

    def __init__(self):
        self._dirty = []
        self._wake = gevent.event.Event()
        self._greenlet = None

    def start(self):
        self._greenlet = gevent.spawn(self._run)

    def stop(self):
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def mark(self, conn):
        if not self._dirty:
            self._wake.set()
        self._dirty.append(conn)

    def _run(self):
        while True:
            self._wake.wait()
            # Let every greenlet that is ready run first: what they queue for
            # the same sockets then leaves in the same send.
            gevent.sleep(0)
            self._wake.clear()
            dirty, self._dirty = self._dirty, []
            for conn in dirty:
                try:
                    conn._flush_now()
                except Exception:  # one broken connection must not stop every other's writes
                    log.exception("flushing a connection failed")
                    conn.abort()


class Connection:
    """One upgraded socket: reading with limits, buffered locked writes, close codes."""

    __slots__ = ("sock", "raw", "reader", "flusher", "max_queue", "write_timeout", "_out",
                 "_dirty", "_writer", "closing", "closed", "last_seen", "created",
                 "peer_close_code", "close_sent", "last_ping", "on_closing", "__weakref__")

    def __init__(self, sock, pending, flusher, max_bytes, max_fragments, max_queue,
                 write_timeout):
        self.sock = sock
        self.raw = sock._sock  # the non-blocking stdlib socket under gevent's
        self.reader = FrameReader(sock, pending, max_bytes, max_fragments)
        self.flusher = flusher
        self.max_queue = max_queue
        self.write_timeout = write_timeout
        self._out = []
        self._dirty = False
        self._writer = None
        self.closing = False
        self.closed = False
        self.created = self.last_seen = self.last_ping = time.monotonic()
        self.peer_close_code = None
        self.close_sent = None  # the code of our close frame, for metrics
        self.on_closing = None  # called once our close frame is queued (ws.Sweeper's deadline)

    # -- writing --------------------------------------------------------------
    def send(self, frame):
        """Queue one encoded frame; never blocks. False once the connection is going."""
        if self.closing:
            return False
        if len(self._out) >= self.max_queue:
            self._cut_off()
            return False
        self._out.append(frame)
        if not self._dirty and self._writer is None:
            self._dirty = True
            self.flusher.mark(self)
        return True

    def close(self, code, reason=""):
        """Send a close frame after what is queued; the reader then sees the peer's reply."""
        if self.closing:
            return
        self._out.append(close_frame(code, reason))
        self._closing(code)

    def _closing(self, code):
        self.closing = True
        self.close_sent = code
        if not self._dirty and self._writer is None:
            self._dirty = True
            self.flusher.mark(self)
        if self.on_closing is not None:
            self.on_closing()

    def abort(self):
        """Drop the TCP connection now; the reader wakes with EOF and cleans up."""
        self.closing = True
        self._out.clear()
        self._shutdown(socket.SHUT_RDWR)

    def wait_drained(self):
        """Block this greenlet until the socket took everything queued.

        It waits on the writer greenlet, not by polling: thousands of
        connections replaying history to slow readers after a restart, each
        waking every few milliseconds to look, took more of the core than
        the replays themselves (bench/storm.py --profile).
        """
        while not self.closing:
            if self._writer is not None:
                self._writer.join()
            elif self._out:
                self._flush_now()  # what waits for the Flusher leaves now (or gets a writer)
            else:
                return

    def _cut_off(self):
        # The peer does not read. Replace what waits with a 1013 close frame so
        # a peer that reads later learns why; if even that does not leave
        # within the write deadline, the writer aborts the socket.
        self._out.clear()
        self._out.append(close_frame(CLOSE_TRY_LATER, "too slow to read"))
        self._closing(CLOSE_TRY_LATER)

    def _take(self):
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        return data

    def _flush_now(self):
        self._dirty = False
        if self._writer is not None or not self._out or self.closed:
            return
        data = self._take()
        try:
            sent = self.raw.send(data)
        except BlockingIOError:
            sent = 0
        except SOCKET_GONE:
            self.abort()
            return
        if sent < len(data):
            self._writer = gevent.spawn(self._write_rest, data[sent:])
        elif self.closing:
            self._shutdown(socket.SHUT_WR)

    def _write_rest(self, data):
        try:
            while data:
                with gevent.Timeout(self.write_timeout):
                    self.sock.sendall(data)
                data = self._take() if self._out else b""
            if self.closing:
                self._shutdown(socket.SHUT_WR)
        except (gevent.Timeout,) + SOCKET_GONE:
            self.abort()
        finally:
            self._writer = None

    def _shutdown(self, how):
        try:
            self.sock.shutdown(how)
        except OSError:
            pass

    # -- reading --------------------------------------------------------------
    @property
    def unfinished(self):
        """Whether the peer is in the middle of a fragmented message."""
        return self.reader.assembler.partial is not None

    def next_message(self):
        """The next data message as (opcode, payload), or None once the connection ends.

        Once our close frame is queued (a protocol error, a cut-off, a session
        ended) nothing more is handled: only the peer's close is awaited, briefly,
        so a peer that keeps sending cannot keep the connection.
        """
        try:
            if not self.closing:
                opcode, payload = self.reader.message(self._on_control)
                self.last_seen = time.monotonic()
                return opcode, payload
        except CloseConnection as exc:
            self.close(exc.code, exc.reason)
        except Draining:
            pass
        except (PeerClosed,) + SOCKET_GONE:
            return None
        self._drain()
        return None

    def _on_control(self, opcode, payload):
        if self.closing and opcode != OP_CLOSE:
            raise Draining()
        if not self.unfinished:
            # Control frames inside an unfinished message are no sign of life:
            # pings alone must not keep a never-finished message (see ws.Sweeper).
            self.last_seen = time.monotonic()
        if opcode == OP_PING:
            self.send(encode_frame(payload, OP_PONG))
        elif opcode == OP_CLOSE:
            self.peer_close_code = peer_close_code(payload)
            self.close(self.peer_close_code)
            raise PeerClosed()

    def _drain(self, timeout=2.0):
        """After our close frame: read until the peer's close or EOF, briefly."""
        try:
            with gevent.Timeout(timeout, False):
                while True:
                    self.reader.frame()
        except (CloseConnection, PeerClosed) + SOCKET_GONE:
            pass

    def finish(self):
        """The reader is done: give queued frames a moment, then close the socket."""
        if self._writer is not None:
            self._writer.join(timeout=self.write_timeout)
        elif self._out and not self.closed:
            self._flush_now()
        self.closed = True
        self.closing = True
