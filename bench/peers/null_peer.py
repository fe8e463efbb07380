"""A fan-out peer that does as little as possible: it measures the load generator.

Same protocol subset as the reference peers, but nothing is stored, each
event is framed once per broadcast, and the frames queued for one socket in
one loop turn go out in one send() (TCP_NODELAY set). Raw epoll, no library.
Its capacity is an upper bound for the load generator to reach: if loadgen.py
reports less than some target against it, the load generator is the limit.

    python bench/peers/null_peer.py --port 0
"""
import argparse
import base64
import hashlib
import itertools
import json
import select
import socket

from store import announce, now_rfc3339

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Client:
    __slots__ = ("sock", "inbuf", "out", "upgraded", "user", "rooms")

    def __init__(self, sock, user):
        self.sock, self.inbuf, self.out = sock, b"", bytearray()
        self.upgraded, self.user, self.rooms = False, user, set()


def server_frame(payload, opcode=0x1):
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


def client_frames(data):
    """Yield (opcode, unmasked payload) of complete client frames; returns the rest."""
    frames, i, n = [], 0, len(data)
    while i + 2 <= n:
        length, head = data[i + 1] & 0x7F, 2
        if length == 126:
            length, head = int.from_bytes(data[i + 2:i + 4], "big"), 4
        elif length == 127:
            length, head = int.from_bytes(data[i + 2:i + 10], "big"), 10
        if i + head + 4 + length > n:
            break
        key = data[i + head:i + head + 4]
        body = data[i + head + 4:i + head + 4 + length]
        keys = (key * (length // 4 + 1))[:length]
        plain = (int.from_bytes(body, "big") ^ int.from_bytes(keys, "big")).to_bytes(length, "big")
        frames.append((data[i] & 0x0F, plain))
        i += head + 4 + length
    return frames, data[i:]


class NullPeer:
    def __init__(self, listener):
        self.listener = listener
        self.ep = select.epoll()
        self.ep.register(listener.fileno(), select.EPOLLIN)
        self.clients = {}      # fd -> Client
        self.rooms = {}        # roomId -> set of Client
        self.dirty = set()     # clients with queued output
        self.ids = itertools.count(1)
        self.users = itertools.count(1)

    def serve_forever(self):
        while True:
            for fd, ev in self.ep.poll():
                if fd == self.listener.fileno():
                    self.accept()
                elif fd in self.clients:
                    self.on_readable(self.clients[fd])
            self.flush()

    def accept(self):
        sock, _ = self.listener.accept()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.clients[sock.fileno()] = Client(sock, "user%d" % next(self.users))
        self.ep.register(sock.fileno(), select.EPOLLIN)

    def on_readable(self, c):
        try:
            data = c.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            return self.close(c)
        c.inbuf += data
        if not c.upgraded:
            return self.handshake(c)
        frames, c.inbuf = client_frames(c.inbuf)
        for opcode, payload in frames:
            if opcode == 0x1:
                self.on_message(c, json.loads(payload))
            elif opcode == 0x9:
                self.queue(c, server_frame(payload, 0xA))
            elif opcode == 0x8:
                return self.close(c)

    def handshake(self, c):
        if b"\r\n\r\n" not in c.inbuf:
            return
        head, _, c.inbuf = c.inbuf.partition(b"\r\n\r\n")
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        c.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        c.upgraded = True

    def on_message(self, c, msg):
        room_id = msg.get("roomId")
        if msg.get("action") == "join":
            self.rooms.setdefault(room_id, set()).add(c)
            c.rooms.add(room_id)
            self.queue(c, server_frame(json.dumps(
                {"action": "joined", "roomId": room_id, "message": "Welcome", "members": []}).encode()))
        elif msg.get("action") == "send-message" and room_id in c.rooms:
            event = {"action": "new-message", "roomId": room_id, "id": next(self.ids),
                     "sender": c.user, "message": msg.get("message", ""),
                     "timestamp": now_rfc3339(), "clientMsgId": msg.get("clientMsgId")}
            frame = server_frame(json.dumps(event).encode())   # framed once
            for member in self.rooms[room_id]:
                self.queue(member, frame)

    def queue(self, c, frame):
        c.out += frame
        self.dirty.add(c)

    def flush(self):
        """One send() per socket per loop turn: everything queued for it."""
        for c in self.dirty:
            try:
                n = c.sock.send(c.out)
            except BlockingIOError:
                n = 0
            except OSError:
                n = len(c.out)
            del c.out[:n]
            # A reader too slow to take it all keeps its backlog; this peer is for
            # measuring the load generator, which reads everything.
        self.dirty = {c for c in self.dirty if c.out}

    def close(self, c):
        fd = c.sock.fileno()
        self.ep.unregister(fd)
        del self.clients[fd]
        for room_id in c.rooms:
            self.rooms[room_id].discard(c)
        self.dirty.discard(c)
        c.sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8083)
    args = ap.parse_args()
    listener = socket.create_server((args.host, args.port), backlog=1024)
    announce(args.host, listener.getsockname()[1])
    try:
        NullPeer(listener).serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
