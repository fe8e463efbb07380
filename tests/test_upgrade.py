"""A database written by the previous release (0.1.0) upgrades in place with nothing lost.

tests/data/release-0.1.0 holds that release's own SQLite file and a pg_dump of
the same content on PostgreSQL (made by tests/data/make_release_db.py with the
release checked out), and what its history showed.
"""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import services
from admin_tool import chat_admin, ok
from helpers import GENEROUS, Chatd, Client

RELEASE = Path(__file__).parent / "data" / "release-0.1.0"
EXPECTED = json.loads((RELEASE / "expected.json").read_text())


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request, tmp_path):
    """(engine, URL) of a fresh copy of the 0.1.0 database."""
    if request.param == "sqlite":
        shutil.copy(RELEASE / "chat.db", tmp_path / "chat.db")
        yield "sqlite", "sqlite:///%s" % (tmp_path / "chat.db")
        return
    with services.postgres_database() as url:
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(RELEASE / "chat.pg.sql"),
                        url], check=True, capture_output=True)
        yield "postgresql", url


def existing(server, name):
    user = Client(server, username=name, password=EXPECTED["sqlite"]["password"], register=False)
    user.login()
    return user


def assert_nothing_lost(server, engine):
    expected = EXPECTED[engine]
    alice, bob = existing(server, "alice"), existing(server, "bob")
    for room_id, room in expected["rooms"].items():
        reader = bob if room_id == expected["carolLeft"] else alice
        got = reader.get("/api/chat-history/%s?limit=500" % room_id).json()["messages"]
        keys = ("id", "sender", "message", "timestamp", "clientMsgId")
        assert [{k: m.get(k) for k in keys} for m in got] == \
            [{k: m.get(k) for k in keys} for m in room["messages"]]
    rooms = {r["roomId"]: r for r in alice.get("/api/rooms").json()}
    assert all(r["kind"] == "public" for r in rooms.values())
    # Rooms made before kinds existed: their creator is their owner.
    first = expected["rooms"]["room_1"]["messages"]  # alice made room_1
    roles = {m["username"]: m.get("role") for m in alice.get("/api/rooms/room_1/members").json()}
    assert roles["alice"] == "owner" and roles["bob"] == "member", roles
    carol = existing(server, "carol")
    assert expected["carolLeft"] not in carol.get("/api/me").json()["rooms"]
    # A clientMsgId retry still finds its original; a new message follows the last id.
    sock = alice.ws(join="room_1")
    sock.say("room_1", "a retry", "cmid-1")
    again = sock.expect("new-message", roomId="room_1")
    assert (again["id"], again["message"]) == (1, first[0]["message"])
    sock.say("room_1", "after the upgrade")
    new = sock.expect("new-message", message="after the upgrade")
    assert new["id"] > first[-1]["id"]
    sock.close()


def test_chatd_upgrades_a_0_1_0_database_on_start(old_database):
    engine, url = old_database
    server = Chatd(url, env=GENEROUS).start()
    try:
        assert "schema upgraded from version 1 to" in server.log()
        assert_nothing_lost(server, engine)
    finally:
        server.stop()


def test_chat_admin_db_migrate_upgrades_a_0_1_0_database(old_database):
    engine, url = old_database
    assert "schema at version 3" in ok(chat_admin(url, "db", "migrate"))
    server = Chatd(url, env=GENEROUS).start()
    try:
        assert "schema upgraded" not in server.log()
        assert_nothing_lost(server, engine)
    finally:
        server.stop()


def schema(url):
    """{table: (columns, indexes)} as the database reports them."""
    from chatd.storage import models
    db = models.open_database(url, 1)
    try:
        tables = {}
        for table in db.get_tables():
            columns = sorted((c.name, c.null) for c in db.get_columns(table))
            indexes = sorted((tuple(i.columns), i.unique) for i in db.get_indexes(table))
            tables[table] = (columns, indexes)
        return tables
    finally:
        db.close()


def test_an_upgraded_schema_equals_a_new_one(old_database, tmp_path):
    engine, old_url = old_database
    ok(chat_admin(old_url, "db", "migrate"))
    if engine == "sqlite":
        new_url = "sqlite:///%s" % (tmp_path / "new.db")
        ok(chat_admin(new_url, "db", "migrate"))
        assert schema(old_url) == schema(new_url)
        return
    with services.postgres_database() as new_url:
        ok(chat_admin(new_url, "db", "migrate"))
        assert schema(old_url) == schema(new_url)
