"""Resident memory per idle WebSocket connection joined to a room (issue 8).

Starts each target (pinned to core 0, as run_fanout.py does), reads its
VmRSS, opens N connections that each join a room (authenticated for chatd),
reads VmRSS again and reports (after - before) / N.

    bench/.venv/bin/python bench/rss_idle.py                     # gevent, websockets, chatd
    bench/.venv/bin/python bench/rss_idle.py --targets chatd --n 10000
    bench/.venv/bin/python bench/rss_idle.py --url ws://127.0.0.1:8080 --pid 1234 --target-mode chatd

For chatd the N connections belong to --users users (registering 10,000
users would take minutes of password hashing): connection i is user i % K's
and joins user i % K's room, so each room holds one user's connections.
"""
import argparse
import os
import resource
import select
import sys
import tempfile
import time
import urllib.parse

from run_fanout import server_command, start_server, stop_server
from wsclient import (OP_PING, OP_PONG, chat_path, connect, create_room, join,
                      login_user, mask_frame, split_frames)

PASSWORD = "bench-password-1"


def raise_nofile(n):
    """Room for n client sockets here and n server sockets in the child we start."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 1024
    if soft < want:
        new_hard = max(hard, want) if hard != resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), new_hard))


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def prepare(base, mode, users, run_id):
    """Tokens and room ids for each user (chatd); plain peers need neither."""
    if mode == "plain":
        return [None] * users, [f"room_{k + 1}" for k in range(users)]
    tokens = [login_user(base, f"r{run_id}_{k}", PASSWORD) for k in range(users)]
    rooms = [create_room(base, tokens[k], f"rss {run_id} room {k}") for k in range(users)]
    return tokens, rooms


def open_idle(host, port, n, tokens, rooms):
    conns = []
    for i in range(n):
        k = i % len(tokens)
        conn = connect(host, port, chat_path(tokens[k]))
        join(conn, rooms[k])
        conns.append(conn)
        if i % 500 == 499:
            answer_pings(conns)
    return conns


def answer_pings(conns):
    """Read whatever the server sent and answer its pings, so that a server
    with a keepalive (websockets: 20 s) does not drop our idle connections."""
    ready = {c.sock.fileno(): c for c in conns}
    ep = select.epoll()
    for fd in ready:
        ep.register(fd, select.EPOLLIN)
    for fd, _ in ep.poll(0, len(ready)):
        c = ready[fd]
        c.sock.setblocking(False)
        try:
            c.buf += c.sock.recv(65536)
        except (BlockingIOError, OSError):
            pass
        end, control = split_frames(c.buf)
        c.buf = c.buf[end:]
        for opcode, payload in control or ():
            if opcode == OP_PING:
                c.sock.setblocking(True)
                c.sock.sendall(mask_frame(OP_PONG, payload))
    ep.close()


def measure(url, mode, pid, args):
    u = urllib.parse.urlsplit(url)
    tokens, rooms = prepare(f"http://{u.hostname}:{u.port}", mode, args.users, args.run_id)
    time.sleep(1)
    before = vm_rss_kib(pid)
    conns = open_idle(u.hostname, u.port, args.n, tokens, rooms)
    time.sleep(args.settle)
    answer_pings(conns)
    after = vm_rss_kib(pid)
    for c in conns:
        c.sock.close()
    return before, after


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="idle connections")
    ap.add_argument("--targets", default="gevent,websockets,chatd")
    ap.add_argument("--url", help="measure a server already running at ws://HOST:PORT ...")
    ap.add_argument("--pid", type=int, help="... whose process id is this")
    ap.add_argument("--target-mode", choices=("chatd", "plain"), default="chatd",
                    help="with --url: authenticate (chatd) or not (plain)")
    ap.add_argument("--users", type=int, default=100, help="users (and rooms) the connections share")
    ap.add_argument("--settle", type=float, default=2.0, help="seconds before the second reading")
    ap.add_argument("--run-id", default=str(int(time.time()) % 1000000))
    args = ap.parse_args()
    raise_nofile(args.n)

    if args.url:
        before, after = measure(args.url, args.target_mode, args.pid, args)
        report(args.url, before, after, args.n)
        return
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmpdir:
        for target in args.targets.split(","):
            cmd = server_command(target, tmpdir)
            if cmd is None:
                print(f"{target}: skipped (chatd is not importable)")
                continue
            argv, env, mode = cmd
            # every connection comes from 127.0.0.1: no per-address cap (256)
            env = {**env, "CHATD_SERVER_MAX_CONNECTIONS": str(args.n + 1000),
                   "CHATD_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
            proc, (host, port) = start_server(argv, env, os.path.join(tmpdir, f"{target}.log"), 0)
            try:
                before, after = measure(f"ws://{host}:{port}", mode, proc.pid, args)
            finally:
                stop_server(proc)
            report(target, before, after, args.n)


def report(name, before, after, n):
    print(f"{name:<11} {n} idle connections: VmRSS {before} -> {after} KiB, "
          f"{(after - before) / n:.1f} KiB per connection", flush=True)


if __name__ == "__main__":
    sys.exit(main())
