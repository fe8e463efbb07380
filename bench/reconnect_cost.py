"""chatd's CPU per reconnect, this build against an earlier one, in alternating rounds.

After a restart with 19,000 clients (storm.py) chatd's core is the limit: the
time until everyone is back is about the CPU the reconnects take. This
measures that cost alone, without the restart's noise: C clients at a time
each connect with their token (`/chat?token=`), join their room with `since`
a few messages back, read the replayed messages, and hang up; N reconnects
in all. chatd's user and system CPU over the N (from /proc/PID/stat) divided
by N is the figure. Rounds alternate between the builds, each on a fresh
SQLite database, chatd pinned to one core and the clients to the other, so
that drift on the machine falls on both.

    bench/.venv/bin/python bench/reconnect_cost.py --baseline-ref HEAD~1
"""
import argparse
import asyncio
import json
import os
import signal
import statistics
import struct
import sys
import tempfile
import urllib.parse

import pyspy
import run_compare
import run_fanout
from machine import process_cpu
from run_fanout import CHATD_ENV, CHATD_PY, REPO
from wsclient import (OP_CLOSE, chat_path, connect, create_room, join, login_user, mask_frame,
                      read_until, text_frame, upgrade_request)

PASSWORD = "reconnect-cost-password"


def setup(base, users, rooms, messages):
    """users tokens, room ids, and each room's last seq after `messages` were posted."""
    tokens = [login_user(base, "rc%d" % i, PASSWORD) for i in range(users)]
    room_ids = [create_room(base, tokens[0], "reconnect %d" % r) for r in range(rooms)]
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    last = {}
    for room in room_ids:
        conn = connect(host, int(port), chat_path(tokens[0]))
        join(conn, room)
        for i in range(messages):
            conn.sock.sendall(text_frame({"action": "send-message", "roomId": room,
                                          "message": "history %d of %s" % (i, room)}))
        event = read_until(conn, lambda e: e.get("action") == "new-message"
                           and e.get("message") == "history %d of %s" % (messages - 1, room), 60)
        last[room] = event["seq"]
        conn.sock.close()
    return tokens, room_ids, last


async def reconnect(host, port, token, room, since, expect):
    """One client's return: upgrade, join with since, read `expect` replayed messages, hang up."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(upgrade_request(host, port, chat_path(token)))
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n")[0].decode(errors="replace"))
    writer.write(mask_frame(0x1, json.dumps({"action": "join", "roomId": room, "since": since})
                            .encode()))
    seen = 0
    while seen < expect:
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        payload = await reader.readexactly(length)
        if b0 & 0x0F == 0x1 and b'"new-message"' in payload:
            seen += 1
        elif b0 & 0x0F == 0x1 and b'"error"' in payload:
            raise ConnectionError(payload.decode())
    writer.write(mask_frame(OP_CLOSE, struct.pack("!H", 1000)))
    writer.close()


async def storm(host, port, tokens, rooms, last, total, concurrency, replay):
    queue = iter(range(total))

    async def client():
        for i in queue:
            room = rooms[i % len(rooms)]
            await reconnect(host, port, tokens[i % len(tokens)], room, last[room] - replay, replay)
    await asyncio.gather(*(client() for _ in range(concurrency)))


def measure(tree, rnd, tmpdir, args):
    """(user+system CPU µs per reconnect, reconnects a second) for one build, one round."""
    name = "%s-%d" % ("current" if tree == REPO else "baseline", rnd)
    db = "sqlite:///" + os.path.join(tmpdir, name + ".db")
    env = {**CHATD_ENV, "PYTHONPATH": tree}  # logging as shipped: each close is a line
    proc, (host, port) = run_fanout.start_server(
        [CHATD_PY, "-m", "chatd", "--port", "0", "--database", db], env,
        os.path.join(tmpdir, name + ".log"), args.server_core, cwd=tree)
    try:
        tokens, rooms, last = setup("http://%s:%d" % (host, port), args.users, args.rooms,
                                    args.replay + 10)
        # a first pass warms chatd's caches (rooms, statements) as a running server has them
        asyncio.run(storm(host, port, tokens, rooms, last, args.users, args.concurrency,
                          args.replay))
        spy = pyspy.start(proc.pid, "%s.%d" % (args.profile, rnd)) \
            if args.profile and tree == REPO else None
        cpu0 = process_cpu(proc.pid)
        loop_start = os.times().elapsed
        asyncio.run(storm(host, port, tokens, rooms, last, args.reconnects, args.concurrency,
                          args.replay))
        wall = os.times().elapsed - loop_start
        cpu = process_cpu(proc.pid) - cpu0
        if spy is not None:
            pyspy.stop(spy)
    finally:
        run_fanout.stop_server(proc)
    return cpu / args.reconnects * 1e6, args.reconnects / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default="HEAD~1", help="the earlier build: any git ref")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per build, alternating")
    ap.add_argument("--reconnects", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--rooms", type=int, default=10)
    ap.add_argument("--replay", type=int, default=2, help="messages each join replays")
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument("--profile", help="py-spy raw profiles of this build's rounds: PATH.ROUND")
    args = ap.parse_args()
    os.sched_setaffinity(0, {args.client_core})
    run_compare.check_chatd_from(REPO)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    current = run_compare.describe_current()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-reconnect-") as tmpdir, \
            run_compare.baseline_tree(args.baseline_ref, tmpdir) as (old_tree, old_commit):
        run_compare.check_chatd_from(old_tree)
        if old_commit == current:
            old_commit += " (baseline)"
        builds = [(REPO, current), (old_tree, old_commit)]
        for rnd in range(args.rounds):
            for tree, label in builds if rnd % 2 == 0 else builds[::-1]:
                us, rate = measure(tree, rnd, tmpdir, args)
                results.setdefault(label, []).append((us, rate))
                print("round %d %-16s %7.0f µs CPU per reconnect, %6.0f reconnects/s"
                      % (rnd + 1, label, us, rate), flush=True)
    print("\nreconnect cost: %d reconnects, %d at a time, %d users in %d rooms, %d messages "
          "replayed each; %d cpus, chatd on core %d" % (args.reconnects, args.concurrency,
                                                        args.users, args.rooms, args.replay,
                                                        os.cpu_count(), args.server_core))
    print("%-16s %18s %14s" % ("build", "CPU µs/reconnect", "reconnects/s"))
    medians = {}
    for label, rows in results.items():
        medians[label] = statistics.median(us for us, _ in rows)
        print("%-16s %18.0f %14.0f   (rounds: %s)" % (
            label, medians[label], statistics.median(r for _, r in rows),
            ", ".join("%.0f" % us for us, _ in rows)))
    ratio = medians[current] / medians[old_commit]
    print("%s / %s CPU per reconnect = %.3f (%+.1f%%)" % (current, old_commit, ratio,
                                                         (ratio - 1) * 100))


if __name__ == "__main__":
    main()
