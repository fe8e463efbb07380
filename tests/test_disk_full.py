"""SQLite on a full disk: /healthz says so, and the log says it without a flood.

The disk is a small tmpfs mounted for the test (root only: elsewhere the test
skips and says why).
"""
import os
import subprocess

import pytest
import requests

from helpers import Chatd, Client, wait_for

DISK_BYTES = 8 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % DISK_BYTES, "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here: %s" % done.stderr.strip())
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path):
    """Write `path` until the filesystem has no room left."""
    with open(path, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                out.write(b"\0" * 512)
        except OSError:
            pass


def health(server):
    return requests.get(server.url + "/healthz", timeout=5)


def test_healthz_is_503_on_a_full_disk_and_failures_do_not_flood_the_log(small_disk):
    chatd = Chatd("sqlite:///%s" % (small_disk / "chat.db")).start()
    try:
        user = Client(chatd)
        room = user.create_room()
        sock = user.ws(join=room)
        assert health(chatd).status_code == 200
        fill(small_disk / "filler")
        answer = health(chatd)
        assert answer.status_code == 503 and answer.json()["database"] == "down"
        for n in range(20):
            sock.say(room, "on a full disk %d" % n)
            assert sock.expect("error")["ref"] == "send-message"
            assert user.post("/api/create-room", {"roomName": "full %d" % n}).status_code == 503
        os.unlink(small_disk / "filler")
        assert wait_for(lambda: health(chatd).status_code == 200, 5)
        sock.say(room, "room again")
        assert sock.expect("new-message")["message"] == "room again"
        sock.close()
    finally:
        chatd.stop()
    log = chatd.log()
    # 40 failures: at most the first is logged with a traceback, not one each.
    assert log.count("Traceback") <= 1, log
