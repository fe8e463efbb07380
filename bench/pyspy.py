"""py-spy on a running chatd, for the benchmarks' --profile option.

It samples from outside the process, on the benchmark's own core, so chatd's
core pays little: all threads, idle ones too (a thread waiting for the GIL or
a lock shows where it waits), in py-spy's raw format (one stack per line,
then its sample count), ready for a flame graph or a grep.
"""
import os
import signal
import subprocess
import sys

from run_fanout import CHATD_PY

# bench/requirements.txt installs it beside the benchmark's Python; else chatd's venv.
PY_SPY = next((path for path in (os.path.join(os.path.dirname(sys.executable), "py-spy"),
                                 os.path.join(os.path.dirname(CHATD_PY), "py-spy"))
               if os.path.exists(path)), "py-spy")


def start(pid, out):
    return subprocess.Popen([PY_SPY, "record", "-p", str(pid), "-f", "raw", "-o", out,
                             "--threads", "--idle", "--rate", "200", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(spy):
    spy.send_signal(signal.SIGINT)   # py-spy writes its file when interrupted
    spy.wait(30)
