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
    return models.with_retries(_migrate, models.LOCK_WAIT)


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
    models.SchemaVersion.delete().execute()
    models.SchemaVersion.create(version=latest())
    return before, latest()


def _migrator(database):
    if isinstance(database, pw.PostgresqlDatabase):
        return PostgresqlMigrator(database)
    return SqliteMigrator(database)
