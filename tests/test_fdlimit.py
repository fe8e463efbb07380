"""Open-file limit at start, and clients refused cleanly when chatd has no room for them."""
import json
import os
import resource
import socket
import subprocess

import pytest

from helpers import GENEROUS
from helpers import Chatd, Client, wait_for

HTTP_UPGRADE = ("GET /chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n")


def open_files(pid):
    """(soft, hard) 'Max open files' of a process, from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


@pytest.fixture
def low_soft_limit():
    """Children started meanwhile inherit a soft limit of 256 below the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("hard open-file limit too low to test raising the soft one")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_open_file_limit_is_raised_to_the_hard_limit_at_start(tmp_path, low_soft_limit):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "chat.db")).start()
    try:
        soft, hard = open_files(chatd.proc.pid)
        assert hard == low_soft_limit or low_soft_limit == resource.RLIM_INFINITY
        assert soft == hard
        assert "open files: soft limit %d, hard limit %d" % (soft, hard) in chatd.log()
    finally:
        chatd.stop()


def upgrade(port, held, timeout=5):
    """Send a WebSocket upgrade; the raw answer until the server closes (a
    refusal) or the end of a 101's head (kept open in `held`). A hang fails
    the test through the socket timeout."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    held.append(sock)
    try:
        sock.sendall((HTTP_UPGRADE % port).encode())
    except OSError:
        pass  # already refused and closed: what was answered is still readable
    data = b""
    while not (data.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in data):
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def refused_upgrade(port, held, attempts=50):
    """Upgrade until one is not accepted (slots or descriptors freed earlier may
    take a few); that answer must be a 503 with the JSON error, or at worst a
    bare close: never a hang."""
    for _ in range(attempts):
        answer = upgrade(port, held)
        if not answer.startswith(b"HTTP/1.1 101"):
            break
    else:
        raise AssertionError("%d upgrades accepted, none refused" % attempts)
    if answer:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503"), answer
        assert json.loads(body)["error"] == "unavailable"


def chat_still_works(sender, name, receiver, room, text):
    sender.say(room, text)
    assert receiver.expect("new-message", message=text)["sender"] == name


def refusals(chatd, reason):
    text = Client(chatd, register=False).get("/metrics").text
    for line in text.splitlines():
        if line.startswith('chatd_connections_refused_total{reason="%s"}' % reason):
            return float(line.split()[-1])
    return 0.0


def highest_fd(pid):
    return max(int(fd) for fd in os.listdir("/proc/%d/fd" % pid))


def two_chatting(chatd):
    alice, bob = Client(chatd), Client(chatd)
    room = alice.create_room()
    return alice, alice.ws(join=room), bob.ws(join=room), room


def set_soft_limit(pid, soft):
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:" % soft], check=True)


@pytest.mark.slow
def test_client_refused_for_lack_of_descriptors_gets_503_while_others_chat(tmp_path):
    chatd = Chatd("sqlite:///%s" % (tmp_path / "chat.db"), env=GENEROUS).start()
    held = []
    try:
        alice, a, b, room = two_chatting(chatd)
        pid = chatd.proc.pid
        # Few descriptors left: chatd keeps them for itself and refuses newcomers.
        set_soft_limit(pid, highest_fd(pid) + 8)
        refused_upgrade(chatd.port, held)
        chat_still_works(a, alice.username, b, room, "still here with few descriptors")
        # None left at all (accept fails with EMFILE): still a clean refusal, no crash.
        set_soft_limit(pid, highest_fd(pid) + 1)
        refused_upgrade(chatd.port, held)
        set_soft_limit(pid, 4096)
        assert refusals(chatd, "no_fds") >= 2
        assert "file descriptors" in chatd.log()
        chat_still_works(a, alice.username, b, room, "and after")
    finally:
        for sock in held:
            sock.close()
        chatd.stop()


@pytest.mark.slow
def test_client_past_max_connections_gets_503_while_others_chat(tmp_path):
    env = dict(GENEROUS, CHATD_SERVER_MAX_CONNECTIONS="3")
    chatd = Chatd("sqlite:///%s" % (tmp_path / "chat.db"), env=env).start()
    held = []
    try:
        alice, a, b, room = two_chatting(chatd)
        refused_upgrade(chatd.port, held)
        chat_still_works(a, alice.username, b, room, "still here at capacity")
        for sock in held:
            sock.close()
        # Slots free again: /metrics is served, and counts the refusal.
        assert wait_for(lambda: refusals(chatd, "at_capacity") >= 1, 10)
        assert "max_connections" in chatd.log()
    finally:
        for sock in held:
            sock.close()
        chatd.stop()


@pytest.mark.skipif(not os.path.exists("/usr/bin/ss") and not os.path.exists("/bin/ss"),
                    reason="ss (iproute2) is not installed")
@pytest.mark.parametrize("backlog", [None, "1000"])
def test_the_listen_queue_holds_a_reconnect_storm(tmp_path, backlog):
    """The listening socket's queue is [server] listen_backlog (65535 by default,
    as much as the kernel's somaxconn allows), not gevent's 128: what `ss -ltn`
    shows as its Send-Q, and what /metrics reports as chatd_listen_queue_size."""
    env = {"CHATD_SERVER_LISTEN_BACKLOG": backlog} if backlog else {}
    chatd = Chatd("sqlite:///%s" % (tmp_path / "chat.db"), env=env).start()
    try:
        shown = subprocess.run(["ss", "-ltnH", "sport = :%d" % chatd.port], capture_output=True,
                               text=True, check=True).stdout.split()
        somaxconn = int(open("/proc/sys/net/core/somaxconn").read())
        assert int(shown[2]) == min(int(backlog or 65535), somaxconn), shown
        metrics = Client(chatd, register=False).get("/metrics").text
        assert "chatd_listen_queue_size %s.0" % shown[2] in metrics
        assert "chatd_listen_queue 0.0" in metrics  # nothing waits: chatd accepts at once
    finally:
        chatd.stop()
