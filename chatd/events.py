"""The wire shapes of stored messages and presence, each built in one place.

A stored message is a row in storage.messages.MessageRow's order:
(room_pk, seq, sender or None, text, created_at ms, client_msg_id or None).
The WebSocket's new-message event and an HTTP history item are both made
from it here, so the two cannot drift apart.
"""
import time

from .keys import room_key

DELETED_SENDER = "[deleted]"

# The last second formatted, as one immutable pair: messages come many per
# second. It is read and replaced whole (one reference swap) because iso runs
# both on the event loop and on the SQLite writer's thread: a pair updated in
# place could be read half old, half new, and stamp a message with the wrong second.
_last_second = (None, "")


def iso(ms):
    """RFC 3339 UTC with milliseconds and a Z."""
    global _last_second
    second = ms // 1000
    cached = _last_second
    if cached[0] != second:
        cached = _last_second = (second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)))
    return "%s%03dZ" % (cached[1], ms % 1000)


def history_item(row):
    """One message of GET /api/chat-history (PROTOCOL section 2)."""
    _room_pk, seq, sender, text, created_at, client_msg_id = row
    item = {"id": seq, "sender": sender or DELETED_SENDER, "message": text,
            "timestamp": iso(created_at)}
    if client_msg_id is not None:
        item["clientMsgId"] = client_msg_id
    return item


def new_message(row):
    """The new-message event (PROTOCOL section 3): a history item with its room and seq."""
    event = {"action": "new-message", "roomId": room_key(row[0]), "seq": row[1]}
    event.update(history_item(row))
    return event


def change(kind, room_pk, seq, created_at, **fields):
    """Any other sequenced event of a room's log (message-edited, member-added ...):
    roomId, seq and timestamp, then the event's own fields."""
    event = {"action": kind, "roomId": room_key(room_pk), "seq": seq, "timestamp": iso(created_at)}
    event.update(fields)
    return event


def presence(action, room_pk, username):
    """user-joined or user-left."""
    return {"action": action, "username": username, "roomId": room_key(room_pk)}
