"""The SQLite store shared by the reference peers: one table, WAL.

Each room's messages are numbered (seq, from 1) so a client can resume with
`since` as chatd's do (storm.py); the peers are single-threaded, so the
next number is kept in memory.

synchronous=NORMAL is the usual setting with WAL: a commit survives a killed
process (what PROTOCOL.md's guarantee is about), not a power cut. With FULL,
each commit waits for an fsync (about 260 us on this machine's disk), which
would cap every peer at about 4,000 messages/s whatever its WebSocket stack.
"""
import os
import sqlite3
import tempfile
from datetime import datetime, timezone

SCHEMA = """
CREATE TABLE IF NOT EXISTS message (
    id INTEGER PRIMARY KEY,
    room_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    sender TEXT NOT NULL,
    message TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    client_msg_id TEXT
)"""
INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS message_room_seq ON message (room_id, seq)"
last_seq = {}  # room_id -> the last seq stored


def open_db(path=None, synchronous="NORMAL"):
    """Open (or create) the message database; a fresh temp file by default."""
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="bench-peer-"), "peer.db")
    db = sqlite3.connect(path, isolation_level=None)  # autocommit: one insert = one commit
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=" + synchronous)
    db.execute(SCHEMA)
    db.execute(INDEX)
    return db


def now_rfc3339():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def store_message(db, room_id, sender, text, client_msg_id):
    """Insert one message and return its new-message event as a dict."""
    ts = now_rfc3339()
    seq = next_seq(db, room_id)
    cur = db.execute(
        "INSERT INTO message (room_id, seq, sender, message, timestamp, client_msg_id)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (room_id, seq, sender, text, ts, client_msg_id))
    return event_of(room_id, seq, cur.lastrowid, sender, text, ts, client_msg_id)


def next_seq(db, room_id):
    last = last_seq.get(room_id)
    if last is None:
        last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM message WHERE room_id = ?",
                          (room_id,)).fetchone()[0]
    last_seq[room_id] = last + 1
    return last + 1


def event_of(room_id, seq, message_id, sender, text, ts, client_msg_id):
    event = {"action": "new-message", "roomId": room_id, "seq": seq, "id": message_id,
             "sender": sender, "message": text, "timestamp": ts}
    if client_msg_id is not None:
        event["clientMsgId"] = client_msg_id
    return event


def messages_since(db, room_id, since):
    """The room's new-message events after seq `since`, in order."""
    rows = db.execute("SELECT seq, id, sender, message, timestamp, client_msg_id FROM message"
                      " WHERE room_id = ? AND seq > ? ORDER BY seq", (room_id, since))
    return [event_of(room_id, *row) for row in rows]


def announce(host, port):
    """The line run_fanout.py (and chatd's own runner) waits for."""
    import sys
    print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)
