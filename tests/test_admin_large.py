"""chat-admin on a database with a million messages: flat memory, rate, interruption, purge."""
import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from admin_tool import CHAT_ADMIN, chat_admin, ok
from helpers import GENEROUS
from helpers import Chatd, Client

ROOMS, PER_ROOM = 4, 250000
BASE_MS = 1700000000000  # message seq s of every room was sent at BASE_MS + 10 * s
TEXT = 'message %d: commas, "quotes", a newline\nand émoji 🎉 — padded to a usual chat length'


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A SQLite database of 4 rooms x 250,000 messages, written in one transaction."""
    path = tmp_path_factory.mktemp("big") / "big.db"
    ok(chat_admin("sqlite:///%s" % path, "db", "migrate"))
    db = sqlite3.connect(str(path))
    with db:
        db.execute("INSERT INTO user (id, username, username_key, created_at, disabled) "
                   "VALUES (1, 'loader', 'loader', 0, 0)")
        db.executemany("INSERT INTO room (id, name, name_key, created_at, last_seq) "
                       "VALUES (?, ?, ?, 0, ?)",
                       [(r, "Room %d" % r, "room %d" % r, PER_ROOM) for r in range(1, ROOMS + 1)])
        db.executemany("INSERT INTO message (room_id, seq, sender_id, text, created_at) "
                       "VALUES (?, ?, 1, ?, ?)",
                       ((r, s, TEXT % s, BASE_MS + 10 * s)
                        for r in range(1, ROOMS + 1) for s in range(1, PER_ROOM + 1)))
    db.close()
    return path


PEAK_RSS = ("import resource, subprocess, sys\n"
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
            "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def export_peak_rss_mb(path, *args):
    """Run an export as the only child of a fresh process: (seconds, its peak RSS in MB)."""
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, CHAT_ADMIN, "--database",
                          "sqlite:///%s" % path, "history", "export"] + list(args),
                         capture_output=True, text=True, timeout=300, check=True).stdout
    code, rss_kb = map(int, out.split())
    assert code == 0
    return time.monotonic() - started, rss_kb / 1024


def test_export_of_a_million_messages_streams_in_flat_memory(big, tmp_path):
    out = tmp_path / "all.jsonl"
    seconds, peak_all = export_peak_rss_mb(big, "--all", "--output", str(out))
    _, peak_one = export_peak_rss_mb(big, "room_1", "--output", str(tmp_path / "one.jsonl"))
    print("\nexport: %d messages in %.1f s = %.0f messages/s, peak RSS %.0f MB "
          "(one room of %d: %.0f MB)" % (ROOMS * PER_ROOM, seconds, ROOMS * PER_ROOM / seconds,
                                         peak_all, PER_ROOM, peak_one))
    assert peak_all < 100
    assert peak_all - peak_one < 10  # four times the messages, the same memory
    with open(out, encoding="utf-8") as f:
        first = json.loads(f.readline())
        count = 1 + sum(1 for _ in f)
    assert count == ROOMS * PER_ROOM
    assert first == {"roomId": "room_1", "roomName": "Room 1", "id": 1, "sender": "loader",
                     "message": TEXT % 1, "timestamp": "2023-11-14T22:13:20.010Z",
                     "clientMsgId": None, "editedAt": None, "replyTo": None, "mentions": [],
                     "reactions": []}


def test_an_interrupted_export_leaves_no_file(big, tmp_path):
    out = tmp_path / "all.jsonl"
    proc = subprocess.Popen([CHAT_ADMIN, "--database", "sqlite:///%s" % big, "history",
                             "export", "--all", "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 1 << 20 for p in tmp_path.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "export ended early"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1 and stdout == "" and "Aborted" in stderr
    assert list(tmp_path.iterdir()) == []


def test_purge_in_batches_lets_a_live_chatd_keep_writing(big):
    url = "sqlite:///%s" % big
    server = Chatd(url, env=GENEROUS).start()
    try:
        alice = Client(server)
        assert alice.post("/api/join-room", {"roomId": "room_4"}).status_code == 200
        sock = alice.ws(join="room_4")
        cutoff = "2023-11-14T22:34:10.010Z"  # message 125001's time: purge 1..125000
        purge = subprocess.Popen([CHAT_ADMIN, "--database", url, "history", "purge", "room_4",
                                  "--before", cutoff, "--yes"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        waits, ids = [], []
        while purge.poll() is None and len(waits) < 10000:
            started = time.monotonic()
            sock.say("room_4", "during purge %d" % len(waits))
            ids.append(sock.expect("new-message", message="during purge %d" % len(waits))["id"])
            waits.append(time.monotonic() - started)
        stdout, stderr = purge.communicate(timeout=120)
        assert (purge.returncode, stdout, stderr) == (0, "purged 125000 messages from room_4\n", "")
        print("\npurge of 125,000 messages: %d messages stored meanwhile, slowest ack %.3f s"
              % (len(waits), max(waits)))
        assert len(waits) >= 5  # chatd kept storing while the purge ran (figure: bench)
        assert ids[0] > PER_ROOM and ids == list(range(ids[0], ids[0] + len(ids)))
        first = alice.get("/api/chat-history/room_4?after=0&limit=1").json()["messages"]
        assert first[0]["id"] == 125001
    finally:
        server.stop()
