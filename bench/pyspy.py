"""py-spy on a running chatd, for the benchmarks' --profile option.

It samples from outside the process, on the benchmark's own core, so chatd's
core pays little: all threads, idle ones too (a thread waiting for the GIL or
a lock shows where it waits), in py-spy's raw format (one stack per line,
then its sample count), ready for a flame graph or a grep.
"""
import os
import signal
import subprocess

from run_fanout import CHATD_PY

PY_SPY = os.path.join(os.path.dirname(CHATD_PY), "py-spy")


def start(pid, out):
    return subprocess.Popen([PY_SPY, "record", "-p", str(pid), "-f", "raw", "-o", out,
                             "--threads", "--idle", "--rate", "200", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(spy):
    spy.send_signal(signal.SIGINT)   # py-spy writes its file when interrupted
    spy.wait(30)
