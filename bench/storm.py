"""Reconnect storm (issue 18): N clients in R rooms, messages flowing, chatd restarted.

Starts chatd (pinned to core 0, SQLite) on a fixed port, connects --clients
WebSocket clients (several worker processes on the other core, source
addresses 127.0.0.2-9) into --rooms rooms, one sender per room sending
--rate messages a second. Then, per mode (term: SIGTERM; kill: SIGKILL), it
stops chatd, starts it again on the same port and database, and waits until
every client is live again: reconnected with jittered backoff, rejoined with
`since`, replay received, a message sent after its drop received. It reports
the time from the signal (and from the new process listening) to the last
client live, gaps and duplicates counted per client (seqs must be
consecutive), chatd's peak resident memory (VmHWM of the new process), and
with --relogin K, K clients log in again (argon2) before reconnecting.

With --target chatd,websockets,gevent the same storm runs against chatd and
then each reference peer, one table for all (bench/peers: no accounts, so
no --relogin; they replay a room's messages after `since` like chatd).
Target chatd-socket is chatd started as systemd starts it from chatd.socket:
this script holds the listening socket (listen queue 65535, capped by
net.core.somaxconn) and passes it to each chatd process, so it stays open
across the restart and clients that reconnect meanwhile wait in its queue
instead of being refused.

    bench/.venv/bin/python bench/storm.py --clients 2000 --rooms 20          # small
    bench/.venv/bin/python bench/storm.py --clients 2000 --rooms 20 --target chatd,websockets,gevent
    bench/.venv/bin/python bench/storm.py --clients 20000 --rooms 200 --relogin 2000
"""
import argparse
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pyspy
import swarm
from run_fanout import BENCH, CHATD_ENV, CHATD_PY, REPO, chatd_available, python_for_bench
from wsclient import create_room, login_user

PASSWORD = "bench-password-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# systemd's hand-over of a listening socket (sd_listen_fds): descriptor 3,
# LISTEN_PID naming the process exec'd (the same pid), LISTEN_FDS=1.
ACTIVATE = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
            "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
            "os.execv(sys.argv[2], sys.argv[2:])")


def is_chatd(target):
    return target in ("chatd", "chatd-socket")


def held_listener(port):
    """The listening socket systemd's chatd.socket would hold, on `port`."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(65535)
    return sock


def start_chatd(port, db, log_path, core, env, target="chatd", listener=None):
    """chatd (or a reference peer) on `port` and database `db`, pinned to `core`;
    with `listener`, chatd serves that socket (target chatd-socket)."""
    listening = log_lines(log_path, "listening on")
    log = open(log_path, "a")
    passed = ()
    if is_chatd(target):
        argv = [CHATD_PY, "-m", "chatd", "--port", str(port), "--database", "sqlite:///" + db]
        if listener is not None:
            passed = (listener.fileno(),)
            argv = [CHATD_PY, "-c", ACTIVATE, str(passed[0])] + argv
    else:
        argv = [python_for_bench(), os.path.join(BENCH, "peers", f"{target}_peer.py"),
                "--port", str(port), "--database", db]
    proc = subprocess.Popen(["taskset", "-c", str(core)] + argv,
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            env={**os.environ, **CHATD_ENV, **env}, pass_fds=passed)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if (log_lines(log_path, "listening on") > listening if is_chatd(target)
                else accepts(port)):
            return proc
        time.sleep(0.02)
    raise RuntimeError("chatd did not start; see " + log_path)


def log_lines(path, text):
    """How many lines of the log name `text`: chatd says `listening on` once it serves
    (on a held socket, connections are accepted before any process serves them)."""
    try:
        with open(path, errors="replace") as f:
            return sum(text in line for line in f)
    except FileNotFoundError:
        return 0


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def setup(base, args):
    users = max(1, args.clients // args.per_user)
    names = [f"st{args.run_id}_{k}" for k in range(users)]
    if not is_chatd(getattr(args, "target", "chatd")):  # the peers have no accounts
        return names, ["-"] * users, [f"storm-{args.run_id}-{r}" for r in range(args.rooms)]
    with ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(lambda n: login_user(base, n, PASSWORD), names))
    rooms = [create_room(base, tokens[r % users], f"storm {args.run_id} {r}") for r in range(args.rooms)]
    return names, tokens, rooms


def worker_configs(port, names, tokens, rooms, args):
    users, cfgs = len(names), []
    for w in range(args.workers):
        idx = list(range(w, args.clients, args.workers))
        cfgs.append({"host": "127.0.0.1", "port": port, "password": PASSWORD,
                     "tokens": [tokens[i % users] for i in idx],
                     "usernames": [names[i % users] for i in idx],
                     "rooms": [rooms[i % len(rooms)] for i in idx],
                     "senders": {j for j, i in enumerate(idx) if i < len(rooms)},
                     "rate": args.rate})
    return cfgs


def pin_workers(workers, core):
    for proc, _pipe in workers:
        os.sched_setaffinity(proc.pid, {core})


def storm(mode, state, workers, args):
    """One restart; returns its figures."""
    proc = state["proc"]
    if args.relogin:
        per = [args.relogin // len(workers) + (k < args.relogin % len(workers))
               for k in range(len(workers))]
        for (wproc, pipe), n in zip(workers, per):
            pipe.send({"relogin": n})
            pipe.recv()
    before = swarm.ask(workers)
    drops_before = listen_drops()
    stopping = pyspy.start(proc.pid, "%s.%s.stop" % (args.profile, mode)) if args.profile else None
    t_signal = swarm.now_us()
    proc.send_signal(signal.SIGTERM if mode == "term" else signal.SIGKILL)
    proc.wait(60)
    if stopping is not None:
        stopping.wait(30)  # py-spy ends with the process it watched
    t_down = swarm.now_us()
    proc = state["proc"] = start_chatd(state["port"], state["db"], state["log"], args.server_core,
                                       state["env"], args.target, state["listener"])
    t_up = swarm.now_us()
    spy = pyspy.start(proc.pid, "%s.%s" % (args.profile, mode)) if args.profile else None
    deadline = time.monotonic() + args.timeout
    while True:
        time.sleep(0.5)
        reps = swarm.ask(workers)
        if swarm.total(reps, "down_not_live") == 0 and swarm.total(reps, "open") == args.clients:
            break
        if time.monotonic() > deadline:
            break
    cpu_storm = cpu_seconds(proc.pid)  # a new process: all it used since it started
    if spy is not None:
        pyspy.stop(spy)
    last_live = max((r["live_last_us"] or 0) for r in reps)
    logins = sorted(ms for r in reps for ms in r["login_ms"])
    return {
        "mode": mode,
        "all_live": swarm.total(reps, "down_not_live") == 0,
        "not_live": swarm.total(reps, "down_not_live"),
        "stop_s": (t_down - t_signal) / 1e6,
        "start_s": (t_up - t_down) / 1e6,
        "live_s": (last_live - t_signal) / 1e6 if last_live else None,
        "live_after_up_s": (last_live - t_up) / 1e6 if last_live else None,
        "gaps": swarm.total(reps, "gaps") - swarm.total(before, "gaps"),
        "dups": swarm.total(reps, "dups") - swarm.total(before, "dups"),
        "clients_with_gaps": swarm.total(reps, "clients_with_gaps"),
        "clients_with_dups": swarm.total(reps, "clients_with_dups"),
        "received": swarm.total(reps, "received") - swarm.total(before, "received"),
        "connect_errors": swarm.total(reps, "connect_errors") - swarm.total(before, "connect_errors"),
        "refused": swarm.total(reps, "refused") - swarm.total(before, "refused"),
        "joins": swarm.total(reps, "joins") - swarm.total(before, "joins"),
        "peak_rss_mib": status(proc.pid, "VmHWM") / 1024,
        "listen_drops": listen_drops() - drops_before,
        "server_closes": server_closes(state["port"]),
        "cpu_s": cpu_storm,
        "logins": len(logins),
        "login_p50_ms": pct(logins, 0.5), "login_p99_ms": pct(logins, 0.99),
    }


def server_closes(port):
    """WebSockets the new process closed to refuse their peer, by reason, from its
    /metrics (too_slow: cut off with 1013 for not reading; policy: 1008)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    return {m.group(1): int(float(m.group(2))) for m in
            re.finditer(r'^chatd_rejected_frames_total\{reason="(\w+)"\} (\S+)$', text, re.M)
            if float(m.group(2))}


def listen_drops():
    """The kernel's count of connection attempts dropped at a full listen queue
    (TcpExt ListenDrops, machine-wide: this run is the only load on loopback)."""
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1]))["ListenDrops"])


def cpu_seconds(pid):
    """User + system CPU seconds the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(sorted_ms, q):
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))] if sorted_ms else None


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def print_table(rows, args):
    print(f"\nreconnect storm: {args.clients} clients, {args.rooms} rooms, "
          f"{args.rate:g} msg/s per room, relogin {args.relogin}; "
          f"{os.cpu_count()} cpus, {platform.python_version()}, server on core {args.server_core}")
    print(f"{'target':<12} {'mode':<5} {'stop s':>6} {'start s':>7} {'live s':>7} {'after up':>8} {'all live':>8} "
          f"{'gaps':>5} {'dups':>5} {'replayed+live':>13} {'peak RSS MiB':>12} "
          f"{'logins':>6} {'login p50/p99 ms':>17} {'server CPU s':>12} {'listen drops':>12} {'connect errors':>14}")
    for r in rows:
        print(f"{r['target']:<12} {r['mode']:<5} {r['stop_s']:>6.2f} {r['start_s']:>7.2f} {fmt(r['live_s'], '.2f'):>7} "
              f"{fmt(r['live_after_up_s'], '.2f'):>8} {'yes' if r['all_live'] else 'NO ' + str(r['not_live']):>8} "
              f"{r['gaps']:>5} {r['dups']:>5} {r['received']:>13} {r['peak_rss_mib']:>12.0f} "
              f"{r['logins']:>6} {fmt(r['login_p50_ms'], '.0f') + '/' + fmt(r['login_p99_ms'], '.0f'):>17} "
              f"{r['cpu_s']:>12.1f} {r['listen_drops']:>12} {r['connect_errors']:>14}")
    print("(live s: from the signal to the last client live again with every message; "
          "gaps/dups: summed over clients, seqs checked one by one; server CPU s: "
          "what the new process used from its start until all were live; listen drops: connection "
          "attempts the kernel dropped at a full listen queue, retried by the client 1, 3, 7 s later; "
          "connect errors: attempts refused or failed, after each of which the client backed off)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=2000)
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--per-user", type=int, default=10, help="connections per user")
    ap.add_argument("--rate", type=float, default=2.0, help="messages a second per room")
    ap.add_argument("--workers", type=int, default=2, help="client processes")
    ap.add_argument("--modes", default="term,kill")
    ap.add_argument("--relogin", type=int, default=0, help="clients that log in again before reconnecting")
    ap.add_argument("--warm", type=float, default=3.0, help="seconds of traffic before each restart")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--client-core", type=int, default=1)
    ap.add_argument("--target", default="chatd",
                    help="the servers, one after the other, comma-separated: chatd, chatd-socket "
                    "(chatd on a listening socket held across the restart, as chatd.socket "
                    "does), gevent, websockets (the reference peers of bench/peers, resuming "
                    "with since)")
    ap.add_argument("--profile", help="py-spy raw profiles: the stopping chatd to PATH.MODE.stop, "
                    "the restarted one to PATH.MODE")
    ap.add_argument("--run-id", default=str(int(time.time()) % 1000000))
    args = ap.parse_args()
    targets = args.target.split(",")
    if set(targets) - {"chatd", "chatd-socket", "gevent", "websockets"}:
        ap.error("--target: chatd, chatd-socket, gevent or websockets, comma-separated")
    if any(map(is_chatd, targets)) and not chatd_available():
        print(f"chatd is not importable from {CHATD_PY}: skipped")
        return 1
    if not all(map(is_chatd, targets)) and args.relogin:
        ap.error("the peers have no logins: --relogin is for chatd alone")
    swarm.raise_nofile(args.clients * 2)
    rows = []
    for target in targets:
        args.target = target
        rows += [dict(row, target=target) for row in run_target(args)]
    print_table(rows, args)
    return 0


def run_target(args):
    """args.target's storms: its server and clients set up, each mode in turn; the rows."""
    env = {"CHATD_SERVER_MAX_CONNECTIONS": str(args.clients + 10000),
           "CHATD_LOG_LEVEL": "warning",
           # the load comes from eight loopback addresses: no cap of 256 each
           "CHATD_SERVER_MAX_CONNECTIONS_PER_ADDRESS": "0"}
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        port = free_port()
        state = {"port": port, "db": os.path.join(tmp, "storm.db"),
                 "log": os.path.join(tmp, "chatd.log"), "env": env,
                 "listener": held_listener(port) if args.target == "chatd-socket" else None}
        state["proc"] = start_chatd(state["port"], state["db"], state["log"], args.server_core, env,
                                    args.target, state["listener"])
        workers = []
        try:
            names, tokens, rooms = setup(f"http://127.0.0.1:{state['port']}", args)
            t0 = time.monotonic()
            workers = swarm.start_workers(worker_configs(state["port"], names, tokens, rooms, args))
            pin_workers(workers, args.client_core)
            for _proc, pipe in workers:
                if not pipe.poll(args.timeout * 5):
                    raise RuntimeError("workers did not connect")
                pipe.recv()
            print(f"{args.target}: {args.clients} clients connected and joined in "
                  f"{time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
            rows = []
            for mode in args.modes.split(","):
                time.sleep(args.warm)
                rows.append(storm(mode, state, workers, args))
                print(args.target, rows[-1], file=sys.stderr, flush=True)
            return rows
        finally:
            swarm.stop_workers(workers)
            state["proc"].send_signal(signal.SIGTERM)
            try:
                state["proc"].wait(20)
            except subprocess.TimeoutExpired:
                state["proc"].kill()
            if state["listener"] is not None:
                state["listener"].close()


if __name__ == "__main__":
    sys.exit(main())
