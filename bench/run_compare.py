"""Issue 13's speed check: fan-out and the mixed workload, this chatd against an earlier one.

Both builds run in the same run, one after the other for each workload, each
on a fresh SQLite database, pinned to the same core, driven by the same
load generator: the current working tree, and `--baseline-ref` checked out
into a temporary `git worktree` (removed afterwards) whose chatd runs with
this venv's python (chatd is pure Python; its requirements are this venv's).

    bench/.venv/bin/python bench/run_compare.py --baseline-ref HEAD~1
    bench/.venv/bin/python bench/run_compare.py --baseline-ref v0.1.0 --workloads fanout

Workloads: `fanout` (today's: every action a new message) and `mixed`
(`loadgen.py --mix 0.2`: one action in five edits or reacts to a message).
A build without edit-message/react makes the load generator stop at once;
the table then says `unsupported` for it. Reported per workload and build:
capacity (deliveries/s), p50 and p99 at 20,000 deliveries/s, and others (the
share of a pinned core that other processes took: above ~5%, rerun).
"""
import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile

import run_fanout
from run_fanout import CHATD_ENV, CHATD_PY, LATENCY_POINT, REPO

WORKLOADS = {"fanout": (), "mixed": ("--mix", "0.2")}


def git(*args, cwd=REPO):
    return subprocess.run(["git"] + list(args), cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def describe_current():
    """The current commit, marked when the working tree has uncommitted changes."""
    head = git("rev-parse", "--short", "HEAD")
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


@contextlib.contextmanager
def baseline_tree(ref, tmpdir):
    """`ref` checked out (detached) into a temporary worktree; removed on the way out."""
    commit = git("rev-parse", "--verify", "--short", ref + "^{commit}")
    path = os.path.join(tmpdir, "baseline-" + commit)
    git("worktree", "add", "--detach", "--quiet", path, commit)
    try:
        yield path, commit
    finally:
        git("worktree", "remove", "--force", path)


def check_chatd_from(tree):
    """This venv's python imports chatd from `tree` (not the editable install of this one)."""
    found = subprocess.run([CHATD_PY, "-c", "import chatd; print(chatd.__file__)"],
                           cwd=tree, env={**os.environ, "PYTHONPATH": tree},
                           capture_output=True, text=True)
    where = found.stdout.strip()
    if found.returncode or not where.startswith(os.path.realpath(tree) + os.sep):
        sys.exit(f"run_compare: chatd of {tree} is not importable with {CHATD_PY} "
                 f"(got {where or found.stderr.strip()})")


def bench_build(tree, label, workload, tmpdir, args):
    """loadgen's result for one build and workload; None when the build cannot run it."""
    name = f"{workload}-{'current' if tree == REPO else 'baseline'}"
    db = "sqlite:///" + os.path.join(tmpdir, name + ".db")
    argv = [CHATD_PY, "-m", "chatd", "--port", "0", "--database", db]
    print(f"== {workload} on {label}", flush=True)
    env = {**CHATD_ENV, "PYTHONPATH": tree}
    proc, addr = run_fanout.start_server(argv, env, os.path.join(tmpdir, name + ".log"),
                                         args.server_core, cwd=tree)
    try:
        extra = ("--retries", str(args.retries), "--quiet-timeout", str(args.quiet_timeout))
        return run_fanout.run_loadgen(addr, "chatd", proc.pid,
                                      os.path.join(tmpdir, name + ".json"), args,
                                      WORKLOADS[workload] + extra)
    except subprocess.CalledProcessError:
        print(f"   {workload} on {label}: the load generator stopped (above)", flush=True)
        return None
    finally:
        run_fanout.stop_server(proc)


def print_table(results, builds):
    print(f"\n{'workload':<8} {'build':<22} {'capacity/s':>11} {'p50@20k':>8} {'p99@20k':>8} "
          f"{'others':>7}")
    for (workload, label), r in results.items():
        if r is None:
            print(f"{workload:<8} {label:<22} {'unsupported':>11}")
            continue
        p50, p99 = run_fanout.latency_at(r, LATENCY_POINT)
        print(f"{workload:<8} {label:<22} {r['capacity']:>11.0f} {run_fanout.fmt(p50):>8} "
              f"{run_fanout.fmt(p99):>8} {run_fanout.disturbed(r) * 100:>6.0f}%")
    current, baseline = builds
    for workload in WORKLOADS:
        new, old = results.get((workload, current)), results.get((workload, baseline))
        if new and old and old["capacity"]:
            ratio = new["capacity"] / old["capacity"]
            print(f"{workload}: {current} / {baseline} capacity = {ratio:.3f} "
                  f"({(ratio - 1) * 100:+.1f}%)")
    print("(p50/p99 in ms at the step offering 20,000 deliveries/s; capacity: the highest "
          "delivered/s with >= 98% delivered and p99 <= 100 ms)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline-ref", default="HEAD~1",
                    help="the earlier build: any git ref (a merge's first parent: HEAD^1)")
    ap.add_argument("--workloads", default="fanout,mixed", help="comma-separated: fanout, mixed")
    ap.add_argument("--rates", default="50:500:25", help="passed to loadgen.py")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--measure", type=float, default=3.0)
    ap.add_argument("--tail", type=float, default=1.0)
    ap.add_argument("--read-pause-ms", type=float, default=0.0)
    ap.add_argument("--retries", type=int, default=3,
                    help="passed to loadgen.py: reruns of a step other processes disturbed")
    ap.add_argument("--quiet-timeout", type=float, default=60,
                    help="passed to loadgen.py: how long to wait for a quiet machine")
    ap.add_argument("--server-core", type=int, default=0)
    ap.add_argument("--loadgen-core", type=int, default=1)
    ap.add_argument("--json", help="write every result to this file")
    args = ap.parse_args()
    workloads = args.workloads.split(",")
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        ap.error("unknown workload(s): " + ", ".join(sorted(unknown)))
    check_chatd_from(REPO)
    # SIGTERM (timeout, a CI cancel) unwinds like Ctrl-C: servers stopped, worktree removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmpdir, \
            baseline_tree(args.baseline_ref, tmpdir) as (old_tree, old_commit):
        check_chatd_from(old_tree)
        builds = [("current " + describe_current(), REPO),
                  (f"{args.baseline_ref} {old_commit}", old_tree)]
        for workload in workloads:
            for label, tree in builds:   # alternate builds: drift on the machine hits both
                results[(workload, label)] = bench_build(tree, label, workload, tmpdir, args)
    print_table(results, [label for label, _ in builds])
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"workload": w, "build": b, "result": r} for (w, b), r in results.items()],
                      f, indent=1)


if __name__ == "__main__":
    main()
