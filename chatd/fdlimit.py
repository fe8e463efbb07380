"""Open files and accepts: as many descriptors as allowed, a clean refusal past them.

A chat server holds one descriptor per client, so the default soft limit
(often 1024) is its real connection cap: `raise_nofile` lifts the soft limit
to the hard one at start (systemd's LimitNOFILE sets the hard one) and logs
what it got.

gevent's accept loop, when accept() fails with EMFILE, logs a traceback and
stops accepting for a while; when its pool is full it stops accepting until a
slot frees. Either way new clients wait unanswered in the listen queue.
`AcceptGuard` answers them instead: past `[server] max_connections`, or
when fewer than HEADROOM descriptors would be left (and, should the limit
be hit anyway, on a spare descriptor kept to accept the client with), a
client gets an HTTP 503 JSON answer and the socket is closed, and the
refusal is counted in `chatd_connections_refused{reason}`.

Before accept() the kernel queues connections, and drops attempts past a
full queue (clients retry them 1 s, 3 s, 7 s later). chatd cannot answer a
client it has not accepted; it shows the queue instead, when scraped:
`chatd_listen_queue` (waiting now) and `chatd_listen_queue_size` (what the
kernel granted of `[server] listen_backlog`, or of the socket unit's Backlog=).
"""
import errno
import logging
import os
import resource
import socket
import struct
import time

from gevent import monkey
from prometheus_client import Counter, Gauge

# gevent's os.close and socket.close defer the close to the next loop turn;
# the spare descriptor must be free before the accept() that follows it.
# Neither descriptor has a watcher, so the plain calls are safe.
_close_now = monkey.get_original("os", "close")
_plain_socket = monkey.get_original("socket", "socket")

OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
BODY = (b'{"status":"error","error":"unavailable",'
        b'"message":"The server is at capacity; try again shortly."}')
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" % len(BODY)) + BODY
WARN_EVERY = 10.0  # seconds between two log lines about refusals
# Descriptors kept free for the rest of chatd (a database connection per
# thread, SQLite's WAL files, PostgreSQL's pool, logs): an accept that would
# leave fewer is refused, so that the clients already in keep chatting.
HEADROOM = 64


def raise_nofile(log):
    """Soft RLIMIT_NOFILE up to the hard limit; logs and returns (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit still cannot exceed the kernel's fs.nr_open.
    target = hard if hard != resource.RLIM_INFINITY else _nr_open()
    if soft == resource.RLIM_INFINITY or soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %s to %s: %s", soft, target, exc)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Logged whatever [log] level says, as the listening line: it bounds the connections.
    log.log(max(logging.INFO, log.getEffectiveLevel()),
            "open files: soft limit %s, hard limit %s", _show(soft), _show(hard))
    return soft, hard


def _nr_open():
    try:
        with open("/proc/sys/fs/nr_open") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1048576


def _show(limit):
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)


class AcceptGuard:
    """Wraps a gevent StreamServer's accept so that it refuses, never stalls.

    Install it after the server is built and before it starts:
    `AcceptGuard(server, metrics.registry, log)`.
    """

    def __init__(self, server, registry, log):
        self.server = server
        self.log = log
        self._refused = Counter("chatd_connections_refused",
                                "Connections answered 503 and closed at accept, by reason "
                                "(at_capacity: [server] max_connections; no_fds: out of "
                                "file descriptors).", ["reason"], registry=registry)
        Gauge("chatd_listen_queue", "Connections the kernel holds ready that chatd has not "
              "accepted yet.", registry=registry).set_function(lambda: self._queue()[0])
        Gauge("chatd_listen_queue_size", "The listen queue's size as the kernel granted it: "
              "[server] listen_backlog (or the systemd socket's Backlog=), capped by "
              "net.core.somaxconn.",
              registry=registry).set_function(lambda: self._queue()[1])
        self._warned = {}
        self._reserve = _open_reserve()
        self._accept = server.do_read
        server.do_read = self.do_read
        # The server never stops accepting because its pool is full: it refuses.
        server.full = _never_full

    def _queue(self):
        sock = getattr(self.server, "socket", None)
        return listen_queue(sock) if sock is not None else (0, 0)

    def do_read(self):
        try:
            accepted = self._accept()
        except OSError as exc:
            if exc.errno not in OUT_OF_FDS:
                raise
            self._refuse_with_reserve(exc)
            return None
        if not accepted:
            return None
        if accepted[0].fileno() >= _soft_limit() - HEADROOM:
            refuse(accepted[0])
            self._count("no_fds", "%d file descriptors left (soft limit %s)"
                        % (_soft_limit() - accepted[0].fileno(), _show(_soft_limit())))
            return None
        pool = self.server.pool
        if pool is not None and pool.full():
            refuse(accepted[0])
            self._count("at_capacity", "at [server] max_connections (%d)" % pool.size)
            return None
        return accepted

    def _refuse_with_reserve(self, exc):
        """Free the spare descriptor, accept the client on it, refuse it, take it back."""
        if self._reserve is None:
            self._reserve = _open_reserve()
            if self._reserve is None:
                raise exc  # no spare at all: gevent backs off and retries
        _close_now(self._reserve)
        self._reserve = None
        try:
            fd, _address = self.server.socket._accept()
        except OSError:
            self._reserve = _open_reserve()
            raise
        refuse(_plain_socket(fileno=fd))
        self._reserve = _open_reserve()  # the number the refused client just gave back
        self._count("no_fds", "out of file descriptors (soft limit %s)"
                    % _show(_soft_limit()))

    def _count(self, reason, why):
        self._refused.labels(reason).inc()
        now = time.monotonic()
        if now - self._warned.get(reason, -WARN_EVERY) >= WARN_EVERY:
            self._warned[reason] = now
            self.log.warning("refusing new connections with 503: %s", why)


def _soft_limit():
    # Read at each accept: an operator may change it live (prlimit).
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _never_full():
    return False


def _open_reserve():
    try:
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def refuse(sock):
    """Answer 503 without waiting on the client, then close.

    What the client already sent is read first: closing a socket with
    unread bytes sends a reset, which can destroy the answer in flight.
    """
    try:
        sock.setblocking(False)
        for _ in range(4):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    try:
        sock.send(REFUSAL)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    finally:
        sock.close()


def listen_queue(sock):
    """(connections waiting, queue size) of a listening TCP socket; (0, 0) where
    unknown. Linux's tcp_info carries both for a listener, in the fields that
    hold unacked and sacked segments for a connection."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    except (OSError, AttributeError):
        return 0, 0
    return struct.unpack_from("=II", info, 24) if len(info) >= 32 else (0, 0)
