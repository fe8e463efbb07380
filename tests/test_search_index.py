"""The search index's life: kept by the database on every write (also writes chatd
did not make), filled by the upgrade of a database that had none, rebuilt by
`chat-admin history reindex`. SQLite and PostgreSQL, real chatd and chat-admin."""
import sqlite3
import subprocess

import psycopg2
import pytest

import services
from admin_tool import chat_admin, ok
from helpers import Chatd
from test_search import found, send
from test_upgrade import EXPECTED, GENEROUS, existing, old_database  # noqa: F401 (fixture)
from helpers import unique


def sql(url, statement, params=()):
    """Run one statement on the test database directly, as another program would."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///"):], timeout=10) as conn:
            return conn.execute(statement, params).fetchall()
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(statement.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description else []
    finally:
        conn.close()


@pytest.fixture
def room(client):
    owner = client()
    room_id = owner.create_room()
    sock = owner.ws(join=room_id)
    yield owner, room_id, sock
    sock.close()


def test_updates_and_deletions_of_rows_keep_the_index_right(server, room):
    owner, room_id, sock = room
    tag = unique("t")
    first = send(sock, room_id, "%s before the update" % tag)
    second = send(sock, room_id, "%s soon deleted" % tag)
    pk = int(room_id.split("_")[1])
    sql(server.database, 'UPDATE "message" SET "text" = ? WHERE "room_id" = ? AND "seq" = ?',
        ("%s after the change" % tag, pk, first))
    sql(server.database, 'UPDATE "message" SET "text" = \'\', "deleted" = TRUE '
        'WHERE "room_id" = ? AND "seq" = ?', (pk, second))
    assert found(owner, "%s before" % tag) == []
    assert found(owner, "%s soon" % tag) == []
    assert found(owner, tag) == ["%s after the change" % tag]
    sql(server.database, 'DELETE FROM "message" WHERE "room_id" = ? AND "seq" = ?', (pk, first))
    assert found(owner, tag) == []
    third = "%s after the deletions" % tag
    send(sock, room_id, third)
    assert found(owner, tag) == [third]


def test_reindex_rebuilds_a_lost_index(server, room):
    owner, room_id, sock = room
    tag = unique("t")
    send(sock, room_id, "%s indexed once" % tag)
    assert found(owner, tag) == ["%s indexed once" % tag]
    if server.database.startswith("sqlite"):
        sql(server.database, "INSERT INTO message_fts(message_fts) VALUES ('delete-all')")
        assert found(owner, tag) == []
    else:
        sql(server.database, "DROP INDEX message_search")
    assert "rebuilt" in ok(chat_admin(server.database, "history", "reindex"))
    assert found(owner, tag) == ["%s indexed once" % tag]
    send(sock, room_id, "%s indexed after" % tag)
    assert len(found(owner, tag)) == 2
    if not server.database.startswith("sqlite"):
        assert sql(server.database, "SELECT 1 FROM pg_indexes WHERE indexname = 'message_search'")


def test_an_upgraded_database_is_searchable(old_database):  # noqa: F811 (the fixture)
    engine, url = old_database
    server = Chatd(url, env=GENEROUS).start()
    try:
        alice = existing(server, "alice")
        messages = EXPECTED[engine]["rooms"]["room_1"]["messages"]
        for message in messages[:4]:
            # the first word of each: ASCII, accents, Cyrillic, CJK of 0.1.0's messages
            first_word = message["message"].split()[0].strip("，,")
            assert message["message"] in found(alice, first_word, roomId="room_1"), first_word
    finally:
        server.stop()
