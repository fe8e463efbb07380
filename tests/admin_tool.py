"""Run the installed chat-admin as an operator would: a subprocess, its exit code and output."""
import os
import pty
import select
import subprocess
import sys
import time

CHAT_ADMIN = os.path.join(os.path.dirname(sys.executable), "chat-admin")


def chat_admin(database_url, *args, stdin="", env=None, umask=None, timeout=120):
    """CompletedProcess of `chat-admin [--database URL] ARGS...` (stdin closed unless given),
    run with `umask` if given."""
    flags = ["--database", database_url] if database_url else []
    return subprocess.run([CHAT_ADMIN] + flags + list(args),
                          input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})),
                          preexec_fn=None if umask is None else lambda: os.umask(umask))


def ok(result):
    """The command succeeded and said nothing on stderr; its stdout."""
    assert result.returncode == 0, "exit %d: %s%s" % (result.returncode, result.stdout, result.stderr)
    assert result.stderr == "", result.stderr
    return result.stdout


def failed(result, *words):
    """The command failed with exit 1 and one clear line on stderr containing `words`."""
    assert result.returncode == 1, "exit %d: %s%s" % (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("chat-admin: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


class Terminal:
    """chat-admin with a pseudo-terminal as stdin and stderr (stdout too unless given)."""

    def __init__(self, args, stdout=None):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([CHAT_ADMIN] + list(args), stdin=slave, stderr=slave,
                                     stdout=slave if stdout is None else stdout,
                                     close_fds=True, start_new_session=True)
        os.close(slave)
        self.screen = b""

    def read_until(self, text, timeout=30):
        """Read the terminal until `text` shows; all of it so far."""
        deadline = time.monotonic() + timeout
        while text.encode() not in self.screen:
            if not self._read(deadline):
                raise AssertionError("no %r on the terminal: %r" % (text, self.screen))
        return self.screen.decode()

    def _read(self, deadline):
        """Append what the program wrote; False at its end or at the deadline."""
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([self.master], [], [], left)[0]:
            return False
        try:
            chunk = os.read(self.master, 4096)
        except OSError:  # EIO: every slave end is closed, the program has exited
            return False
        self.screen += chunk
        return bool(chunk)

    def type(self, line):
        os.write(self.master, line.encode() + b"\r")

    def finish(self, timeout=120):
        """The exit code, once everything the program wrote is in self.screen."""
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            pass
        code = self.proc.wait(max(1, deadline - time.monotonic()))
        os.close(self.master)
        return code
