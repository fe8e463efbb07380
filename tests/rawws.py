"""A hand-made WebSocket client: the tests write every byte of every frame.

websocket-client refuses to send broken frames; abuse tests need exactly
the broken ones (unmasked, reserved bits, lying length headers...).
"""
import base64
import json
import os
import socket
import struct
import threading
import time

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(payload=b"", opcode=OP_TEXT, fin=True, masked=True, rsv=0, length=None):
    """One client frame; `length` may lie about the payload that follows."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(event):
    return frame(json.dumps(event))


def http_head(sock, deadline):
    """Read an HTTP response head: (status, headers dict, bytes read past it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a response: %r" % data)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, rest


class RawSocket:
    """A TCP connection that upgrades to /chat with whatever headers the test gives."""

    def __init__(self, server, token=None, headers=(), rcvbuf=None, timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # before connect, so the window is small from the start
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET /chat%s HTTP/1.1" % ("?token=" + token if token else ""),
                 "Host: 127.0.0.1:%d" % server.port, "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key,
                 "Sec-WebSocket-Version: 13"] + list(headers)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + timeout
        self.status, self.headers, self.buffer = http_head(self.sock, deadline)
        self.body = b""
        if self.status != 101:  # a refusal: plain HTTP with a body
            self.body = self._exactly(int(self.headers.get("content-length", 0)), deadline)

    def send(self, data):
        self.sock.sendall(data)

    def send_event(self, **event):
        self.sock.sendall(text(event))

    def _exactly(self, n, deadline):
        while len(self.buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the server in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the TCP connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def recv_frame(self, timeout=10):
        """(opcode, payload) of the next server frame."""
        deadline = time.monotonic() + timeout
        b1, b2 = self._exactly(2, deadline)
        assert b2 & 0x80 == 0, "server frames must not be masked"
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._exactly(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._exactly(8, deadline))[0]
        return b1 & 0x0F, self._exactly(n, deadline)

    def recv(self, timeout=10):
        """The next JSON event, skipping pings; a close frame raises Closing."""
        deadline = time.monotonic() + timeout
        while True:
            opcode, payload = self.recv_frame(max(0.01, deadline - time.monotonic()))
            if opcode == OP_TEXT:
                return json.loads(payload)
            if opcode == OP_CLOSE:
                raise Closing(payload)

    def until_close(self, timeout=10):
        """Read to the server's close frame: (close code, events seen before it)."""
        deadline = time.monotonic() + timeout
        events = []
        while True:
            try:
                events.append(self.recv(max(0.01, deadline - time.monotonic())))
            except Closing as closing:
                return closing.code, events

    def expect(self, action, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            event = self.recv(max(0.01, deadline - time.monotonic()))
            if event.get("action") == action:
                return event

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Closing(Exception):
    def __init__(self, payload):
        super().__init__(payload)
        self.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        self.reason = payload[2:].decode("utf-8", "replace")


def memory_kib(pid, field="VmHWM"):
    """A figure from /proc/PID/status in KiB: VmHWM is the peak resident size."""
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class Flood:
    """One connection writing `blob` over and over from its own thread, as fast
    as loopback takes it; a second thread reads and drops what the server
    answers unless `read` is False (a peer that never reads)."""

    def __init__(self, server, token, blob, setup=(), read=True, rcvbuf=None):
        self.raw = RawSocket(server, token, rcvbuf=rcvbuf)
        for event in setup:  # e.g. a join, answered before the flood starts
            self.raw.send_event(**event)
            self.raw.recv()
        self.blob = blob
        self.sent = 0
        self.error = None
        self._stop = False
        self._threads = [threading.Thread(target=self._write, daemon=True)]
        if read:
            self._threads.append(threading.Thread(target=self._read, daemon=True))
        for thread in self._threads:
            thread.start()

    def _write(self):
        sock = self.raw.sock
        sock.settimeout(None)
        blob = memoryview(self.blob)
        try:
            while not self._stop:
                offset = 0
                while offset < len(blob):  # counted as the server takes them
                    n = sock.send(blob[offset:])
                    offset += n
                    self.sent += n
        except OSError as exc:
            self.error = exc

    def _read(self):
        sock = self.raw.sock
        try:
            while not self._stop and sock.recv(1 << 16):
                pass
        except OSError:
            pass

    @property
    def running(self):
        return self._threads[0].is_alive()

    def stop(self):
        self._stop = True
        try:
            self.raw.sock.shutdown(socket.SHUT_RDWR)  # wakes the threads; close alone would not
        except OSError:
            pass
        for thread in self._threads:
            thread.join(5)
        self.raw.close()
