"""Whether a benchmark had its pinned cores to itself.

taskset pins our processes, not the rest of the machine (other engineers'
test suites run on the same two cores). Over a measured window, a core's
busy time from /proc/stat minus the CPU time of our own processes on it
(from /proc/PID/stat) is what other processes took: above a few percent the
window says more about them than about chatd, and should be rerun.
"""
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")
MAX_FOREIGN = 0.05     # a window where others took more of a pinned core is disturbed


def core_busy(core):
    """Seconds the core has been busy since boot (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % core):
                v = [int(x) for x in line.split()[1:9]]
                return (sum(v) - v[3] - v[4]) / TICK
    raise ValueError("no cpu%d in /proc/stat" % core)


def process_cpu(pid):
    """CPU seconds of a process: all its threads, those that have ended included."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime + stime


def runnable_wait(pid):
    """Seconds the process's main thread (chatd's event loop) has been runnable
    but waiting for a CPU: behind its own threads, or behind other processes."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[1]) / 1e9


class CoreWatch:
    """Other processes' share of each pinned core since start().

    pids_by_core: {core: [pids pinned to it]}; floating: pids of ours that
    run on any core (PostgreSQL's backends serving chatd), whose CPU time is
    taken off the cores where the most unexplained time is.
    """

    def __init__(self, pids_by_core, floating=()):
        self.pids_by_core = pids_by_core
        self.floating = list(floating)
        self.start()

    def _sample(self):
        return time.monotonic(), {
            core: (core_busy(core), sum(process_cpu(pid) for pid in pids))
            for core, pids in self.pids_by_core.items()}, self._floating_cpu()

    def _floating_cpu(self):
        total = 0.0
        for pid in self.floating:
            try:
                total += process_cpu(pid)
            except FileNotFoundError:   # a backend that ended: its time is lost, not ours
                pass
        return total

    def start(self):
        self.t0, self.s0, self.f0 = self._sample()

    def foreign(self):
        """{core: share of the window other processes ran on it}."""
        t1, s1, f1 = self._sample()
        secs = max(t1 - self.t0, 1e-3)
        left = {core: max(0.0, (s1[core][0] - self.s0[core][0]) - (s1[core][1] - self.s0[core][1]))
                for core in s1}
        floating = f1 - self.f0
        for core in sorted(left, key=left.get, reverse=True):
            taken = min(left[core], floating)
            left[core] -= taken
            floating -= taken
        return {core: busy / secs for core, busy in left.items()}


def disturbed(foreign):
    return max(foreign.values(), default=0.0) > MAX_FOREIGN


def fmt_foreign(foreign):
    return " ".join("core%d %.0f%%" % (core, share * 100) for core, share in sorted(foreign.items()))


def idle_share(secs=1.0):
    """Share of the whole machine idle over secs (/proc/stat), sampled while our
    processes rest: what is busy then is other processes."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]          # total, idle + iowait
    t0, i0 = sample()
    time.sleep(secs)
    t1, i1 = sample()
    return (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(pids_by_core, give_up_s, pause=time.sleep, floating=()):
    """Wait (up to give_up_s) for a second in which other processes took at most
    MAX_FOREIGN of each pinned core; pause(secs) is how to spend a second (a
    client with open WebSockets keeps reading). Returns that second's shares."""
    start = time.monotonic()
    while True:
        watch = CoreWatch(pids_by_core, floating)
        pause(1.0)
        foreign = watch.foreign()
        if not disturbed(foreign) or time.monotonic() - start > give_up_s:
            break
    waited = time.monotonic() - start
    if waited > 1.5:
        print(f"(waited {waited:.0f} s for other processes; now {fmt_foreign(foreign)})",
              file=sys.stderr, flush=True)
    return foreign
