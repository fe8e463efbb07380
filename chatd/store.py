"""Queries shared by the rules (ops) and live delivery (hub): messages as events."""
import time

import peewee as pw

from .models import Message, User

DELETED_SENDER = "[deleted]"


def now_ms():
    return int(time.time() * 1000)


_second = [None, ""]  # the last second formatted: messages come many per second


def iso(ms):
    """RFC 3339 UTC with milliseconds and a Z."""
    second = ms // 1000
    if _second[0] != second:
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))]
    return "%s%03dZ" % (_second[1], ms % 1000)


def room_key(room_pk):
    return "room_%d" % room_pk


def message_event(room_pk, seq, sender, text, created_at, client_msg_id):
    event = {"action": "new-message", "roomId": room_key(room_pk), "id": seq,
             "sender": sender or DELETED_SENDER, "message": text,
             "timestamp": iso(created_at)}
    if client_msg_id is not None:
        event["clientMsgId"] = client_msg_id
    return event


def _message_rows(query):
    return (query.select(Message.room, Message.seq, User.username, Message.text,
                         Message.created_at, Message.client_msg_id)
            .join(User, pw.JOIN.LEFT_OUTER, on=(Message.sender == User.id))
            .tuples())


def events_between(room_pk, after_seq, upto_seq=None, limit=1000):
    """new-message events of a room with after_seq < id <= upto_seq, in id order."""
    query = Message.select().where((Message.room == room_pk) & (Message.seq > after_seq))
    if upto_seq is not None:
        query = query.where(Message.seq <= upto_seq)
    rows = _message_rows(query.order_by(Message.seq).limit(limit))
    return [message_event(*row) for row in rows]


def history_page(room_pk, limit, before=None, after=None):
    """(oldest-first events, whether more exist beyond the page)."""
    query = Message.select().where(Message.room == room_pk)
    if before is not None:
        query = query.where(Message.seq < before)
    if after is not None:
        query = query.where(Message.seq > after)
        rows = list(_message_rows(query.order_by(Message.seq).limit(limit + 1)))
    else:
        rows = list(_message_rows(query.order_by(Message.seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return [message_event(*row) for row in rows], more

