"""Message queries shared by the rules (ops) and the archive: rows, not wire shapes.

Rows come in MessageRow's order; chatd.events turns them into events.
"""
import collections

from . import models

MessageRow = collections.namedtuple(
    "MessageRow", "room_pk seq sender text created_at client_msg_id")


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


def rows_between(room_pk, after_seq, upto_seq=None, limit=1000):
    """Rows of a room's messages with after_seq < id <= upto_seq, in id order."""
    below = None if upto_seq is None else upto_seq + 1
    return _message_rows(room_pk, after_seq, below, limit)


def history_page(room_pk, limit, before=None, after=None):
    """(oldest-first rows, whether more exist beyond the page)."""
    if after is not None:
        rows = _message_rows(room_pk, after, before, limit + 1)
    else:
        rows = _message_rows(room_pk, None, before, limit + 1, newest_first=True)
    more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return rows, more
