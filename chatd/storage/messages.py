"""Queries shared by the rules (ops) and live delivery (hub): messages as events."""
import time

from . import models

DELETED_SENDER = "[deleted]"


def now_ms():
    return int(time.time() * 1000)


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


def room_key(room_pk):
    return "room_%d" % room_pk


def message_event(room_pk, seq, sender, text, created_at, client_msg_id):
    event = {"action": "new-message", "roomId": room_key(room_pk), "id": seq,
             "sender": sender or DELETED_SENDER, "message": text,
             "timestamp": iso(created_at)}
    if client_msg_id is not None:
        event["clientMsgId"] = client_msg_id
    return event


# Message pages are read on every history request, join and gap repair:
# their SQL is written once per shape (peewee would build it per call, most
# of the request's time). Each bound is in the SQL only when given, so the
# (room, seq) index serves it as a range.
_SQL = {}


def _message_rows(room_pk, above, below, limit, newest_first=False):
    """Rows of a room's messages with above < id < below (None: open), by id."""
    db = models.proxy.obj
    shape = (above is not None, below is not None, newest_first, db.param)
    sql = _SQL.get(shape)
    if sql is None:
        sql = _SQL[shape] = (
            'SELECT m."room_id", m."seq", u."username", m."text", m."created_at", '
            'm."client_msg_id" FROM "message" AS m LEFT OUTER JOIN "user" AS u '
            'ON m."sender_id" = u."id" WHERE m."room_id" = ?'
            + (' AND m."seq" > ?' if shape[0] else '') + (' AND m."seq" < ?' if shape[1] else '')
            + ' ORDER BY m."seq" ' + ('DESC' if newest_first else 'ASC') + ' LIMIT ?'
        ).replace("?", db.param)
    params = [room_pk] + [bound for bound in (above, below) if bound is not None] + [limit]
    return db.execute_sql(sql, params).fetchall()


def events_between(room_pk, after_seq, upto_seq=None, limit=1000):
    """new-message events of a room with after_seq < id <= upto_seq, in id order."""
    below = None if upto_seq is None else upto_seq + 1
    rows = _message_rows(room_pk, after_seq, below, limit)
    return [message_event(*row) for row in rows]


def history_page(room_pk, limit, before=None, after=None):
    """(oldest-first events, whether more exist beyond the page)."""
    if after is not None:
        rows = _message_rows(room_pk, after, before, limit + 1)
    else:
        rows = _message_rows(room_pk, None, before, limit + 1, newest_first=True)
    more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return [message_event(*row) for row in rows], more
