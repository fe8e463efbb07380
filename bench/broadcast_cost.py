"""What one broadcast costs per member, in process: chatd's path against bare sends.

Opens N loopback TCP pairs in this process, wraps the server ends in chatd's
Connection and Session as the server does, and times, round after round on
the same sockets: a bare `send` of the frame to every socket, then the hub's
fan-out (Session.push, Connection.send, the Flusher's write). The
difference is what chatd's Python adds per member to the kernel's own cost
(issue 18's 10,000-member room). Nobody reads the client ends: a few rounds
of small frames fit in their buffers.

    .venv/bin/python bench/broadcast_cost.py --n 9000      # chatd's venv: it imports chatd
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from chatd import hub, ws, wsconn  # noqa: E402

FRAME = hub.encode({"action": "new-message", "roomId": "room_1", "id": 12345, "seq": 1,
                    "username": "alice", "message": "x" * 100,
                    "timestamp": "2026-12-01T00:00:00.000Z"})


def pairs(n):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    clients, servers = [], []
    for _ in range(n):
        clients.append(socket.create_connection(listener.getsockname()))
        server, _ = listener.accept()
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        servers.append(server)
    return clients, servers


def drain(clients):
    for c in clients:
        c.setblocking(False)
        try:
            while c.recv(65536):
                pass
        except BlockingIOError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=9000, help="members (two descriptors each)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--core", type=int, default=0)
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.sched_setaffinity(0, {args.core})
    clients, servers = pairs(args.n)
    flusher = wsconn.Flusher()
    flusher.start()
    room = hub.RoomLive(1, 0)
    for s in servers:
        session = ws.Session(None, wsconn.Connection(s, b"", flusher, 1 << 20, 16, 1000, 10))
        session.rooms[1] = ws.RoomCursor()
        session.rooms[1].stash = None
        room.sessions.add(session)
    fan_out = hub.Hub(None, None, None)._fan_out
    raws = [s._sock for s in servers]
    print(f"{args.n} members, frame {len(FRAME)} bytes, core {args.core}; microseconds per member")
    print(f"{'round':>5} {'bare send':>10} {'chatd':>8} {'of which queueing':>18}")
    for rnd in range(args.rounds):
        drain(clients)
        t = time.perf_counter()
        for r in raws:
            r.send(FRAME)
        bare = time.perf_counter() - t
        drain(clients)
        t = time.perf_counter()
        fan_out(room, rnd + 1, FRAME)
        queued = time.perf_counter() - t
        while flusher._dirty:  # emptied when the flusher starts; it writes all before yielding
            gevent.sleep(0)
        whole = time.perf_counter() - t
        print(f"{rnd:>5} {bare / args.n * 1e6:>10.2f} {whole / args.n * 1e6:>8.2f} "
              f"{queued / args.n * 1e6:>18.2f}")


if __name__ == "__main__":
    main()
