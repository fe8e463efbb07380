"""One command for issue 8's fan-out benchmark: every target, one run, one table.

Starts each server pinned to core 0, runs bench/loadgen.py pinned to core 1
against it, stops it, and prints capacity, p50/p99 at 20,000 deliveries/s,
and chatd's capacity as a ratio to each reference peer.

    bench/.venv/bin/python bench/run_fanout.py              # all targets
    bench/.venv/bin/python bench/run_fanout.py --targets gevent,websockets

chatd runs only when it is importable from /work/main/.venv (the repo's
venv), with its rate limit raised so the benchmark measures fan-out, not
the limiter. `null` is a do-nothing peer that shows the load generator's own
ceiling in the same run.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
BENCH_PY = os.path.join(BENCH, ".venv", "bin", "python")
CHATD_PY = os.path.join(REPO, ".venv", "bin", "python")
LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")
CHATD_ENV = {
    "CHATD_LIMITS_MESSAGES_PER_MINUTE": "1000000",
    "CHATD_LIMITS_MESSAGE_BURST": "100000",
    "CHATD_AUTH_OPEN_REGISTRATION": "true",
    # the load generator registers every user and creates every room from one address
    "CHATD_AUTH_REGISTRATIONS_PER_HOUR": "1000000",
    "CHATD_LIMITS_ROOMS_PER_HOUR": "1000000",
}
PEERS = ("gevent", "websockets")
LATENCY_POINT = 20000     # deliveries/s at which p50/p99 are reported


def python_for_bench():
    return BENCH_PY if os.path.exists(BENCH_PY) else sys.executable


def server_command(target, tmpdir):
    """(argv, extra env, loadgen --target) for a target, or None when unavailable."""
    if target == "chatd":
        if not chatd_available():
            return None
        db = "sqlite:///" + os.path.join(tmpdir, "bench.db")
        return [CHATD_PY, "-m", "chatd", "--port", "0", "--database", db], CHATD_ENV, "chatd"
    script = os.path.join(BENCH, "peers", f"{target}_peer.py")
    argv = [python_for_bench(), script, "--port", "0"]
    if target != "null":
        argv += ["--database", os.path.join(tmpdir, f"{target}.db")]
    return argv, {}, "plain"


def chatd_available():
    if not os.path.exists(CHATD_PY):
        return False
    return subprocess.run([CHATD_PY, "-c", "import chatd"], cwd=REPO,
                          capture_output=True).returncode == 0


def start_server(argv, env, log_path, core, cwd=REPO):
    """Start a server pinned to core; returns (process, (host, port)) once it listens."""
    log = open(log_path, "w")
    proc = subprocess.Popen(["taskset", "-c", str(core)] + argv, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=cwd)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(log_path) as f:
            m = LISTENING.search(f.read())
        if m:
            return proc, (m.group(1), int(m.group(2)))
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"{argv[1]} did not start; see {log_path}")


def stop_server(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_loadgen(addr, mode, server_pid, out_json, args, extra=()):
    """loadgen.py's result (its --json); CalledProcessError when it fails."""
    argv = ["taskset", "-c", str(args.loadgen_core), python_for_bench(),
            os.path.join(BENCH, "loadgen.py"), "--url", f"ws://{addr[0]}:{addr[1]}",
            "--target", mode, "--server-pid", str(server_pid), "--json", out_json,
            "--rates", args.rates, "--warmup", str(args.warmup),
            "--measure", str(args.measure), "--tail", str(args.tail),
            "--read-pause-ms", str(args.read_pause_ms)] + list(extra)
    subprocess.run(argv, check=True)
    with open(out_json) as f:
        return json.load(f)


def bench_target(target, tmpdir, args):
    cmd = server_command(target, tmpdir)
    if cmd is None:
        print(f"== {target}: skipped (chatd is not importable from {CHATD_PY})", flush=True)
        return None
    argv, env, mode = cmd
    print(f"== {target}: {' '.join(argv)}", flush=True)
    proc, addr = start_server(argv, env, os.path.join(tmpdir, f"{target}.log"), args.server_core)
    try:
        return run_loadgen(addr, mode, proc.pid, os.path.join(tmpdir, f"{target}.json"), args)
    finally:
        stop_server(proc)


def latency_at(result, deliveries):
    """(p50, p99) of the step whose offered rate is within 10% of deliveries/s."""
    for step in result["steps"]:
        if abs(step["offered_per_s"] - deliveries) <= 0.1 * deliveries:
            return step["p50_ms"], step["p99_ms"]
    return None, None


def disturbed(result):
    """The largest share of a pinned core (the server's or the load generator's)
    that other processes took in any step kept: a shared machine, not the target."""
    shares = [max(s["server_core_others"] or 0, s["loadgen_core_others"]) for s in result["steps"]]
    return max(shares, default=0.0)


def print_table(results):
    print(f"\n{'target':<11} {'capacity/s':>11} {'p50@20k':>8} {'p99@20k':>8} {'others':>9}")
    for target, r in results.items():
        p50, p99 = latency_at(r, LATENCY_POINT)
        print(f"{target:<11} {r['capacity']:>11.0f} {fmt(p50):>8} {fmt(p99):>8} "
              f"{disturbed(r) * 100:>8.0f}%")
    chatd = results.get("chatd")
    for peer in PEERS:
        if chatd and peer in results and results[peer]["capacity"]:
            print(f"chatd / {peer}: {chatd['capacity'] / results[peer]['capacity']:.2f}x")
    print("(p50/p99 in ms; others: the largest share of a pinned core that other processes"
          " took in a step; above ~5%, rerun on a quiet machine)")


def fmt(v):
    return "-" if v is None else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="null,gevent,websockets,chatd",
                    help="comma-separated: null, gevent, websockets, chatd")
    ap.add_argument("--rates", default="50:500:25", help="passed to loadgen.py")
    ap.add_argument("--null-rates", default="50,300:900:100",
                    help="rates for the null peer, whose ceiling is the load generator's")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--measure", type=float, default=3.0)
    ap.add_argument("--tail", type=float, default=1.0)
    ap.add_argument("--read-pause-ms", type=float, default=0.0,
                    help="passed to loadgen.py: a slower reader (see README, Nagle)")
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--loadgen-core", type=int, default=1)
    ap.add_argument("--json", help="write every target's steps to this file")
    args = ap.parse_args()

    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmpdir:
        for target in args.targets.split(","):
            rates = args.null_rates if target == "null" else args.rates
            r = bench_target(target, tmpdir, argparse.Namespace(**{**vars(args), "rates": rates}))
            if r is not None:
                results[target] = r
    print_table(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
