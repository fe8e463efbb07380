"""Hold N authenticated WebSocket connections on one chatd (issue 18).

Starts chatd (pinned to core 0, SQLite, max_connections above N), checks
the open-file limit it logged and got (/proc/PID/limits), opens N
connections from several worker processes (source addresses 127.0.0.2-9,
needed past ~28,000), each joined to a room, holds them --hold seconds
answering pings, and reports chatd's resident memory per connection, its
CPU over the hold (idle: pings only), and connections dropped.

    bench/.venv/bin/python bench/hold.py --n 2000 --hold 30              # small
    bench/.venv/bin/python bench/hold.py --n 100000 --hold 300 --workers 4
"""
import argparse
import os
import platform
import signal
import sys
import tempfile
import time

import swarm
from machine import process_cpu
from run_fanout import CHATD_PY, chatd_available
from storm import free_port, setup, start_chatd, status, worker_configs


def limits(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return line.split()[3:5]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rooms", type=int, default=100)
    ap.add_argument("--per-user", type=int, default=100, help="connections per user")
    ap.add_argument("--hold", type=float, default=30.0, help="seconds held after all joined")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--run-id", default=str(int(time.time()) % 1000000))
    args = ap.parse_args()
    if not chatd_available():
        print(f"chatd is not importable from {CHATD_PY}: skipped")
        return 1
    args.clients, args.rate = args.n, 0
    soft, hard = swarm.raise_nofile(args.n * 2)   # chatd inherits it as its hard limit
    env = {"CHATD_SERVER_MAX_CONNECTIONS": str(args.n + 10000), "CHATD_LOG_LEVEL": "warning",
           # the load comes from eight loopback addresses: no cap of 256 each
           "CHATD_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
    with tempfile.TemporaryDirectory(prefix="bench-hold-") as tmp:
        port, log = free_port(), os.path.join(tmp, "chatd.log")
        proc = start_chatd(port, os.path.join(tmp, "hold.db"), log, args.server_core, env)
        workers = []
        try:
            names, tokens, rooms = setup(f"http://127.0.0.1:{port}", args)
            time.sleep(1)
            rss0 = status(proc.pid, "VmRSS")
            t0 = time.monotonic()
            workers = swarm.start_workers(worker_configs(port, names, tokens, rooms, args))
            for wproc, _pipe in workers:
                os.sched_setaffinity(wproc.pid, {args.client_core})
            for _wproc, pipe in workers:
                if not pipe.poll(args.timeout * 10):
                    raise RuntimeError("workers did not connect")
                pipe.recv()
            setup_s = time.monotonic() - t0
            reps = swarm.ask(workers)
            joined = swarm.total(reps, "open")
            rss1 = status(proc.pid, "VmRSS")
            cpu0, w0 = process_cpu(proc.pid), time.monotonic()
            end = time.monotonic() + args.hold
            peak_rss = rss1
            while time.monotonic() < end:
                time.sleep(min(5.0, max(0.0, end - time.monotonic())))
                peak_rss = max(peak_rss, status(proc.pid, "VmRSS"))
            cpu = (process_cpu(proc.pid) - cpu0) / (time.monotonic() - w0)
            reps = swarm.ask(workers)
            with open(log) as f:
                logged = [line.strip() for line in f if "open files" in line]
            print(f"\nhold: {args.n} connections, {args.rooms} rooms, {args.hold:g} s; "
                  f"{os.cpu_count()} cpus, Python {platform.python_version()}, chatd on core "
                  f"{args.server_core}, {args.workers} client processes on core {args.client_core}")
            print(f"chatd open files (/proc limits soft/hard): {'/'.join(limits(proc.pid))}; "
                  f"logged: {logged[0] if logged else '-'}")
            print(f"{'conns':>7} {'joined':>7} {'setup s':>7} {'RSS before':>10} {'RSS held':>9} "
                  f"{'KiB/conn':>8} {'peak MiB':>8} {'idle cpu':>8} {'dropped':>7} {'client RSS MiB':>14}")
            print(f"{args.n:>7} {joined:>7} {setup_s:>7.1f} {rss0 / 1024:>9.0f}M {rss1 / 1024:>8.0f}M "
                  f"{(rss1 - rss0) / max(1, joined):>8.1f} {peak_rss / 1024:>8.0f} {cpu * 100:>7.1f}% "
                  f"{swarm.total(reps, 'drops'):>7} {swarm.total(reps, 'rss_kib') / 1024:>14.0f}")
        finally:
            swarm.stop_workers(workers)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
