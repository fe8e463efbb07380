"""Schema upgrades: numbered steps, each applied once, in order, in place.

A database records the version its schema is at (SchemaVersion). Version 1
is the schema of release 0.1.0. `STEPS[n]` brings a database from version
n+1 to n+2 with playhouse.migrate operations (added columns, new tables,
data moved), so a database any earlier release wrote keeps every row.

A new database is created from the models directly (the latest shape);
schema objects the models cannot describe (SQLite FTS5 tables, triggers,
PostgreSQL expression indexes) are made by `ENSURE` hooks, which run when a
database is created or upgraded, and must be idempotent (IF NOT EXISTS).

Everything runs in one transaction (DDL is transactional on both engines)
and, on PostgreSQL, under an advisory lock, so several processes starting at
once migrate one after another and a failed step leaves the old schema whole.
"""
import peewee as pw
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator

from . import models

STEPS = []  # function(migrator, database), one per version after 1
ENSURE = []  # function(database), idempotent, run after every migrate


def step(fn):
    """Register the next numbered upgrade step."""
    STEPS.append(fn)
    return fn


def ensure(fn):
    """Register an idempotent hook for schema objects the models do not describe."""
    ENSURE.append(fn)
    return fn


def latest():
    return 1 + len(STEPS)


def migrate():
    """Create or upgrade the schema; returns (version before or None, version now).

    An up-to-date schema is only read, so a migrate beside a live writer (or
    a locked SQLite file) waits like any other transaction, then is Unavailable.
    """
    sqlite = isinstance(models.proxy.obj, pw.SqliteDatabase)
    if sqlite:  # a table rebuild must not cascade; only settable outside a transaction
        models.proxy.execute_sql("PRAGMA foreign_keys = OFF")
    try:
        return models.with_retries(_migrate, models.LOCK_WAIT)
    finally:
        if sqlite:
            models.proxy.execute_sql("PRAGMA foreign_keys = ON")


def _migrate():
    db = models.proxy
    if isinstance(db.obj, pw.PostgresqlDatabase):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (models.MIGRATION_LOCK,))
    before = models.schema_version() if db.table_exists("schemaversion") else None
    if before is not None and before > latest():
        raise RuntimeError("database schema %d is newer than this chatd (%d)"
                           % (before, latest()))
    if before == latest():
        return before, before
    if before is None:
        db.create_tables(models.MODELS)
    else:
        migrator = _migrator(db.obj)
        for upgrade in STEPS[before - 1:]:
            upgrade(migrator, db.obj)
        db.create_tables(models.MODELS, safe=True)  # tables later releases added
    for hook in ENSURE:
        hook(db.obj)
    if isinstance(db.obj, pw.SqliteDatabase) and db.execute_sql("PRAGMA foreign_key_check").fetchone():
        raise RuntimeError("the upgrade would break a reference between tables; nothing was changed")
    models.SchemaVersion.delete().execute()
    models.SchemaVersion.create(version=latest())
    return before, latest()


def _migrator(database):
    if isinstance(database, pw.PostgresqlDatabase):
        return PostgresqlMigrator(database)
    return SqliteMigrator(database)


@ensure
def control_stream_row(database):
    """The one row control events take their seq from."""
    if not models.ControlStream.select().exists():
        models.ControlStream.create(last=0)


@ensure
def search_index(database):
    """The search index (FTS5 table and triggers, or a GIN index), filled from
    the messages already stored when it is new: see storage.search."""
    from . import search
    search.engine(database).ensure(database)


# -- the steps ---------------------------------------------------------------------

@step
def v2_room_log_walls_unread_bots(migrator, database):
    """0.1.0 -> 0.2.0: the room log, room kinds and roles, bans, read markers,
    mentions, reactions, access tokens and bots; control events get an ordered seq.

    Rooms made before kinds existed become public, their creator's membership
    its owner; every member starts with nothing unread (marker at the room's
    last seq). Messages of 0.1.0 carry no mentions (none were parsed then).
    """
    from playhouse.migrate import migrate as apply
    m = models
    if isinstance(database, pw.SqliteDatabase):
        _rebuild_sqlite_room_table(database)
    else:
        _add_columns(database, m.Room.kind, m.Room.topic)
        apply(migrator.alter_column_type("room", "name_key", pw.CharField(max_length=80)))
    _add_columns(database, m.User.bot, m.Token.kind, m.Membership.role, m.Membership.read_upto,
                 m.Message.deleted)
    apply(migrator.add_column("user", "rate_per_minute", m.User.rate_per_minute),
          migrator.add_column("token", "name", m.Token.name),
          migrator.add_column("token", "last_used_at", m.Token.last_used_at),
          migrator.add_column("message", "edited_at", m.Message.edited_at),
          migrator.add_column("message", "reply_to", m.Message.reply_to),
          migrator.add_column("message", "mentions", m.Message.mentions),
          migrator.add_column("message", "deleted_by_id", m.Message.deleted_by),
          migrator.add_column("controlevent", "seq", m.ControlEvent.seq))
    database.execute_sql(
        'UPDATE "membership" SET "role" = \'owner\' WHERE EXISTS (SELECT 1 FROM "room" r '
        'WHERE r."id" = "membership"."room_id" AND r."created_by_id" = "membership"."user_id")')
    database.execute_sql(
        'UPDATE "membership" SET "read_upto" = (SELECT r."last_seq" FROM "room" r '
        'WHERE r."id" = "membership"."room_id")')
    database.execute_sql('UPDATE "controlevent" SET "seq" = "id"')
    m.ControlStream.create_table(safe=True)
    last = m.ControlEvent.select(pw.fn.MAX(m.ControlEvent.id)).scalar() or 0
    m.ControlStream.create(last=last)


@step
def v3_search_index_behind_the_writer(migrator, database):
    """Databases of 0.2.0's development indexed every message for search in its own
    statement. On SQLite the index now follows the messages in the writer's catch-up
    transaction above a watermark (storage.search_sqlite): the watermark starts at the
    newest message (all of them were indexed) and the triggers are replaced. On
    PostgreSQL the GIN index takes a small pending list (storage.search_pg)."""
    from . import search_pg, search_sqlite
    if isinstance(database, pw.SqliteDatabase):
        search_sqlite.ensure(database)
    else:
        search_pg.tune(database)


def _add_columns(database, *fields):
    """NOT NULL columns with a schema DEFAULT, added as the model declares them
    (playhouse's add_column would add them without the DEFAULT)."""
    for field in fields:
        ctx = database.get_sql_context()
        ctx.sql(field.ddl(ctx))
        database.execute_sql('ALTER TABLE "%s" ADD COLUMN %s'
                             % (field.model._meta.table_name, ctx.query()[0]))


def _rebuild_sqlite_room_table(database):
    """SQLite cannot add AUTOINCREMENT to a table: make the new room table and
    copy the rows, the way SQLite's documentation prescribes (foreign keys
    are off for the whole migrate, see migrate(); references to "room" in
    other tables are kept by renaming in legacy mode)."""
    database.execute_sql("PRAGMA legacy_alter_table = ON")
    try:
        for index in ("room_name_key", "room_created_by_id"):
            database.execute_sql('DROP INDEX IF EXISTS "%s"' % index)
        database.execute_sql('ALTER TABLE "room" RENAME TO "room__v1"')
        models.Room.create_table()
        database.execute_sql(
            'INSERT INTO "room" ("id", "name", "name_key", "created_by_id", "created_at", '
            '"last_seq", "kind", "topic") SELECT "id", "name", "name_key", "created_by_id", '
            '"created_at", "last_seq", \'public\', \'\' FROM "room__v1"')
        database.execute_sql('DROP TABLE "room__v1"')
    finally:
        database.execute_sql("PRAGMA legacy_alter_table = OFF")
