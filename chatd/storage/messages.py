"""Message queries shared by the rules (ops) and the archive: rows, not wire shapes.

Rows come in MessageRow's and LogRow's order; chatd.events turns them into events.
"""
import collections
import json

from . import models
from .models import Membership, Mention, Message, Reaction, RoomEvent, User

# A message as stored. The last fields have defaults: the hot path fills
# only what a new message has.
MessageRow = collections.namedtuple(
    "MessageRow", "room_pk seq sender text created_at client_msg_id "
                  "reply_to mentions bot edited_at deleted",
    defaults=(None, None, False, None, False))

# One entry of a room's log: a message's row (kind 'new-message') or a
# RoomEvent row, merged by seq. `deleted`: the message was deleted (its
# new-message) or the edit's text was erased (message-edited).
LogRow = collections.namedtuple(
    "LogRow", "seq kind who text created_at client_msg_id reply_to mentions deleted bot "
              "message_seq data")


# Message pages are read on every history request, join and gap repair:
# their SQL is written once per shape (peewee would build it per call, most
# of the request's time). Each bound is in the SQL only when given, so the
# (room, seq) index serves it as a range.
_SQL = {}


def _query(shape, build, params):
    """Rows of the SQL for `shape`, which build(shape) writes the first time it is asked for."""
    sql = _SQL.get(shape)
    if sql is None:
        sql = _SQL[shape] = build(shape)
    return models.execute(sql, params).fetchall()


def _message_rows(room_pk, above, below, limit, newest_first=False):
    """Live (not deleted) messages of a room with above < id < below (None: open), by id."""
    shape = ("page", above is not None, below is not None, newest_first)
    params = [room_pk] + [bound for bound in (above, below) if bound is not None] + [limit]
    return [_message_row(row) for row in _query(shape, _page_sql, params)]


def _page_sql(shape):
    _, above, below, newest_first = shape
    return (
        'SELECT m."room_id", m."seq", u."username", m."text", m."created_at", '
        'm."client_msg_id", m."reply_to", m."mentions", u."bot", m."edited_at", m."deleted" '
        'FROM "message" AS m LEFT OUTER JOIN "user" AS u '
        'ON m."sender_id" = u."id" WHERE m."room_id" = ?'
        + (' AND m."seq" > ?' if above else '') + (' AND m."seq" < ?' if below else '')
        + ' AND NOT m."deleted" ORDER BY m."seq" ' + ('DESC' if newest_first else 'ASC')
        + ' LIMIT ?')


def _message_row(row):
    mentions = json.loads(row[7]) if row[7] else None
    return MessageRow(*row[:7], mentions, bool(row[8]), row[9], bool(row[10]))


def history_page(room_pk, limit, before=None, after=None):
    """(oldest-first rows of live messages, whether more exist beyond the page)."""
    if after is not None:
        rows = _message_rows(room_pk, after, before, limit + 1)
    else:
        rows = _message_rows(room_pk, None, before, limit + 1, newest_first=True)
    more = len(rows) > limit
    rows = rows[:limit]
    if after is None:
        rows.reverse()
    return rows, more


_REACTIONS = (
    'SELECT r."message_seq", r."emoji", u."username" FROM "reaction" AS r '
    'JOIN "user" AS u ON r."user_id" = u."id" WHERE r."room_id" = ? '
    'AND r."message_seq" >= ? AND r."message_seq" <= ? ORDER BY r."id"')


def reactions_of(room_pk, first_seq, last_seq):
    """{message seq: [(emoji, [usernames])...]} for the messages in [first, last]:
    emojis in the order each was first added, users in the order they reacted."""
    found = {}
    for seq, emoji, username in models.execute(_REACTIONS, (room_pk, first_seq, last_seq)):
        found.setdefault(seq, {}).setdefault(emoji, []).append(username)
    return {seq: list(emojis.items()) for seq, emojis in found.items()}


def log_rows(room_pk, after_seq, upto_seq=None, limit=1000):
    """The room's log with after_seq < seq <= upto_seq (None: open), in seq order:
    messages and room_event rows merged."""
    bounds = [room_pk, after_seq] + ([upto_seq] if upto_seq is not None else [])
    rows = _query(("log", upto_seq is not None), _log_sql, bounds + bounds + [limit])
    return [LogRow(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                   json.loads(row[7]) if row[7] else None, bool(row[8]), bool(row[9]),
                   row[10], json.loads(row[11]) if row[11] else None) for row in rows]


def _log_sql(shape):
    upto = ' AND "seq" <= ?' if shape[1] else ''
    return (
        'SELECT m."seq", \'new-message\', u."username", m."text", m."created_at", '
        'm."client_msg_id", m."reply_to", m."mentions", m."deleted", u."bot", '
        'CAST(NULL AS BIGINT), CAST(NULL AS TEXT) '
        'FROM "message" AS m LEFT OUTER JOIN "user" AS u ON m."sender_id" = u."id" '
        'WHERE m."room_id" = ? AND m."seq" > ?' + upto.replace('"seq"', 'm."seq"') +
        ' UNION ALL '
        'SELECT e."seq", e."kind", u."username", e."text", e."created_at", '
        'CAST(NULL AS TEXT), CAST(NULL AS BIGINT), CAST(NULL AS TEXT), '
        'e."kind" = \'message-edited\' AND e."text" IS NULL, CAST(NULL AS BOOLEAN), '
        'e."message_seq", e."data" '
        'FROM "roomevent" AS e LEFT OUTER JOIN "user" AS u ON e."actor_id" = u."id" '
        'WHERE e."room_id" = ? AND e."seq" > ?' + upto.replace('"seq"', 'e."seq"') +
        ' ORDER BY 1 LIMIT ?')


# -- changes to messages (inside the operation's transaction) -------------------------
def live_message(room_pk, seq):
    """(sender pk, deleted) of the message, or None if the room has no such message."""
    return (Message.select(Message.sender, Message.deleted)
            .where((Message.room == room_pk) & (Message.seq == seq)).tuples().first())


def set_text(room_pk, seq, text, mentions, edited_at):
    (Message.update(text=text, mentions=_mentions_json(mentions), edited_at=edited_at)
     .where((Message.room == room_pk) & (Message.seq == seq)).execute())


def set_mentions(room_pk, seq, user_pks):
    """Replace who the message mentions (Mention rows)."""
    Mention.delete().where((Mention.room == room_pk) & (Mention.message_seq == seq)).execute()
    if user_pks:
        Mention.insert_many([(pk, room_pk, seq) for pk in user_pks],
                            fields=[Mention.user, Mention.room, Mention.message_seq]).execute()


def erase(room_pk, seq, deleted_by_pk):
    """Delete a message: its text and every earlier version, its reactions and mentions."""
    (Message.update(text="", mentions=None, deleted=True, deleted_by=deleted_by_pk)
     .where((Message.room == room_pk) & (Message.seq == seq)).execute())
    (RoomEvent.update(text=None)
     .where((RoomEvent.room == room_pk) & (RoomEvent.message_seq == seq) &
            RoomEvent.text.is_null(False)).execute())
    Reaction.delete().where((Reaction.room == room_pk) & (Reaction.message_seq == seq)).execute()
    set_mentions(room_pk, seq, ())


def add_reaction(room_pk, seq, user_pk, emoji):
    """True if stored; False if the user already had it."""
    return _changed('INSERT INTO "reaction" ("room_id", "message_seq", "user_id", "emoji", '
                    '"created_at") VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING "id"',
                    (room_pk, seq, user_pk, emoji, models.now_ms()))


def remove_reaction(room_pk, seq, user_pk, emoji):
    """True if removed; False if the user had no such reaction."""
    return _changed('DELETE FROM "reaction" WHERE "room_id" = ? AND "message_seq" = ? AND '
                    '"user_id" = ? AND "emoji" = ? RETURNING "id"', (room_pk, seq, user_pk, emoji))


def _changed(sql, params):
    return models.execute(sql, params).fetchone() is not None


def _mentions_json(mentions):
    return json.dumps(mentions, ensure_ascii=False, separators=(",", ":")) if mentions else None


def members_named(room_pk, keys):
    """{lower-cased username: (username as registered, user pk)} of the room's members
    among `keys` (lower-cased names): a mention reads only the names it holds, not
    every member of a large room."""
    rows = (User.select(User.username_key, User.username, User.id).join(Membership)
            .where((Membership.room == room_pk) & User.username_key.in_(list(keys))).tuples())
    return {key: (name, pk) for key, name, pk in rows}
