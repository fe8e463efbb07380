"""peewee models, bound late to the database named by a URL.

Times are integer milliseconds since the epoch (UTC): compact, sortable and
the same on every engine; transports render them as RFC 3339.
Message.seq is the public message id: dense per room (1, 2, 3...), taken
from Room.last_seq inside the inserting transaction, so a room's messages
commit in id order on every engine and a gap is visible to any reader.
"""
import contextlib
import functools
import os
import time
from urllib.parse import urlparse, unquote

import peewee as pw
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase

from ..errors import Unavailable

proxy = pw.DatabaseProxy()
# SQLite waits for a lock inside C, where no other greenlet runs: keep that
# wait short and do the rest of it in gevent-friendly sleeps between tries.
BUSY_TIMEOUT_MS = 10
LOCK_POLL = 0.05  # seconds between tries on a locked SQLite file
LOCK_WAIT = 5.0  # seconds a transaction keeps trying before it is Unavailable (503)
PROBE_WAIT = 0.5  # seconds /healthz gives the database
# SQLite on a full disk still answers SELECT and even a rolled-back write:
# /healthz says down when its filesystem has less free space than this.
MIN_FREE_BYTES = 1024 * 1024
MIGRATION_LOCK = 0x63686174  # PostgreSQL advisory lock key ("chat") held while migrating


def now_ms():
    return int(time.time() * 1000)


def schema_version():
    """The version the database's schema is at (None before migrate)."""
    row = SchemaVersion.select().first()
    return row.version if row else None


class BaseModel(pw.Model):
    class Meta:
        database = proxy


# Columns added after 0.1.0 that are NOT NULL carry a DEFAULT in the schema
# itself (not only peewee's Python-side default): the hot path's hand-written
# INSERTs name only the columns they set, and ALTER TABLE ADD COLUMN needs it.


class RoomIdField(pw.AutoField):
    """Room ids are never reused: AUTOINCREMENT on SQLite (whose plain rowid
    would hand a deleted newest room's id to the next room); PostgreSQL's
    serial sequence never goes back anyway."""

    def ddl(self, ctx):
        node = super().ddl(ctx)
        if isinstance(proxy.obj, pw.SqliteDatabase):
            node = pw.NodeList((node, pw.SQL("AUTOINCREMENT")))
        return node


class User(BaseModel):
    username = pw.CharField(max_length=32)
    username_key = pw.CharField(max_length=32, unique=True)  # lower-cased
    password_hash = pw.CharField(max_length=255, null=True)
    created_at = pw.BigIntegerField()
    disabled = pw.BooleanField(default=False)
    bot = pw.BooleanField(default=False, constraints=[pw.SQL("DEFAULT FALSE")])
    rate_per_minute = pw.IntegerField(null=True)  # a bot's own message rate; None: the users'


NEVER = 2 ** 62  # expires_at of an access token without expiry (ms; far past any real time)


class Token(BaseModel):
    """Login tokens (kind 'login') and named access tokens for scripts ('access')."""
    token_hash = pw.CharField(max_length=64, unique=True)  # sha256 hex
    user = pw.ForeignKeyField(User, on_delete="CASCADE", index=True)
    created_at = pw.BigIntegerField()
    expires_at = pw.BigIntegerField(index=True)
    kind = pw.CharField(max_length=8, default="login", constraints=[pw.SQL("DEFAULT 'login'")])
    name = pw.CharField(max_length=64, null=True)
    last_used_at = pw.BigIntegerField(null=True)


class Room(BaseModel):
    id = RoomIdField()
    name = pw.CharField(max_length=64)
    # case-folded name; a direct room's is "direct:<user pk>:<user pk>" (smaller
    # first), so the unique index makes one direct room per pair, whoever asks.
    name_key = pw.CharField(max_length=80, unique=True)
    created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    created_at = pw.BigIntegerField()
    last_seq = pw.BigIntegerField(default=0)
    kind = pw.CharField(max_length=16, default="public",  # public, private, direct
                        constraints=[pw.SQL("DEFAULT 'public'")])
    topic = pw.TextField(default="", constraints=[pw.SQL("DEFAULT ''")])


class Membership(BaseModel):
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    room = pw.ForeignKeyField(Room, on_delete="CASCADE", index=True)
    joined_at = pw.BigIntegerField()
    role = pw.CharField(max_length=16, default="member",  # owner, moderator, member
                        constraints=[pw.SQL("DEFAULT 'member'")])
    read_upto = pw.BigIntegerField(default=0, constraints=[pw.SQL("DEFAULT 0")])  # largest seq read

    class Meta:
        indexes = ((("user", "room"), True),)


class Message(BaseModel):
    """A message is also the `new-message` entry of its room's log: its seq is its id."""
    room = pw.ForeignKeyField(Room, on_delete="CASCADE", index=False)
    seq = pw.BigIntegerField()
    sender = pw.ForeignKeyField(User, null=True, on_delete="SET NULL", index=False)
    text = pw.TextField()  # the current text; '' once deleted
    created_at = pw.BigIntegerField()
    client_msg_id = pw.CharField(max_length=64, null=True)
    edited_at = pw.BigIntegerField(null=True)
    reply_to = pw.BigIntegerField(null=True)  # seq of a message in the same room
    mentions = pw.TextField(null=True)  # JSON list of usernames as registered
    deleted = pw.BooleanField(default=False, constraints=[pw.SQL("DEFAULT FALSE")])
    deleted_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL", index=False,
                                    column_name="deleted_by_id", backref="+")

    class Meta:
        # (room, seq) serves every history page and gap repair; the second
        # makes a clientMsgId retry a unique-index hit, not a check-then-insert.
        indexes = (
            (("room", "seq"), True),
            (("room", "sender", "client_msg_id"), True),
        )


class RoomEvent(BaseModel):
    """Every sequenced change to a room other than a new message, in the room's
    one sequence (seq shared with Message): edits, deletions, reactions,
    membership, roles, name and topic."""
    room = pw.ForeignKeyField(Room, on_delete="CASCADE", index=False)
    seq = pw.BigIntegerField()
    kind = pw.CharField(max_length=24)
    actor = pw.ForeignKeyField(User, null=True, on_delete="SET NULL", index=False)
    message_seq = pw.BigIntegerField(null=True)  # the message it is about
    text = pw.TextField(null=True)  # message-edited: the new text (erased on delete)
    data = pw.TextField(default="{}")  # JSON: the event's other fields
    created_at = pw.BigIntegerField()

    class Meta:
        indexes = (
            (("room", "seq"), True),
            (("room", "message_seq"), False),
        )


class Reaction(BaseModel):
    room = pw.ForeignKeyField(Room, on_delete="CASCADE", index=False)
    message_seq = pw.BigIntegerField()
    user = pw.ForeignKeyField(User, on_delete="CASCADE", index=False)
    emoji = pw.CharField(max_length=64)
    created_at = pw.BigIntegerField()

    class Meta:
        indexes = ((("room", "message_seq", "user", "emoji"), True),)


class Mention(BaseModel):
    """Who a live message mentions: the unread-mention counts read it by (user, room, seq)."""
    user = pw.ForeignKeyField(User, on_delete="CASCADE", index=False)
    room = pw.ForeignKeyField(Room, on_delete="CASCADE", index=False)
    message_seq = pw.BigIntegerField()

    class Meta:
        indexes = ((("user", "room", "message_seq"), True),
                   (("room", "message_seq"), False))


class Ban(BaseModel):
    room = pw.ForeignKeyField(Room, on_delete="CASCADE", index=False)
    user = pw.ForeignKeyField(User, on_delete="CASCADE", index=False)
    by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL", index=False,
                            column_name="by_id", backref="+")
    reason = pw.TextField(default="")
    created_at = pw.BigIntegerField()

    class Meta:
        indexes = ((("room", "user"), True),)


class ControlEvent(BaseModel):
    """Changes made by one process that every chatd must act on (see hub).

    `seq` comes from ControlStream's one row, bumped in the writing
    transaction: the row lock makes numbers commit in order, so a reader
    that follows `seq > last` can never skip one (serial ids can commit out
    of order on PostgreSQL)."""
    kind = pw.CharField(max_length=32)
    payload = pw.TextField()
    created_at = pw.BigIntegerField(index=True)
    seq = pw.BigIntegerField(null=True, unique=True)


class ControlStream(BaseModel):
    last = pw.BigIntegerField(default=0)


class SchemaVersion(BaseModel):
    version = pw.IntegerField()


MODELS = [User, Token, Room, Membership, Message, RoomEvent, Reaction, Mention, Ban,
          ControlEvent, ControlStream, SchemaVersion]


def execute(sql, params):
    """Run hand-written SQL, written with '?' placeholders, on the bound database."""
    db = proxy.obj
    return db.execute_sql(sql.replace("?", db.param), params)


# Hand-written SQL that makes model instances, for the lookups every request or
# reconnect runs (a token, a room, a role): peewee compiling such a select
# from its expression tree cost more of the core than the database running it
# (a quarter of chatd's CPU in a reconnect storm).
@functools.lru_cache(maxsize=None)
def columns(model, alias):
    """The model's columns as alias."column", in field order, for instance()."""
    return ", ".join('%s."%s"' % (alias, field.column_name) for field in model._meta.sorted_fields)


def instance(model, values):
    """A model instance from a row's values of columns(model), as peewee's own reader makes it
    (nothing marked changed: a connection keeps its User for its whole life)."""
    found = model(__no_default__=1, **{field.name: field.python_value(value) for field, value
                                       in zip(model._meta.sorted_fields, values)})
    found._dirty.clear()
    return found


def describe(url):
    """The database URL for logs: any password hidden; for SQLite, the file it means."""
    parsed = urlparse(url)
    if parsed.password:
        host = parsed.netloc.rpartition("@")[2]
        url = parsed._replace(netloc="%s:***@%s" % (parsed.username or "", host)).geturl()
    path = sqlite_path(url)
    return "%s (file %s)" % (url, os.path.abspath(path)) if path else url


def sqlite_path(url):
    """The file of a sqlite:/// URL; None for any other URL."""
    if urlparse(url).scheme != "sqlite" or not url.startswith("sqlite:///"):
        return None
    return unquote(url[len("sqlite:///"):]) or None


def open_database(url, pool_size=10, busy_ms=BUSY_TIMEOUT_MS):
    """A peewee database for sqlite:///path or postgresql://user@host/db.

    busy_ms: how long SQLite itself waits for a lock. chatd keeps it short
    (the wait is inside C, where no other greenlet runs) and retries between
    gevent sleeps; chat-admin, one program doing one thing, waits in SQLite,
    whose busy handler gets the lock between a live chatd's commits.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = sqlite_path(url)
        if not path:
            raise ValueError("database URL %r: expected sqlite:///path" % url)
        # One connection shared by every greenlet: sqlite3 never yields to
        # gevent, so a transaction runs start to end without interleaving.
        return pw.SqliteDatabase(
            path, thread_safe=False, check_same_thread=False,
            timeout=busy_ms / 1000.0,
            pragmas={"journal_mode": "wal", "synchronous": "normal",
                     "foreign_keys": 1, "busy_timeout": busy_ms,
                     "secure_delete": 1})  # a deleted message's text leaves no trace in free space
    if parsed.scheme in ("postgres", "postgresql"):
        # Blocking psycopg2 calls cooperate with gevent once chatd's server
        # has run psycogreen's patch_psycopg(); chat-admin runs without it.
        return PooledPostgresqlDatabase(
            parsed.path.lstrip("/"), user=unquote(parsed.username or "") or None,
            password=unquote(parsed.password or "") or None,
            host=parsed.hostname or None, port=parsed.port,
            max_connections=pool_size, stale_timeout=300, timeout=10,
            # No JIT compiling: the planner cannot know that read markers sit
            # near the end of their rooms, nor that a search walks newest first,
            # and costs both above jit_above_cost; compiling the unread counts
            # took ~100 ms, running them 5. Nothing chatd asks runs long enough
            # to gain from it.
            options="-c jit=off")
    raise ValueError("database URL %r: scheme must be sqlite or postgresql" % url)


def writer_database(database):
    """SQLite: a second connection to the same file, for the message writer's own thread.

    Its commits then wait on the disk in that thread, off the event loop,
    and messages that arrive meanwhile share the next commit. It may wait
    for the write lock inside SQLite: nothing else runs on that thread.
    None on PostgreSQL, whose waits already yield to other greenlets.
    """
    if not isinstance(database, pw.SqliteDatabase):
        return None
    return pw.SqliteDatabase(
        database.database, thread_safe=False, check_same_thread=False,
        timeout=LOCK_WAIT, pragmas={"journal_mode": "wal", "synchronous": "normal",
                                    "foreign_keys": 1, "busy_timeout": int(LOCK_WAIT * 1000),
                                    "wal_autocheckpoint": 0, "secure_delete": 1})


def session(database):
    """A pooled connection for the duration of one operation (no-op on SQLite).

    peewee keeps the connection in a threading.local, which gevent's
    monkey.patch_all makes greenlet-local: each greenlet checks out its own
    connection here and the outermost session gives it back to the pool.
    """
    if hasattr(database, "_in_use"):  # playhouse.pool: give the connection back after
        return database.connection_context()
    return contextlib.nullcontext()


def close():
    """Close every connection this process holds (the whole pool on PostgreSQL)."""
    database = proxy.obj
    if hasattr(database, "close_all"):
        database.close_all()
    else:
        database.close()


def bind(database):
    proxy.initialize(database)
    return database


def transaction(fn):
    """Run fn in one atomic() on a pooled connection, retrying while SQLite is locked.

    A database that does not answer, or stays locked, is Unavailable (503).
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return with_retries(lambda: fn(*args, **kwargs), LOCK_WAIT)
    return wrapper


def write_transaction(fn):
    """transaction() for a write that reads first, beside a busy writer: on SQLite it
    takes the write lock at BEGIN (IMMEDIATE). A deferred one that read and then
    writes fails at once in WAL mode whenever another commit came in between
    (its snapshot is stale), which beside a live chatd is almost every time.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        lock = {"lock_type": "IMMEDIATE"} if isinstance(proxy.obj, pw.SqliteDatabase) else {}
        return with_retries(lambda: fn(*args, **kwargs), LOCK_WAIT, **lock)
    return wrapper


def probe():
    """Raise Unavailable unless the database answers within PROBE_WAIT.

    On SQLite "answers" means it would take a write now (BEGIN IMMEDIATE):
    reads go on under another process's write lock, but no message can be
    stored, so /healthz must say so. Nor can one on a full disk, where
    BEGIN IMMEDIATE still succeeds: the free space is checked too.
    """
    lock = {"lock_type": "IMMEDIATE"} if isinstance(proxy.obj, pw.SqliteDatabase) else {}
    with_retries(lambda: proxy.obj.execute_sql("SELECT 1"), PROBE_WAIT, **lock)
    if lock and free_bytes(proxy.obj.database) < MIN_FREE_BYTES:
        raise Unavailable("The database's disk is full.")


def free_bytes(path):
    """Bytes an unprivileged process may still write on the filesystem of `path`."""
    stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    return stat.f_bavail * stat.f_frsize


def with_retries(call, wait, **atomic):
    db = proxy.obj
    deadline = time.monotonic() + wait
    while True:
        try:
            with session(db), db.atomic(**atomic):
                return call()
        except pw.OperationalError as exc:
            if not is_locked(exc) or time.monotonic() >= deadline:
                raise Unavailable("The database is unavailable; try again.") from exc
        except (pw.InterfaceError, MaxConnectionsExceeded) as exc:
            # MaxConnectionsExceeded: every pooled connection stayed busy for
            # the pool's timeout (10 s); the database is as good as away.
            raise Unavailable("The database is unavailable; try again.") from exc
        time.sleep(LOCK_POLL)


def is_locked(exc):
    """SQLite's locked file, or a PostgreSQL transaction it chose to abort: retry."""
    text = str(exc).lower()
    return any(word in text for word in ("locked", "busy", "deadlock detected",
                                         "could not serialize"))
