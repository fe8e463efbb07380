"""PostgreSQL and Redis for the tests that need them: a fresh database, a private Redis.

Where a service is missing, its tests skip and say what is missing; with
CHATD_REQUIRE_SERVICES=1 (set by .ci/run) they fail instead, so CI cannot
pass by skipping.
"""
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

import pytest

REQUIRED = os.environ.get("CHATD_REQUIRE_SERVICES") == "1"
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def missing(what):
    """Skip the test for lack of `what`, or fail it where services are required."""
    if REQUIRED:
        pytest.fail("%s, and CHATD_REQUIRE_SERVICES=1 requires it" % what, pytrace=False)
    pytest.skip(what)


def _pg_admin():
    import psycopg2
    try:
        conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres",
                                connect_timeout=3)
    except psycopg2.OperationalError as exc:
        missing("PostgreSQL not reachable at %s:%d as user %s (%s)"
                % (PG_HOST, PG_PORT, PG_USER, str(exc).strip().splitlines()[0]))
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def postgres_database():
    """The URL of a new, empty database with a unique name; dropped afterwards."""
    admin = _pg_admin()
    name = "chatd_test_%s" % uuid.uuid4().hex[:12]
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE "%s"' % name)
    try:
        yield "postgresql://%s@%s:%d/%s" % (PG_USER, PG_HOST, PG_PORT, name)
    finally:
        with admin.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        admin.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private redis-server on a free port, without persistence, that a test
    can stop and start again on the same port (a Redis restart loses all data)."""

    def __init__(self, workdir):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            missing("redis-server is not installed (the cluster tests start their own Redis)")
        self.workdir = str(workdir)
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, timeout=10):
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.workdir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start on port %d" % self.port)
            time.sleep(0.05)
        return self

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
            self.proc.terminate()
            self.proc.wait(10)

    def freeze(self):
        """Unreachable but not gone: connections open, nothing answers (SIGSTOP)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        self.proc.send_signal(signal.SIGCONT)
