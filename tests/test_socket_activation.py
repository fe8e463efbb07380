"""Socket activation: chatd serving on the listening socket systemd passes (chatd.socket),
and a restart in which no client is refused. Real chatd processes; the test plays systemd."""
import os
import socket
import subprocess
import sys
import threading

import requests

from chatd import fdlimit
from helpers import ACTIVATE, ROOT, Chatd, Client, Socket, wait_for
from test_startup import one_error


def tcp_listener(kind=socket.SOCK_STREAM):
    sock = socket.socket(socket.AF_INET, kind)
    sock.bind(("127.0.0.1", 0))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    return sock


def test_chatd_serves_on_the_socket_systemd_passed(tmp_path):
    listener = tcp_listener()
    port = listener.getsockname()[1]
    chatd = Chatd("sqlite:///%s" % (tmp_path / "sa.db"), listener=listener)
    try:
        chatd.start()
        assert chatd.port == port  # --port 0 is not used: the socket is already bound
        assert "(socket from systemd)" in chatd.log()
        alice = Client(chatd)
        room = alice.create_room()
        sock = alice.ws(join=room)
        sock.say(room, "over the passed socket")
        assert sock.expect("new-message")["message"] == "over the passed socket"
        sock.close()
    finally:
        chatd.stop()
        listener.close()


def test_a_restart_refuses_no_one_and_a_client_connecting_meanwhile_is_served(tmp_path):
    listener = tcp_listener()
    db = "sqlite:///%s" % (tmp_path / "restart.db")
    first = second = None
    try:
        first = Chatd(db, listener=listener).start()
        alice = Client(first)
        room = alice.create_room()
        before = alice.ws(join=room)
        before.say(room, "before the restart")
        seen = before.expect("new-message")["seq"]
        assert first.stop() == 0 and before.close_code() == 1001
        assert fdlimit.listen_queue(listener)[0] == 0  # nothing left over from the first

        # No chatd runs now. A client reconnecting meets the kernel's listen
        # queue, not a refusal, and its upgrade waits there for the next process.
        url = "ws://127.0.0.1:%d/chat?token=%s" % (listener.getsockname()[1], alice.token)
        result = {}

        def reconnect():
            try:
                result["ws"] = Socket(url, timeout=60)
            except Exception as exc:  # reported below, with what it was
                result["error"] = exc
        thread = threading.Thread(target=reconnect, daemon=True)
        thread.start()
        wait_for(lambda: fdlimit.listen_queue(listener)[0] == 1 or "error" in result,
                 what="the reconnecting client waiting in the listen queue")
        assert "error" not in result, result

        second = Chatd(db, listener=listener).start()
        thread.join(60)
        assert "ws" in result, result
        resumed = result["ws"]
        resumed.join(room, since=seen)
        alice.server = second
        r = alice.post("/api/rooms/%s/messages" % room, {"message": "after the restart"})
        assert r.status_code == 201, r.text
        assert resumed.expect("new-message")["message"] == "after the restart"
        resumed.close()
    finally:
        for chatd in (first, second):
            if chatd is not None:
                chatd.stop()
        listener.close()


def test_a_dual_stack_socket_still_trusts_the_ipv4_proxy(tmp_path):
    """systemd's ListenStream=8080 is an IPv6 socket that takes IPv4 too; nginx at
    127.0.0.1 then arrives as ::ffff:127.0.0.1 and must still count as that proxy."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind(("::", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    chatd = Chatd("sqlite:///%s" % (tmp_path / "ds.db"), listener=listener,
                  env={"CHATD_SERVER_TRUSTED_PROXIES": "127.0.0.1"})
    try:
        chatd.start()
        r = requests.get("http://127.0.0.1:%d/healthz" % port, timeout=10,
                         headers={"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 200
        wait_for(lambda: " 198.51.100.7 GET /healthz 200 " in chatd.log(),
                 what="the forwarded address in the request's log line")
    finally:
        chatd.stop()
        listener.close()


# -- what chatd refuses to start with: one line, exit 1 -------------------------------

def start_activated(fd, count, tmp_path):
    """chatd with descriptor `fd` as 3 and LISTEN_FDS=count, as systemd would: (code, lines)."""
    result = subprocess.run(
        [sys.executable, "-c", ACTIVATE, str(fd), count, sys.executable, "-m", "chatd",
         "--port", "0", "--database", "sqlite:///%s" % (tmp_path / "bad.db")],
        cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        pass_fds=(fd,))
    return result.returncode, result.stderr.splitlines()


def test_two_sockets_are_one_line_asking_for_one(tmp_path):
    with tcp_listener() as listener:
        code, lines = start_activated(listener.fileno(), "2", tmp_path)
    assert code == 1
    one_error(lines, "systemd passed 2 sockets", "ListenStream")


def test_a_count_that_is_not_a_number_is_one_line(tmp_path):
    with tcp_listener() as listener:
        code, lines = start_activated(listener.fileno(), "two", tmp_path)
    assert code == 1
    one_error(lines, "LISTEN_FDS='two'")


def test_a_udp_socket_is_refused_in_one_line(tmp_path):
    with tcp_listener(socket.SOCK_DGRAM) as udp:
        code, lines = start_activated(udp.fileno(), "1", tmp_path)
    assert code == 1
    one_error(lines, "not a listening TCP socket")


def test_a_socket_that_does_not_listen_is_refused_in_one_line(tmp_path):
    with socket.socket() as unbound:
        code, lines = start_activated(unbound.fileno(), "1", tmp_path)
    assert code == 1
    one_error(lines, "not a listening TCP socket")


def test_a_file_instead_of_a_socket_is_refused_in_one_line(tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("x")
    fd = os.open(path, os.O_RDONLY)
    try:
        code, lines = start_activated(fd, "1", tmp_path)
    finally:
        os.close(fd)
    assert code == 1
    one_error(lines, "descriptor 3", "cannot be used")


def test_variables_meant_for_another_process_are_ignored(tmp_path):
    # A LISTEN_PID that is not chatd's (a parent's, inherited) means nothing
    # was passed: chatd binds --port itself.
    chatd = Chatd("sqlite:///%s" % (tmp_path / "other.db"),
                  env={"LISTEN_PID": "1", "LISTEN_FDS": "1"}).start()
    try:
        assert "(socket from systemd)" not in chatd.log()
        assert requests.get(chatd.url + "/healthz", timeout=5).status_code == 200
    finally:
        chatd.stop()
