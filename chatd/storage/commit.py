"""Group commit: messages posted while a transaction runs share the next one.

The per-message path is the hot path, so its SQL is written once here, not
built by peewee per call. One batch = one transaction on one connection:
for each message a clientMsgId lookup (only when one was given), one
UPDATE of the room's sequence (which also checks membership and, on
PostgreSQL, row-locks the room so ids commit in order), one INSERT, and
the sender's read marker moved to the message (on PostgreSQL all of it
one statement). Mention rows cost a statement more, only for a message
that mentions someone.
Batches touch rooms in id order so processes never lock rooms in opposite
orders.

On SQLite two things follow the messages in catch-up transactions of
their own (INDEX_CHUNK messages each, posts committed between them), on
the writer's thread, CATCH_UP_EVERY seconds after the first message waits
or once INDEX_BATCH wait, and before anything reads them
(catch_up_now): the search index (storage.search_sqlite.catch_up), and
each sender's read marker, moved to the last message they sent (one UPDATE
per sender and room, not one per message). Written per message, the two
took a third and a fifth of the fan-out benchmark's capacity.
"""
import logging
import sqlite3
import time

import gevent
import gevent.event
import peewee as pw
from gevent.threadpool import ThreadPool

from . import models, search_sqlite
from .messages import MessageRow, _mentions_json
from .. import logs
from ..errors import Unavailable

log = logging.getLogger("chatd.commit")

NOT_ALLOWED = object()  # the UPDATE found no room this user is a member of
# A locked SQLite file (chat-admin, a backup, a login's token write) is a wait,
# never a lost message: the whole batch is tried again, with backoff, this long.
LOCKED_RETRY_WAIT = 30.0  # seconds
LOCKED_BACKOFF = (0.02, 0.5)  # first and largest pause between tries
CATCH_UP_EVERY = 0.5  # seconds a new message waits at most to be indexed and mark its sender
INDEX_BATCH = 500  # messages waiting that start a catch-up at once
INDEX_CHUNK = 100  # messages indexed in one transaction: the longest a post waits behind one


class Post:
    __slots__ = ("user_pk", "username", "room_pk", "text", "client_msg_id", "reply_to",
                 "mentions", "mention_pks", "bot", "result")

    def __init__(self, user_pk, username, room_pk, text, client_msg_id, reply_to=None,
                 mentions=None, mention_pks=(), bot=False):
        """mentions: the usernames it mentions (None: none); mention_pks: their user pks."""
        self.user_pk = user_pk
        self.username = username
        self.room_pk = room_pk
        self.text = text
        self.client_msg_id = client_msg_id
        self.reply_to = reply_to
        self.mentions = mentions
        self.mention_pks = mention_pks
        self.bot = bot
        self.result = None

    def row(self, seq, text, created_at):
        return MessageRow(self.room_pk, seq, self.username, text, created_at, self.client_msg_id,
                          self.reply_to, self.mentions, self.bot)


class Statements:
    """The per-message SQL for one database's parameter style."""

    def __init__(self, db):
        def q(sql):
            return sql.replace("?", db.param)
        self.retry = q('SELECT "seq", "created_at", "text" FROM "message" WHERE "room_id" = ? '
                       'AND "sender_id" = ? AND "client_msg_id" = ?')
        self.bump = q('UPDATE "room" SET "last_seq" = "last_seq" + 1 WHERE "id" = ? AND EXISTS '
                      '(SELECT 1 FROM "membership" WHERE "room_id" = ? AND "user_id" = ?) '
                      'RETURNING "last_seq"')
        self.insert = q('INSERT INTO "message" ("room_id", "seq", "sender_id", "text", '
                        '"created_at", "client_msg_id", "reply_to", "mentions") '
                        'VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        self.mark = q('UPDATE "membership" SET "read_upto" = ? WHERE "room_id" = ? '
                      'AND "user_id" = ? AND "read_upto" < ?')
        self.mention = q('INSERT INTO "mention" ("user_id", "room_id", "message_seq") '
                         'VALUES (?, ?, ?)')
        # PostgreSQL takes all three in one statement: one round trip a message,
        # where each round trip is a wait on the network. Answers (is_new, seq,
        # created_at, text); no row means no room this user is a member of.
        self.post = None
        if isinstance(db, pw.PostgresqlDatabase):
            self.post = (
                'WITH prior AS (SELECT "seq", "created_at", "text" FROM "message" '
                'WHERE "room_id" = %(room)s AND "sender_id" = %(user)s '
                'AND "client_msg_id" = %(cmid)s), '
                'bumped AS (UPDATE "room" SET "last_seq" = "last_seq" + 1 '
                'WHERE "id" = %(room)s AND NOT EXISTS (SELECT 1 FROM prior) AND EXISTS '
                '(SELECT 1 FROM "membership" WHERE "room_id" = %(room)s AND "user_id" = %(user)s) '
                'RETURNING "last_seq"), '
                'stored AS (INSERT INTO "message" ("room_id", "seq", "sender_id", "text", '
                '"created_at", "client_msg_id", "reply_to", "mentions") SELECT %(room)s, '
                '"last_seq", %(user)s, %(text)s, %(now)s, %(cmid)s, %(reply)s, %(mentions)s '
                'FROM bumped RETURNING "seq", "created_at", "text"), '
                'marked AS (UPDATE "membership" SET "read_upto" = s."seq" FROM stored AS s '
                'WHERE "room_id" = %(room)s AND "user_id" = %(user)s AND "read_upto" < s."seq") '
                'SELECT TRUE, "seq", "created_at", "text" FROM stored '
                'UNION ALL SELECT FALSE, "seq", "created_at", "text" FROM prior')


class GroupCommit:
    """Collects posts from many greenlets; one writer greenlet commits them together."""

    def __init__(self, on_stored, max_batch=256):
        self.on_stored = on_stored  # called with each new message's MessageRow in commit order
        self.max_batch = max_batch
        self._queue = []
        self._wake = gevent.event.Event()
        self._writer = None
        self._sql = None
        self._thread_db = None  # SQLite: the writer thread's own connection
        self._thread = None
        self._checkpointer = None
        self._waiting = 0  # messages stored here since the last catch-up
        self._due = None  # when the next catch-up must run (monotonic); None: nothing waits
        self._marks = {}  # (room pk, sender pk) -> seq of their last message, not yet marked
        self._behind = False  # a catch-up has more chunks to go
        self._catch_up_failures = logs.Throttle(
            log, "catch-up (search index, senders' markers) failed (retried)")

    def submit(self, post):
        """Store one post; returns (MessageRow, is_new) or NOT_ALLOWED."""
        done = gevent.event.AsyncResult()
        self._queue.append((post, done))
        self._wake.set()
        if self._writer is None:
            self._writer = gevent.spawn(self._run)
        return done.get()

    def _run(self):
        while True:
            if not self._behind:
                due = self._due
                self._wake.wait(None if due is None else max(0.0, due - time.monotonic()))
                gevent.sleep(0)  # posts from greenlets that are ready join this batch
                self._wake.clear()
            while self._queue:
                batch = self._queue[:self.max_batch]
                del self._queue[:self.max_batch]
                self._commit(batch)
                self._catch_up_if_due()
            self._catch_up_if_due()

    # -- SQLite: the search index and the senders' markers follow -----------------
    def _stored(self, post, row):
        if self._thread is not None:  # PostgreSQL marks in the message's statement
            self._marks[(row.room_pk, post.user_pk)] = row.seq
            self._waiting += 1
            if self._due is None:
                self._due = time.monotonic() + CATCH_UP_EVERY

    def _catch_up_if_due(self):
        """A catch-up goes chunk by chunk, posts committed between its chunks."""
        if self._behind or (self._due is not None and (self._waiting >= INDEX_BATCH or
                                                       time.monotonic() >= self._due)):
            self._behind = self._catch_up()

    def _catch_up(self):
        """One catch-up transaction (a chunk) on the writer's thread; True if more wait."""
        marks, self._marks = self._marks, {}
        self._waiting, self._due = 0, None
        taken = self._thread.apply(self._catch_up_in_thread, (marks,))
        if isinstance(taken, Exception):
            self._catch_up_failures.failed(taken)
            for key, seq in marks.items():  # nothing moved: they wait for the next try
                self._marks[key] = max(seq, self._marks.get(key, 0))
            self._due = time.monotonic() + CATCH_UP_EVERY
            return False
        self._catch_up_failures.succeeded()
        return taken == INDEX_CHUNK

    def catch_up_now(self, index=True):
        """Index every message stored so far and mark its sender, before a search.

        index=False, before a read of markers: only if messages stored here
        wait, so reading markers takes no write lock when nothing changed
        (messages other processes wrote, an import, only the index needs).
        """
        self._open()
        if self._thread is None or (not index and self._due is None and not self._behind):
            return
        while self._catch_up():
            pass

    def _catch_up_in_thread(self, marks):
        """How many messages were indexed, or the database's error as a value."""
        db = self._thread_db
        try:
            with db.atomic(lock_type="IMMEDIATE"):
                if marks:
                    db.cursor().executemany(self._sql.mark, [
                        (seq, room_pk, user_pk, seq) for (room_pk, user_pk), seq in marks.items()])
                return search_sqlite.catch_up(db, INDEX_CHUNK)
        except (pw.DatabaseError, sqlite3.DatabaseError) as exc:
            return exc

    def _commit(self, batch):
        try:
            self._write([post for post, _ in batch])
        except (pw.IntegrityError, sqlite3.IntegrityError):
            # Another process stored the same clientMsgId in between: each
            # post alone now finds its original.
            for post, done in batch:
                self._commit_one(post, done)
            return
        except BaseException as exc:  # the database is away: every poster hears why
            for _, done in batch:
                done.set_exception(exc)
            return
        self._announce(batch)

    def _commit_one(self, post, done):
        try:
            self._write([post])
        except BaseException as exc:
            done.set_exception(exc)
            return
        self._announce([(post, done)])

    def _announce(self, batch):
        for post, done in batch:
            result = post.result
            if result is not NOT_ALLOWED and result[1]:
                self._stored(post, result[0])
                try:
                    self.on_stored(result[0])
                except Exception:  # stored is stored: the writer must live on
                    log.exception("live delivery of message %s failed", result[0].seq)
        for post, done in batch:
            done.set(post.result)

    def _write(self, posts):
        posts = sorted(posts, key=lambda p: p.room_pk)
        db = self._open()
        if self._thread_db is None:
            self._write_pooled(db, self._sql, posts)
            return
        try:
            self._write_retrying(posts)
        except (pw.OperationalError, sqlite3.OperationalError) as exc:
            raise Unavailable("The database is unavailable; try again.") from exc

    def _open(self):
        """The database; its statements and, on SQLite, the writer's thread, made once."""
        db = models.proxy.obj
        if self._sql is None:
            self._sql = Statements(db)
            self._thread_db = models.writer_database(db)
            if self._thread_db is not None:
                self._thread = ThreadPool(1)
                self._checkpointer = Checkpointer(db)
        return db

    def _write_retrying(self, posts):
        """The batch in the writer thread; again, after a pause, while the file is locked."""
        deadline = time.monotonic() + LOCKED_RETRY_WAIT
        pause = LOCKED_BACKOFF[0]
        while True:
            failed = self._thread.apply(self._write_in_thread, (posts,))
            if failed is None:
                return
            if not models.is_locked(failed) or time.monotonic() + pause >= deadline:
                raise failed
            if pause == LOCKED_BACKOFF[0]:
                log.warning("database locked; %d message(s) wait for it", len(posts))
            gevent.sleep(pause)
            pause = min(pause * 2, LOCKED_BACKOFF[1])

    def close(self):
        """Close the writer thread's connection (SQLite then drops its WAL file)."""
        if self._thread is not None:
            self._checkpointer.close()
            self._thread.apply(self._thread_db.close)
            self._thread.kill()
            self._thread = self._thread_db = self._sql = self._checkpointer = None

    @models.transaction
    def _write_pooled(self, db, sql, posts):
        self._write_posts(db, sql, posts)

    def _write_in_thread(self, posts):
        """None, or the database's error as a value: gevent's thread pool
        prints a traceback for every exception that leaves a task."""
        # IMMEDIATE: the write lock first. A deferred transaction that read
        # (the clientMsgId lookup) and then writes fails at once, without
        # waiting, when another connection committed in between.
        try:
            with self._thread_db.atomic(lock_type="IMMEDIATE"):
                self._write_posts(self._thread_db, self._sql, posts)
        except (pw.DatabaseError, sqlite3.DatabaseError) as exc:
            return exc
        return None

    def _write_posts(self, db, sql, posts):
        # The driver's own cursor: peewee's execute_sql adds nothing this path needs.
        cursor = db.cursor()
        for post in posts:
            post.result = self._write_one(cursor, sql, post)

    @staticmethod
    def _write_one(cursor, sql, post):
        if sql.post is not None:
            now = models.now_ms()
            cursor.execute(sql.post, {"room": post.room_pk, "user": post.user_pk,
                                      "cmid": post.client_msg_id, "text": post.text, "now": now,
                                      "reply": post.reply_to,
                                      "mentions": _mentions_json(post.mentions)})
            row = cursor.fetchone()
            if row is None:
                return NOT_ALLOWED
            if row[0] and post.mention_pks:
                GroupCommit._write_mentions(cursor, sql, post, row[1])
            return post.row(row[1], row[3], row[2]), row[0]
        if post.client_msg_id is not None:
            cursor.execute(sql.retry, (post.room_pk, post.user_pk, post.client_msg_id))
            row = cursor.fetchone()
            if row is not None:
                return post.row(row[0], row[2], row[1]), False
        cursor.execute(sql.bump, (post.room_pk, post.room_pk, post.user_pk))
        row = cursor.fetchone()
        if row is None:
            return NOT_ALLOWED
        seq, now = row[0], models.now_ms()
        cursor.execute(sql.insert, (post.room_pk, seq, post.user_pk, post.text, now,
                                    post.client_msg_id, post.reply_to,
                                    _mentions_json(post.mentions)))
        if post.mention_pks:
            GroupCommit._write_mentions(cursor, sql, post, seq)
        return post.row(seq, post.text, now), True

    @staticmethod
    def _write_mentions(cursor, sql, post, seq):
        cursor.executemany(sql.mention, [(pk, post.room_pk, seq) for pk in post.mention_pks])


class Checkpointer:
    """SQLite's WAL checkpoints, once a second, on a thread and connection of their own.

    A checkpoint copies the WAL into the database file and fsyncs it: done
    inside a commit (SQLite's default, every 1000 pages) it held up every
    message stored behind it for the length of an fsync. Here it is PASSIVE:
    it never waits for, nor blocks, the writer or readers.
    """

    EVERY = 1.0

    def __init__(self, db):
        db.execute_sql("PRAGMA wal_autocheckpoint = 0")  # the event loop's own connection
        self._db = models.writer_database(db)
        self._thread = ThreadPool(1)
        self._greenlet = gevent.spawn(self._run)

    def _run(self):
        failures = logs.Throttle(log, "WAL checkpoint failed (the next one retries)")
        while True:
            gevent.sleep(self.EVERY)
            try:
                self._thread.apply(self._db.execute_sql, ("PRAGMA wal_checkpoint(PASSIVE)",))
            except (pw.OperationalError, sqlite3.OperationalError) as exc:
                failures.failed(exc)
            else:
                failures.succeeded()

    def close(self):
        self._greenlet.kill()
        self._thread.apply(self._db.close)
        self._thread.kill()
