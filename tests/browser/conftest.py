"""Fixtures for the web client's browser tests.

The tests drive Debian's Chromium (/usr/bin/chromium, or $CHROMIUM_PATH)
headless through Playwright for Python, against a real chatd process on a
fresh SQLite database. No browser is downloaded: when Chromium or Playwright
is missing the tests are skipped with a reason that says what to install.

chatd is started as `python -m chatd --port P --database sqlite:///FILE`
(override the command prefix with $CHATD_COMMAND). The tests keep their own
small process wrapper rather than a shared helper because a restart has to
come back on the same port with the same database file.
"""
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LISTENING = re.compile(r"listening on (http://[^\s:/]+:(\d+))")
START_TIMEOUT = 30.0
PASSWORD = "correct-horse-battery"

# Settings for the server under test: registration on, and a send rate high
# enough that seeding history is not throttled.
SERVER_ENV = {
    "CHATD_AUTH_OPEN_REGISTRATION": "true",
    "CHATD_LIMITS_MESSAGES_PER_MINUTE": "60000",
    "CHATD_LIMITS_MESSAGE_BURST": "1000",
    "CHATD_LOG_LEVEL": "info",
}


class Chatd:
    """One chatd process; restartable on the same port and database."""

    def __init__(self, workdir, env=None):
        self.workdir = Path(workdir)
        self.db_path = self.workdir / "chat.db"
        self.log_path = self.workdir / "chatd.log"
        self.env = {**os.environ, **SERVER_ENV, **(env or {})}
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p)
        self.proc = None
        self.port = 0
        self.url = None

    def command(self, port):
        prefix = os.environ.get("CHATD_COMMAND")
        base = shlex.split(prefix) if prefix else [sys.executable, "-m", "chatd"]
        return base + ["--port", str(port), "--database", f"sqlite:///{self.db_path}"]

    def start(self, port=None):
        """Start chatd (on `port`, else a free one) and wait for its listening line."""
        assert self.proc is None or self.proc.poll() is not None, "chatd already running"
        log = open(self.log_path, "a", encoding="utf-8")
        log.write(f"--- start {self.command(port or 0)}\n")
        log.flush()
        self.proc = subprocess.Popen(
            self.command(port if port is not None else 0),
            cwd=self.workdir, env=self.env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace")
        lines = queue.Queue()
        threading.Thread(target=self._drain, args=(self.proc, log, lines), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.05, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self._fail_start()
            match = LISTENING.search(line)
            if match:
                self.url, self.port = match.group(1), int(match.group(2))
                return self

    @staticmethod
    def _drain(proc, log, lines):
        # Copy stderr to the log file for the whole life of the process, and
        # hand lines to start() until it has seen the listening line.
        for line in proc.stderr:
            log.write(line)
            log.flush()
            lines.put(line)
        lines.put(None)
        log.close()

    def _fail_start(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        log = self.log_path.read_text(encoding="utf-8", errors="replace")
        pytest.fail(f"chatd did not log 'listening on http://HOST:PORT' "
                    f"(exit {self.proc.returncode}); its log:\n{log[-4000:]}")

    def stop(self, timeout=15):
        """SIGTERM, as an operator would; SIGKILL if it does not exit."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self):
        """SIGKILL: a crash, with no chance to close anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, crash=False):
        """Stop (or kill) and start again on the same port and database."""
        (self.kill if crash else self.stop)()
        return self.start(port=self.port)

    def log(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def chatd(tmp_path):
    server = Chatd(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright for Python is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium, "
                    "or set CHROMIUM_PATH)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        sync_api.expect.set_options(timeout=10_000)
        yield browser
        browser.close()


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def pages(browser):
    """Opens pages in fresh browser contexts (one per user) and checks, at the
    end of the test, that none of them raised a JavaScript error or a dialog."""
    opened = []

    def open_page(viewport=(1100, 700)):
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        page = context.new_page()
        page.js_errors = []
        page.dialogs = []
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
        opened.append((context, page))
        return page

    yield open_page
    problems = []
    for context, page in opened:
        problems += [f"JavaScript error: {e}" for e in page.js_errors]
        problems += [f"dialog opened: {d}" for d in page.dialogs]
        context.close()
    assert not problems, "\n".join(problems)
