"""One big room (issue 18): M members all online, messages at rising rates.

Runs bench/loadgen.py with one room of --members connections against each
target (started pinned to core 0 as run_fanout.py does; the load generator
on core 1) and prints, per target, p50/p99 at 1 message a second and the
highest message rate into the room with >= 98% delivered and p99 <= 100 ms.

Every delivery is counted, from the sender's timestamp to its arrival at
the member's socket (the kernel's receive timestamp: loadgen.py --arrival).
The time until the load generator read it is printed beside it: one Python
process reading 10,000 sockets on one core takes about as long as the
server's sends, so that figure times the load generator as well; members
of a real room read on their own machines.

    bench/.venv/bin/python bench/bigroom.py --members 1000                # small
    bench/.venv/bin/python bench/bigroom.py --members 10000               # issue 18

For chatd the members share --users users (100 connections each by default):
fan-out is per connection; registering 10,000 users would cost minutes.
"""
import argparse
import json
import os
import platform
import sys
import tempfile

from loadgen import MAX_P99_MS, MIN_FRACTION
from run_fanout import (BENCH, python_for_bench, server_command, start_server, stop_server)
from swarm import raise_nofile


def run_target(target, tmpdir, args):
    cmd = server_command(target, tmpdir)
    if cmd is None:
        print(f"== {target}: skipped (chatd not importable)", flush=True)
        return None
    argv, env, mode = cmd
    env = {**env, "CHATD_SERVER_MAX_CONNECTIONS": str(args.members + 1000),
           # the members connect from eight loopback addresses: no cap of 256 each
           "CHATD_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
    print(f"== {target}", flush=True)
    proc, (host, port) = start_server(argv, env, os.path.join(tmpdir, f"{target}.log"), 0)
    out = os.path.join(tmpdir, f"{target}.json")
    try:
        import subprocess
        subprocess.run(["taskset", "-c", "1", python_for_bench(), os.path.join(BENCH, "loadgen.py"),
                        "--url", f"ws://{host}:{port}", "--target", mode, "--rooms", "1",
                        "--members", str(args.members), "--senders", "1",
                        "--users", str(max(1, args.members // args.per_user)),
                        "--rates", args.rates, "--server-pid", str(proc.pid), "--json", out,
                        "--measure", str(args.measure), "--retries", "1", "--quiet-timeout", "10", "--arrival",
                        # every rate runs: the delivered figure is wanted past the latency bar
                        "--stop-after", "0"],
                       check=True)
        with open(out) as f:
            return json.load(f)
    finally:
        stop_server(proc)


def ms(value):
    return "lost" if value is None else f"{value:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=1000)
    ap.add_argument("--per-user", type=int, default=100)
    ap.add_argument("--targets", default="gevent,websockets,chatd")
    ap.add_argument("--rates", default="1,2,4,6,8,10,12,15,20,25,30,40,50",
                    help="messages a second into the room (one sender)")
    ap.add_argument("--measure", type=float, default=5.0)
    args = ap.parse_args()
    raise_nofile(args.members * 2)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-bigroom-") as tmpdir:
        for target in args.targets.split(","):
            r = run_target(target, tmpdir, args)
            if r:
                results[target] = r
    print(f"\nbig room: {args.members} members online, one sender; {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}; server on core 0, load generator on core 1")
    print(f"{'':<11} {'arrived, 1 msg/s':>17} {'read, 1 msg/s':>17}")
    print(f"{'target':<11} {'p50':>8} {'p99':>8} {'p50':>8} {'p99':>8} {'max msgs/s':>10} "
          f"{'deliveries/s':>12} {'delivered msgs/s':>16} {'its p99':>8} {'others':>7}")
    for target, r in results.items():
        first = r["steps"][0]
        delivered = [s for s in r["steps"] if s["fraction"] >= MIN_FRACTION]
        ok = [s for s in delivered
              if s["arrival_p99_ms"] is not None and s["arrival_p99_ms"] <= MAX_P99_MS]
        best = max(ok, key=lambda s: s["sent_per_s"]) if ok else None
        most = max(delivered, key=lambda s: s["sent_per_s"]) if delivered else None
        others = max(max(s["server_core_others"] or 0, s["loadgen_core_others"]) for s in r["steps"])
        cells = " ".join(f"{ms(first[k]):>8}" for k in ("arrival_p50_ms", "arrival_p99_ms",
                                                          "p50_ms", "p99_ms"))
        print(f"{target:<11} {cells} {(best['sent_per_s'] if best else 0):>10.1f} "
              f"{(best['delivered_per_s'] if best else 0):>12.0f} "
              f"{(most['sent_per_s'] if most else 0):>16.1f} "
              f"{ms(most['arrival_p99_ms'] if most else None):>8} {others * 100:>6.0f}%")
    print("(ms from send to arrival at the member's socket and to this load generator's read; "
          "max msgs/s: highest rate with >= 98% delivered and arrival p99 <= 100 ms; "
          "delivered msgs/s: highest rate with >= 98% delivered, whatever the latency, and "
          "its arrival p99; others: share of a pinned core other processes took)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
