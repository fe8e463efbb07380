"""The SQLite store shared by the reference peers: one table, WAL.

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
    sender TEXT NOT NULL,
    message TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    client_msg_id TEXT
)"""


def open_db(path=None, synchronous="NORMAL"):
    """Open (or create) the message database; a fresh temp file by default."""
    if path is None:
        path = os.path.join(tempfile.mkdtemp(prefix="bench-peer-"), "peer.db")
    db = sqlite3.connect(path, isolation_level=None)  # autocommit: one insert = one commit
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=" + synchronous)
    db.execute(SCHEMA)
    return db


def now_rfc3339():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def store_message(db, room_id, sender, text, client_msg_id):
    """Insert one message and return its new-message event as a dict."""
    ts = now_rfc3339()
    cur = db.execute(
        "INSERT INTO message (room_id, sender, message, timestamp, client_msg_id)"
        " VALUES (?, ?, ?, ?, ?)",
        (room_id, sender, text, ts, client_msg_id))
    event = {"action": "new-message", "roomId": room_id, "id": cur.lastrowid,
             "sender": sender, "message": text, "timestamp": ts}
    if client_msg_id is not None:
        event["clientMsgId"] = client_msg_id
    return event


def announce(host, port):
    """The line run_fanout.py (and chatd's own runner) waits for."""
    import sys
    print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)
