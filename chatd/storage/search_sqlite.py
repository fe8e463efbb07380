"""Search on SQLite: an FTS5 table kept by triggers on the message table.

The FTS5 table is contentless (the text lives in `message` only) and holds
two columns: the text and a `room` tag ("r12"), so a search within one
room intersects two posting lists instead of filtering every match.
Its rowid is message.id, which grows with every message stored: newest
first is rowid descending, which FTS5 walks without sorting, and the
cursor is the last rowid of a page (messages that arrive later have larger
ids and never shift later pages).

Tokenizer unicode61 with remove_diacritics 2: case and accents are folded
(`é`, `e`, `E` are one letter), words are runs of letters and digits in any
script. It does not segment CJK: a run of Han, kana or Hangul without spaces
is one word, found by its whole or its beginning (prefix), not by a word
inside it.

A new message is indexed a moment after it is stored, not in its own
transaction: `catch_up` indexes every message above a watermark
(`message_fts_state.indexed_upto`, message ids being assigned in commit
order by SQLite's single writer) in one transaction, which the message
writer runs on its thread every CATCH_UP_EVERY seconds or INDEX_BATCH
messages, and before every search, so a search finds what its caller has
just sent. Indexed in the message's own transaction, FTS5 wrote a small
segment per group commit and merged them again: a third of a core's
capacity at the fan-out benchmark's rate; in batches of hundreds it costs
a fraction of that (docs/performance.md).

Triggers keep what is indexed current, in the changing transaction: an
edit re-indexes the current text, a deletion (text erased, deleted set)
or a purge takes the message out. A contentless table must be told the
exact values it indexed to delete them: the triggers touch only messages
at or below the watermark that are not deleted; one above it is indexed
by the catch-up with its text at that time.
"""
from . import models

TOKENIZER = "unicode61 remove_diacritics 2"

# Prefix indexes for 2 and 3 characters: without them a short last word
# ("he", "hel") merges the posting lists of every word it begins, tens of
# ms at a million messages; with them, under a ms, for twice the index size
# and insert work (figures: bench/search_latency.py).
PREFIXES = "2 3"
_TABLE = ("CREATE VIRTUAL TABLE message_fts USING fts5(text, room, content='', "
          "tokenize='%s', prefix='%s')" % (TOKENIZER, PREFIXES))
_STATE = ("CREATE TABLE message_fts_state (id INTEGER PRIMARY KEY CHECK (id = 1), "
          "indexed_upto INTEGER NOT NULL)")
_UPTO = "(SELECT indexed_upto FROM message_fts_state)"
_NEWEST = "(SELECT coalesce(max(id), 0) FROM message)"
_INDEX = "INSERT INTO message_fts(rowid, text, room) SELECT {m}.id, {m}.text, 'r' || {m}.room_id"
_UNINDEX = ("INSERT INTO message_fts(message_fts, rowid, text, room) "
            "SELECT 'delete', {m}.id, {m}.text, 'r' || {m}.room_id")
_INDEXED = " WHERE NOT {m}.deleted AND {m}.id <= " + _UPTO
_TRIGGERS = (
    "CREATE TRIGGER message_fts_delete AFTER DELETE ON message BEGIN "
    + _UNINDEX.format(m="old") + _INDEXED.format(m="old") + "; "
    # SQLite gives a new row the largest id + 1: once the largest is gone, the
    # next message takes its id again, and must not fall under the watermark.
    "UPDATE message_fts_state SET indexed_upto = " + _NEWEST
    + " WHERE indexed_upto > " + _NEWEST + "; END",
    "CREATE TRIGGER message_fts_update AFTER UPDATE OF text, deleted ON message BEGIN "
    + _UNINDEX.format(m="old") + _INDEXED.format(m="old") + "; "
    + _INDEX.format(m="new") + _INDEXED.format(m="new") + "; END",
)
# 0.2.0's triggers, replaced at every start: that release indexed on insert.
_OLD_TRIGGERS = ("message_fts_insert", "message_fts_delete", "message_fts_update")
_FILL = _INDEX.format(m="message") + " FROM message WHERE NOT message.deleted"
_CATCH_UP = (_INDEX.format(m="message") + " FROM message WHERE message.id > ? "
             "AND message.id <= ? AND NOT message.deleted")
_BATCH = "SELECT count(*), max(id) FROM (SELECT id FROM message WHERE id > ? ORDER BY id LIMIT ?)"

_SEARCH = (
    'SELECT m."id", m."room_id", r."name", m."seq", u."username", m."text", m."created_at" '
    'FROM message_fts f CROSS JOIN "message" m ON m."id" = f.rowid '
    'JOIN "room" r ON r."id" = m."room_id" '
    'LEFT OUTER JOIN "user" u ON u."id" = m."sender_id" '
    'WHERE message_fts MATCH ? AND f.rowid < ? AND NOT m."deleted" AND {rooms} '
    'ORDER BY f.rowid DESC LIMIT ?')
_ALL_ROOMS = 'm."room_id" IN (SELECT "room_id" FROM "membership" WHERE "user_id" = ?)'
_ONE_ROOM = 'm."room_id" = ?'
NO_CURSOR = 2 ** 62


def ensure(database):
    """The FTS5 table, its watermark and triggers. A new table is filled from the
    stored messages; so is one from 0.2.0, which indexed every message as stored."""
    if not _exists(database, "message_fts"):
        database.execute_sql(_TABLE)
        database.execute_sql(_FILL)
    if not _exists(database, "message_fts_state"):
        database.execute_sql(_STATE)
        database.execute_sql("INSERT INTO message_fts_state (id, indexed_upto) VALUES (1, %s)"
                             % _NEWEST)
    for name in _OLD_TRIGGERS:
        database.execute_sql("DROP TRIGGER IF EXISTS %s" % name)
    for sql in _TRIGGERS:
        database.execute_sql(sql)


def _exists(database, table):
    return database.execute_sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                (table,)).fetchone() is not None


def catch_up(database, limit):
    """Index up to `limit` messages above the watermark; how many it took.

    Run inside a write transaction (IMMEDIATE: the watermark and the texts
    read are the ones the triggers of later changes will see).
    """
    upto = database.execute_sql("SELECT indexed_upto FROM message_fts_state").fetchone()[0]
    taken, top = database.execute_sql(_BATCH, (upto, limit)).fetchone()
    if taken:
        database.execute_sql(_CATCH_UP, (upto, top))
        database.execute_sql("UPDATE message_fts_state SET indexed_upto = ?", (top,))
    return taken


def rebuild(database):
    """Index every stored message afresh (one transaction: writers wait for it)."""
    with database.atomic():
        ensure(database)
        database.execute_sql("INSERT INTO message_fts(message_fts) VALUES ('delete-all')")
        database.execute_sql(_FILL)
        database.execute_sql("UPDATE message_fts_state SET indexed_upto = " + _NEWEST)
        database.execute_sql("INSERT INTO message_fts(message_fts) VALUES ('optimize')")


def match_expression(query, room_pk=None):
    """The FTS5 query: every word in the text column, the last as a prefix.

    Words are runs of letters and digits (searchquery), so quoting each one
    is enough to keep FTS5's own syntax out of it.
    """
    terms = ['text : "%s"' % word for word in query.words]
    terms.append('text : "%s"*' % query.prefix)
    if room_pk is not None:
        terms.append('room : "r%d"' % room_pk)
    return " AND ".join(terms)


def search(user_pk, query, room_pk, before, limit):
    """(id, room_pk, room name, seq, sender, text, created_at) rows, newest first.

    room_pk None: the rooms `user_pk` is in; else that one room (the caller
    checked membership). before: only messages with id below it.
    """
    rooms = _ONE_ROOM if room_pk is not None else _ALL_ROOMS
    params = [match_expression(query, room_pk), NO_CURSOR if before is None else before,
              room_pk if room_pk is not None else user_pk, limit]
    return models.proxy.obj.execute_sql(_SEARCH.format(rooms=rooms), params).fetchall()
