"""A minimal raw-socket WebSocket client for the benchmarks, plus chatd's login flow.

No library sits on the receive path: the load generator reads large buffers
and walks frame headers itself, because a per-message client library cannot
take 200,000 messages/s on one core in Python. Server frames are unmasked, so
a frame is a 2/4/10-byte header and the payload, nothing to decode.
"""
import base64
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def mask_frame(opcode, payload):
    """Encode one client frame (FIN set, masked as RFC 6455 requires of clients)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    # XOR as one big integer: one C operation instead of a loop over bytes.
    keys = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")
    return header + key + masked


def text_frame(obj):
    return mask_frame(OP_TEXT, json.dumps(obj, separators=(",", ":")).encode())


def split_frames(data, n=None):
    """Walk the frames in data[:n] (bytes from a server; n defaults to all).

    Returns (end, control): end is the offset just past the last complete
    frame (the rest is kept for the next read); control lists
    (opcode, bytes payload) of the ping/pong/close frames among them.
    """
    i = 0
    if n is None:
        n = len(data)
    control = None
    while i + 2 <= n:
        length = data[i + 1] & 0x7F
        head = 2
        if length == 126:
            if i + 4 > n:
                break
            length = (data[i + 2] << 8) | data[i + 3]
            head = 4
        elif length == 127:
            if i + 10 > n:
                break
            length = int.from_bytes(data[i + 2:i + 10], "big")
            head = 10
        if i + head + length > n:
            break
        if data[i] & 0x08:   # opcodes 8..15 are control frames
            if control is None:
                control = []
            control.append((data[i] & 0x0F, bytes(data[i + head:i + head + length])))
        i += head + length
    return i, control


def payloads(data, end):
    """(payload, offset after it) of each complete frame in data[:end]; setup path only."""
    out, i = [], 0
    while i < end:
        length, head = data[i + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(data[i + 2:i + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[i + 2:i + 10], "big"), 10
        i += head + length
        out.append((data[i - length:i], i))
    return out


class Conn:
    """One client connection: the socket and the bytes of a partial frame."""
    __slots__ = ("sock", "buf", "room", "out", "closed")

    def __init__(self, sock, buf=b"", room=None):
        self.sock, self.buf, self.room, self.out, self.closed = sock, buf, room, b"", False


def upgrade_request(host, port, path):
    """The opening handshake's request, with a key of its own."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode()


def connect(host, port, path="/chat", timeout=10.0):
    """Open a socket and do the opening handshake; returns a blocking Conn."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(upgrade_request(host, port, path))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("handshake refused: " + head.split(b"\r\n")[0].decode(errors="replace"))
    return Conn(sock, rest)


def read_until(conn, predicate, timeout=10.0):
    """Read events until one satisfies predicate(dict); keeps later bytes in conn.buf."""
    deadline = time.monotonic() + timeout
    while True:
        end, _ = split_frames(conn.buf)
        for payload, after in payloads(conn.buf, end):
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, dict) and predicate(event):
                conn.buf = conn.buf[after:]   # later events are the main loop's
                return event
        if time.monotonic() > deadline:
            raise TimeoutError("no matching event")
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = conn.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        conn.buf += chunk


def join(conn, room_id, timeout=10.0):
    """Send join and wait for joined (an error event raises)."""
    conn.sock.sendall(text_frame({"action": "join", "roomId": room_id}))
    event = read_until(conn, lambda e: e.get("action") in ("joined", "error"), timeout)
    if event["action"] == "error":
        raise ConnectionError(f"join {room_id}: {event}")
    conn.room = room_id


# --- chatd's HTTP API -------------------------------------------------------

def api(base, path, body=None, token=None, retries=20):
    """POST (or GET without body) a JSON request; returns (status, json). Waits out 429s."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    for _ in range(retries):
        req = urllib.request.Request(base + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code == 429:
                time.sleep(float(e.headers.get("Retry-After") or 1))
                continue
            return e.code, json.loads(e.read() or b"null")
    raise RuntimeError(f"{path}: still rate limited after {retries} tries")


def login_user(base, username, password):
    """Register (an existing user is fine) and log in; returns the token."""
    status, body = api(base, "/api/register", {"username": username, "password": password})
    if status not in (200, 201, 409):
        raise RuntimeError(f"register {username}: {status} {body}")
    status, body = api(base, "/api/login", {"username": username, "password": password})
    if status != 200:
        raise RuntimeError(f"login {username}: {status} {body}")
    return body["token"]


def create_room(base, token, name):
    status, body = api(base, "/api/create-room", {"roomName": name}, token)
    if status != 201:
        raise RuntimeError(f"create-room {name}: {status} {body}")
    return body["roomId"]


def chat_path(token):
    return "/chat" if token is None else "/chat?token=" + urllib.parse.quote(token)
