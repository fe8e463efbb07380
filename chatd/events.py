"""The wire shapes of stored messages and presence, each built in one place.

A stored message is a storage.messages.MessageRow; an entry of a room's log
a storage.messages.LogRow. The WebSocket's events, an HTTP history item and
a `since` replay are all made from them here, so they cannot drift apart.
"""
import time

from .keys import room_key
from .storage.messages import MessageRow

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


def history_item(row, reactions=None):
    """One message of GET /api/chat-history (PROTOCOL sections 2 and 7).

    reactions: [(emoji, [usernames])...] in the order each emoji was first added.
    """
    item = {"id": row.seq, "sender": row.sender or DELETED_SENDER, "message": row.text,
            "timestamp": iso(row.created_at)}
    _add_optional(item, row)
    if row.edited_at is not None:
        item["editedAt"] = iso(row.edited_at)
    if reactions:
        item["reactions"] = [{"emoji": emoji, "count": len(users), "users": users}
                             for emoji, users in reactions]
    return item


def new_message(row):
    """The new-message event (PROTOCOL sections 3 and 7) of a message just stored."""
    event = {"action": "new-message", "roomId": room_key(row.room_pk), "seq": row.seq,
             "id": row.seq, "sender": row.sender or DELETED_SENDER, "message": row.text,
             "timestamp": iso(row.created_at)}
    _add_optional(event, row)
    return event


def _add_optional(shape, row):
    """The fields a stored message has only when they apply, alike in both shapes."""
    if row.client_msg_id is not None:
        shape["clientMsgId"] = row.client_msg_id
    if row.reply_to is not None:
        shape["replyTo"] = row.reply_to
    if row.mentions:
        shape["mentions"] = row.mentions
    if row.bot:
        shape["bot"] = True


def change(kind, room_pk, seq, created_at, **fields):
    """Any other sequenced event of a room's log (message-edited, member-added ...):
    roomId, seq and timestamp, then the event's own fields."""
    event = {"action": kind, "roomId": room_key(room_pk), "seq": seq, "timestamp": iso(created_at)}
    event.update(fields)
    return event


def message_edited(room_pk, seq, created_at, message_seq, sender, text, mentions):
    fields = {"id": message_seq, "sender": sender or DELETED_SENDER, "message": text}
    if mentions:
        fields["mentions"] = mentions
    return change("message-edited", room_pk, seq, created_at, **fields)


def logged(room_pk, row):
    """The event of one entry of a room's log (a storage.messages.LogRow), as a
    `since` replay, gap repair and /events send it: a deleted message's text
    is gone, so its new-message and message-edited say "message": "" and "deleted": true."""
    if row.kind == "new-message":
        event = new_message(MessageRow(room_pk, row.seq, row.who, row.text, row.created_at,
                                       row.client_msg_id, row.reply_to, row.mentions, row.bot))
    elif row.kind == "message-edited":
        event = message_edited(room_pk, row.seq, row.created_at, row.message_seq, row.who,
                               row.text or "", None if row.deleted else (row.data or {}).get(
                                   "mentions"))
    else:
        fields = {"id": row.message_seq} if row.message_seq is not None else {}
        fields.update(row.data or {})
        return change(row.kind, room_pk, row.seq, row.created_at, **fields)
    if row.deleted:
        event["message"] = ""
        event["deleted"] = True
        event.pop("mentions", None)
    return event


def presence(action, room_pk, username):
    """user-joined or user-left."""
    return {"action": action, "username": username, "roomId": room_key(room_pk)}
