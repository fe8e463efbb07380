"""Our one wrapper of gevent-websocket (see shared/GEVENT-WEBSOCKET.md).

The library does the HTTP upgrade; everything after the 101 is here:
frames are read with limits checked from the header before any payload is
read, close frames carry their code, and all writes to a socket go through
one outgoing buffer so frames never interleave.

Writes: `Connection.send(frame)` only appends to the connection's buffer and
marks it dirty; one flusher greenlet per process writes each dirty buffer
with a single non-blocking send (so every frame queued for a socket in one
loop turn leaves in one syscall). What the kernel will not take at once is
finished by a writer greenlet of that connection under a write deadline. A
buffer past its bound means the peer does not read: it is cut off.
"""
import base64
import logging
import binascii
import socket
import struct
import time
import json
from http import HTTPStatus

import gevent
import gevent.event
from gevent.pywsgi import MAX_REQUEST_LINE
from geventwebsocket.handler import WebSocketHandler

from . import errors, logsafe

log = logging.getLogger("chatd.wsproto")

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL = 1000, 1001, 1002
CLOSE_UNSUPPORTED, CLOSE_BAD_DATA, CLOSE_POLICY = 1003, 1007, 1008
CLOSE_TOO_BIG, CLOSE_TRY_LATER = 1009, 1013

# Peers vanish; these are expected, not errors.
SOCKET_GONE = (ConnectionError, BrokenPipeError, socket.timeout, OSError)


class CloseConnection(Exception):
    """The peer broke the protocol: close with this code."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PeerClosed(Exception):
    """The peer sent a close frame or the TCP stream ended."""


class Draining(Exception):
    """Our close frame went out while a message was being read: stop handling frames."""


def encode_frame(payload, opcode=OP_TEXT):
    """A whole unmasked server frame; the same bytes are valid on every socket."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def close_frame(code, reason=""):
    return encode_frame(struct.pack("!H", code) + reason.encode("utf-8")[:120], OP_CLOSE)


PING_FRAME = encode_frame(b"", OP_PING)


def unmask(data, mask):
    """XOR with the 4-byte mask, done on one big integer instead of per byte."""
    n = len(data)
    if not n:
        return data
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


def _valid_close_code(code):
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) \
        or 3000 <= code <= 4999


# Fairness: gevent's recv only switches when the socket would block, so a
# peer that keeps its socket full would keep the hub forever. The reader
# yields after this much work: frames, plus one per 4 KiB of payload.
WORK_PER_TURN = 32


class FrameReader:
    """Reads whole messages from a socket with a size cap.

    It reads the socket itself into a buffer that exists only while bytes
    wait: an idle connection holds no read buffer (io.BufferedReader would
    keep 8 KiB per connection). A fragmented message is joined as it comes,
    into one buffer, so an unfinished one costs its bytes, not its frames.
    """

    __slots__ = ("_recv", "_buf", "max_bytes", "max_fragments", "_work",
                 "partial", "_opcode", "_fragments")

    def __init__(self, sock, pending, max_bytes, max_fragments):
        self._recv = sock.recv
        self._buf = pending
        self.max_bytes = max_bytes
        self.max_fragments = max_fragments
        self._work = 0
        self.partial = None  # the unfinished message's bytes so far
        self._opcode = None
        self._fragments = 0

    def _exactly(self, n):
        buf = self._buf
        while len(buf) < n:
            chunk = self._recv(max(n - len(buf), 4096))
            if not chunk:
                raise PeerClosed()
            buf += chunk
        self._buf = buf[n:]
        return buf[:n]

    def _pace(self, length):
        self._work += 1 + (length >> 12)
        if self._work >= WORK_PER_TURN:
            self._work = 0
            gevent.sleep(0)

    def frame(self):
        """One frame: (fin, opcode, payload). Limits are checked from the header."""
        b1, b2 = self._exactly(2)
        fin, rsv, opcode = b1 & 0x80, b1 & 0x70, b1 & 0x0F
        masked, length = b2 & 0x80, b2 & 0x7F
        if rsv:
            raise CloseConnection(CLOSE_PROTOCOL, "reserved bits set")
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            raise CloseConnection(CLOSE_PROTOCOL, "unknown opcode")
        if not masked:
            raise CloseConnection(CLOSE_PROTOCOL, "client frames must be masked")
        if opcode >= OP_CLOSE and (not fin or length > 125):
            raise CloseConnection(CLOSE_PROTOCOL, "bad control frame")
        if length == 126:
            length = struct.unpack("!H", self._exactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exactly(8))[0]
        if length > self.max_bytes:
            raise CloseConnection(CLOSE_TOO_BIG, "frame too large")
        mask = self._exactly(4)
        payload = unmask(self._exactly(length), mask)
        self._pace(length)
        return fin, opcode, payload

    def message(self, on_control):
        """The next data message as (opcode, payload); control frames go to on_control."""
        while True:
            fin, opcode, payload = self.frame()
            if opcode >= OP_CLOSE:
                on_control(opcode, payload)
            elif self.partial is None:
                if opcode == OP_CONT:
                    raise CloseConnection(CLOSE_PROTOCOL, "continuation without a start")
                if fin:
                    return opcode, _checked(opcode, payload)
                self.partial, self._opcode, self._fragments = bytearray(payload), opcode, 1
            elif opcode != OP_CONT:
                raise CloseConnection(CLOSE_PROTOCOL, "expected a continuation frame")
            else:
                self._add(payload)
                if fin:
                    data, self.partial = bytes(self.partial), None
                    return self._opcode, _checked(self._opcode, data)

    def _add(self, payload):
        self._fragments += 1
        if self._fragments > self.max_fragments:
            raise CloseConnection(CLOSE_TOO_BIG, "too many fragments")
        if len(self.partial) + len(payload) > self.max_bytes:
            raise CloseConnection(CLOSE_TOO_BIG, "message too large")
        self.partial += payload


def _checked(opcode, data):
    if opcode == OP_TEXT:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise CloseConnection(CLOSE_BAD_DATA, "invalid UTF-8")
    return data


class Flusher:
    """The one greenlet that writes every dirty connection's buffer."""

    def __init__(self):
        self._dirty = []
        self._wake = gevent.event.Event()
        self._greenlet = gevent.spawn(self._run)

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


_flusher = None


def flusher():
    global _flusher
    if _flusher is None:
        _flusher = Flusher()
    return _flusher


class Connection:
    """One upgraded socket: reading with limits, buffered locked writes, close codes."""

    __slots__ = ("sock", "raw", "reader", "max_queue", "write_timeout", "_out",
                 "_dirty", "_writer", "closing", "closed", "last_seen", "created",
                 "peer_close_code", "close_sent", "last_ping", "__weakref__")

    def __init__(self, sock, pending, max_bytes, max_fragments, max_queue, write_timeout):
        self.sock = sock
        self.raw = sock._sock  # the non-blocking stdlib socket under gevent's
        self.reader = FrameReader(sock, pending, max_bytes, max_fragments)
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
            flusher().mark(self)
        return True

    def close(self, code, reason=""):
        """Send a close frame after what is queued; the reader then sees the peer's reply."""
        if self.closing:
            return
        self._out.append(close_frame(code, reason))
        self.closing = True
        self.close_sent = code
        if not self._dirty and self._writer is None:
            self._dirty = True
            flusher().mark(self)

    def abort(self):
        """Drop the TCP connection now; the reader wakes with EOF and cleans up."""
        self.closing = True
        self._out.clear()
        self._shutdown(socket.SHUT_RDWR)

    def wait_drained(self):
        """Block this greenlet until the socket took everything queued."""
        while (self._out or self._writer is not None) and not self.closing:
            gevent.sleep(0.005)

    def _cut_off(self):
        # The peer does not read. Replace what waits with a 1013 close frame so
        # a peer that reads later learns why; if even that does not leave
        # within the write deadline, the writer aborts the socket.
        self._out.clear()
        self._out.append(close_frame(CLOSE_TRY_LATER, "too slow to read"))
        self.closing = True
        self.close_sent = CLOSE_TRY_LATER
        if self._writer is None and not self._dirty:
            self._dirty = True
            flusher().mark(self)

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
        return self.reader.partial is not None

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
            code = CLOSE_NORMAL
            if len(payload) >= 2:
                code = struct.unpack("!H", payload[:2])[0]
                try:
                    payload[2:].decode("utf-8")
                except UnicodeDecodeError:
                    raise CloseConnection(CLOSE_BAD_DATA, "invalid UTF-8 in close reason")
                if not _valid_close_code(code):
                    raise CloseConnection(CLOSE_PROTOCOL, "invalid close code")
            elif len(payload) == 1:
                raise CloseConnection(CLOSE_PROTOCOL, "bad close payload")
            self.peer_close_code = code
            self.close(code if len(payload) >= 2 else CLOSE_NORMAL)
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


class HeadTimeout(Exception):
    """The request line and headers did not all arrive within the server's header_timeout."""


# On every answer, the application's and pywsgi's own alike.
SECURITY_HEADERS = [("X-Content-Type-Options", "nosniff")]

# What pywsgi answers with an empty text body, as ours: status -> error.
_HEAD_ERRORS = {
    "400": lambda: errors.BadRequest("The request line or headers are not valid HTTP."),
    "408": lambda: errors.RequestTimeout("The request headers did not arrive in time."),
    "414": lambda: errors.URITooLong("The request line is over %d bytes." % MAX_REQUEST_LINE),
    400: lambda: errors.BadRequest("The request body is not valid HTTP framing."),
    500: lambda: errors.Internal("Internal error."),
}


def error_parts(exc):
    """(status line, headers, body) of a ChatError answered below the bottle app."""
    body = json.dumps(exc.as_dict(), separators=(",", ":")).encode("utf-8")
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    if exc.retry_after is not None:
        headers.append(("Retry-After", str(int(exc.retry_after))))
    return "%d %s" % (exc.status, HTTPStatus(exc.status).phrase), headers, body


def raw_error(exc):
    """A whole HTTP response for a connection that is then closed."""
    status, headers, body = error_parts(exc)
    head = ["HTTP/1.1 " + status] + ["%s: %s" % h for h in headers + SECURITY_HEADERS]
    return ("\r\n".join(head + ["Connection: close", "", ""])).encode("latin-1") + body


class PeerLimit:
    """Connections open per socket peer address, capped (cap 0: no cap)."""

    def __init__(self, cap, exempt, on_refuse):
        self.cap = cap
        self.exempt = exempt  # address -> bool: trusted proxies carry many clients
        self.on_refuse = on_refuse
        self.open = {}

    def enter(self, address):
        count = self.open.get(address, 0)
        if self.cap and count >= self.cap and not self.exempt(address):
            self.on_refuse(address)
            return False
        self.open[address] = count + 1
        return True

    def leave(self, address):
        count = self.open.pop(address) - 1
        if count:
            self.open[address] = count


class Handler(WebSocketHandler):
    """gevent-websocket's handler with our gate before the 101 and bytes bodies.

    The server sets `ws_gate(environ)` -> None to accept, or a ChatError to
    refuse the upgrade with a plain HTTP answer; `header_timeout` (seconds
    for each request's line and headers) and `peer_limit` (a PeerLimit).
    """

    def handle(self):
        # pywsgi writes a response's headers and body in two sends: with
        # Nagle's algorithm the second waits for the client's delayed ACK,
        # 40 ms on every keep-alive request. WebSockets coalesce themselves.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = self.client_address[0] if isinstance(self.client_address, tuple) else ""
        limit = self.server.peer_limit
        if not limit.enter(peer):
            self._refuse_connection()
            return
        try:
            super().handle()
        finally:
            limit.leave(peer)

    def _refuse_connection(self):
        sock = self.socket
        try:
            sock.sendall(raw_error(errors.Unavailable(
                "Too many connections from your address.", retry_after=1)))
            # Non-blocking: the request already sent must not turn the close into a reset.
            sock._sock.recv(16384)
        except OSError:
            pass
        finally:
            sock.close()

    def handle_one_request(self):
        # pywsgi has no deadline for a request's head: without one, sockets
        # that never finish their request line would hold every slot.
        self._head_deadline = gevent.Timeout.start_new(self.server.header_timeout, HeadTimeout())
        try:
            result = super().handle_one_request()
        except HeadTimeout:
            return None  # no request line in time (or an idle keep-alive): just close
        finally:
            self._head_deadline.close()
        if isinstance(result, tuple):  # pywsgi refused the head: answer in our JSON
            error = _HEAD_ERRORS[result[0]]()
            self._log_refused_head(result[0], error)
            return result[0], raw_error(error)
        return result

    def _log_refused_head(self, status, error):
        """A line like http_api's (no request id: the app never saw it)."""
        words = (self.requestline or "").split()
        path, _, query = (words[1] if len(words) > 1 else "").partition("?")
        log.info("- %s %s %s %s %s", logsafe.text(self.client_address[0]),
                 logsafe.text(words[0] if words else "", 16), logsafe.target(path, query),
                 status, error.message)

    def handle_one_response(self):
        self._head_deadline.close()  # the head is in; the deadline was for it alone
        super().handle_one_response()

    def _handle_client_error(self, ex):
        return ("408" if isinstance(ex, HeadTimeout) else "400"), b""

    def _send_error_response_if_possible(self, error_code):
        if self.response_length:
            self.close_connection = True
            return
        status, headers, body = error_parts(_HEAD_ERRORS[error_code]())
        try:
            self.start_response(status, headers + [("Connection", "close")])
            self.write(body)
        except socket.error:
            self.close_connection = True

    def start_response(self, status, headers, exc_info=None):
        return super().start_response(status, list(headers) + SECURITY_HEADERS, exc_info)

    def upgrade_websocket(self):
        env = self.environ
        if env.get("REQUEST_METHOD") != "GET" or \
                env.get("HTTP_UPGRADE", "").lower() != "websocket":
            return None
        refusal = self._refuse()
        if refusal:
            status, headers, body = error_parts(refusal)
            self.start_response(status, headers + [("Sec-WebSocket-Version", "13")])
            return [body]
        result = super().upgrade_websocket()
        return [part.encode() if isinstance(part, str) else part for part in result or []] or None

    def _refuse(self):
        """The library answers these in plain text: check them first, then the server's gate."""
        env = self.environ
        if self.request_version != "HTTP/1.1":
            return errors.BadRequest("A WebSocket upgrade needs HTTP/1.1.")
        if env.get("HTTP_SEC_WEBSOCKET_VERSION") not in self.SUPPORTED_VERSIONS:
            return errors.BadRequest("Use WebSocket version 13.")
        key = env.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError()
        except (binascii.Error, ValueError):
            return errors.BadRequest("Invalid Sec-WebSocket-Key.")
        gate = getattr(self.server, "ws_gate", None)
        return gate(env) if gate else None

    def run_websocket(self):
        # Straight to our session (server.ws_app), not through the WSGI app:
        # every idle connection keeps this greenlet's stack, so it is kept
        # shallow. The library must not send its code-less close frame after.
        try:
            self.server.ws_app(self)
        finally:
            self.close_connection = True
            self.websocket = None
            self.environ["wsgi.websocket"] = None

    def run_application(self):
        super().run_application()
        # pywsgi would read the rest of an oversized body to keep the
        # connection alive: forever for an endless chunked one. After broken
        # chunked framing it cannot find the next request either. Hang up.
        if self.code == 413 or getattr(self.wsgi_input, "_chunked_input_error", False):
            self.wsgi_input = _NO_INPUT
            self.close_connection = True

    def read_requestline(self):
        # A keep-alive connection waiting here has no request in flight: the
        # server may close it at once on shutdown (see close_idle).
        if self.requestline is not None and self.server.closed:
            return None  # shutting down: the request just answered was the last
        idle = self.server.__dict__.setdefault("idle_handlers", set())
        idle.add(self)
        try:
            return super().read_requestline()
        finally:
            idle.discard(self)

    def log_request(self):
        pass  # http_api logs every request itself, with its request id


def close_idle(server):
    """Shut the keep-alive connections that wait between requests."""
    for handler in tuple(getattr(server, "idle_handlers", ())):
        try:
            handler.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _NoInput:
    """What pywsgi finds as the request body once our Connection owns the socket."""

    def _discard(self):
        pass


_NO_INPUT = _NoInput()


def take_over(handler, max_bytes, max_fragments, max_queue, write_timeout, send_buffer=0):
    """Turn the library's upgraded socket into our Connection.

    Bytes the client sent right after its handshake may already sit in
    pywsgi's buffered reader: they are taken over, and the reader (with its
    8 KiB buffer) and the library's WebSocket object are let go.
    """
    sock = handler.socket
    if send_buffer:
        # Loopback and LAN sockets autotune up to megabytes: a reader that
        # stops would otherwise hold that much before its queue even fills.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    sock.settimeout(0.0)  # peek must not wait for bytes that are not there
    try:
        pending = handler.rfile.peek(1 << 16)
    except (BlockingIOError, OSError):
        pending = b""
    finally:
        sock.settimeout(None)
    if pending:
        handler.rfile.read(len(pending))
    lib_ws = handler.websocket
    lib_ws.closed = True  # stops the library's own close frame at the end
    lib_ws.stream = lib_ws.raw_read = lib_ws.raw_write = None
    handler.rfile = None
    handler.wsgi_input = _NO_INPUT  # pywsgi discards leftover input after the route
    handler.environ["wsgi.input"] = None
    return Connection(sock, bytes(pending), max_bytes, max_fragments, max_queue, write_timeout)
