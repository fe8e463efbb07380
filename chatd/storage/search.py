"""The search index of the database in use: one module per engine, the same functions.

Each engine module has ensure(database) (make the index's schema objects
if missing, filling the index from the messages already stored: a database
upgraded from 0.1.0 had none), rebuild(database) (chat-admin history
reindex) and search(user_pk, query, room_pk, before, limit). SQLite's
also has catch_up, which the message writer calls (PostgreSQL indexes a
message in its own statement).
"""
import peewee as pw

from . import models, search_pg, search_sqlite


def engine(database=None):
    database = database if database is not None else models.proxy.obj
    return search_sqlite if isinstance(database, pw.SqliteDatabase) else search_pg
