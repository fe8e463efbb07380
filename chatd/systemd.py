"""What chatd takes from systemd, without libsystemd: readiness notices and a listening socket.

Readiness (sd_notify): one datagram to $NOTIFY_SOCKET, READY=1 once chatd
listens, STOPPING=1 when it begins to stop.

Socket activation (sd_listen_fds): with a chatd.socket unit, systemd opens
the listening socket and keeps it open across restarts, passing it as file
descriptor 3 with LISTEN_PID (the process it is for) and LISTEN_FDS (how
many). While one chatd stops and the next starts, clients' connections wait
in the kernel's listen queue instead of being refused; after a restart
every WebSocket client reconnects at once, and a refused one would back off
for seconds.
"""
import logging
import os
import socket

log = logging.getLogger("chatd")
LISTEN_FDS_START = 3  # the first descriptor systemd passes
LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def notify(state):
    """sd_notify: tell systemd `state` (READY=1, STOPPING=1); nothing without $NOTIFY_SOCKET."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), path)
        except OSError as exc:
            log.warning("cannot notify systemd: %s", exc)


def listen_fds(environ, pid):
    """How many sockets systemd passed to process `pid`: 0 when the variables are
    absent or meant for another process (a parent's, inherited)."""
    owner, count = environ.get("LISTEN_PID"), environ.get("LISTEN_FDS")
    if count is None or _number(owner) != pid:
        return 0
    number = _number(count)
    if number is None or number > 1024:
        raise ValueError("LISTEN_FDS=%r from systemd is not a count of sockets" % count[:40])
    return number


def _number(text):
    """A decimal of ASCII digits as an int, else None (str.isdigit admits other scripts)."""
    return int(text) if text and text.isascii() and text.isdigit() else None


def inherited_listener():
    """The TCP listening socket systemd passed, or None; a ValueError says why it cannot be used.

    The variables are removed once read, so that nothing chatd starts
    believes the socket is its own.
    """
    count = listen_fds(os.environ, os.getpid())
    for name in LISTEN_VARIABLES:
        os.environ.pop(name, None)
    if count == 0:
        return None
    if count > 1:
        raise ValueError("systemd passed %d sockets; chatd listens on one "
                         "(one ListenStream= in chatd.socket)" % count)
    try:
        sock = socket.socket(fileno=LISTEN_FDS_START)
    except OSError as exc:
        raise ValueError("the socket systemd passed (descriptor 3) cannot be used: %s"
                         % os.strerror(exc.errno).lower())
    if (sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM
            or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
        sock.detach()  # not ours to close
        raise ValueError("the socket systemd passed is not a listening TCP socket "
                         "(chatd.socket needs ListenStream=ADDRESS:PORT)")
    sock.set_inheritable(False)  # as sd_listen_fds leaves it: not for what chatd runs
    sock.setblocking(False)
    return sock
