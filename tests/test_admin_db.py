"""chat-admin db ..., configuration, usage and failures on a busy or odd database."""
import importlib.metadata
import json
import os
import sqlite3
import stat
import threading
import time

import pytest

from admin_tool import chat_admin, failed, ok
from helpers import GENEROUS
from helpers import Chatd, Client, unique


def sqlite_url(path):
    return "sqlite:///%s" % path


class Writers:
    """Clients in their own rooms sending messages, each waiting for its acknowledgement."""

    def __init__(self, server, count=3, limit=20000, seconds=60):
        self.clients = [Client(server) for _ in range(count)]
        self.rooms = [c.create_room() for c in self.clients]
        self.stored = [0] * count
        self.stop = threading.Event()
        self.errors = []
        self.threads = [threading.Thread(target=self._write, args=(i, limit, seconds))
                        for i in range(count)]
        for thread in self.threads:
            thread.start()

    def _write(self, i, limit, seconds):
        sock = self.clients[i].ws(join=self.rooms[i])
        deadline = time.monotonic() + seconds
        try:
            while not self.stop.is_set() and self.stored[i] < limit and time.monotonic() < deadline:
                sock.say(self.rooms[i], "load %d" % self.stored[i])
                sock.expect("new-message", message="load %d" % self.stored[i])
                self.stored[i] += 1
        except Exception as exc:  # reported by finish()
            self.errors.append(exc)
        finally:
            sock.close()

    def wait_for(self, each, timeout=30):
        deadline = time.monotonic() + timeout
        while min(self.stored) < each:
            assert time.monotonic() < deadline and not self.errors, (self.stored, self.errors)
            time.sleep(0.01)

    def finish(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        assert not self.errors, self.errors


@pytest.mark.slow
def test_backup_during_a_write_load_is_a_consistent_copy(tmp_path):
    url = sqlite_url(tmp_path / "live.db")
    server = Chatd(url, env=GENEROUS).start()
    try:
        writers = Writers(server)
        writers.wait_for(50)
        copy = tmp_path / "backup.db"
        assert ok(chat_admin(url, "db", "backup", str(copy))) == "backed up to %s\n" % copy
        at_backup = list(writers.stored)
        writers.wait_for(max(at_backup) + 20)
        writers.finish()
    finally:
        server.stop()
    with sqlite3.connect(str(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        for room, stored in zip(writers.rooms, writers.stored):
            pk = int(room[5:])
            messages, changes = (db.execute("SELECT COUNT(*) FROM %s WHERE room_id = ?" % table,
                                            (pk,)).fetchone()[0]
                                 for table in ("message", "roomevent"))
            top = db.execute("SELECT MAX(seq) FROM (SELECT seq FROM message WHERE room_id = ? "
                             "UNION ALL SELECT seq FROM roomevent WHERE room_id = ?)",
                             (pk, pk)).fetchone()[0]
            last_seq = db.execute("SELECT last_seq FROM room WHERE id = ?", (pk,)).fetchone()[0]
            # No half transaction: the room's log is dense up to its counter.
            assert messages + changes == top == last_seq
            assert 50 <= messages <= stored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup.db", "live.db"]


def test_backup_is_private_whatever_the_umask(tmp_path):
    """The copy holds password and token hashes: 0600, also over an older readable backup."""
    url = sqlite_url(tmp_path / "chat.db")
    ok(chat_admin(url, "db", "migrate"))
    ok(chat_admin(url, "user", "create", unique(), "--password-stdin", stdin="long enough\n"))
    copy = tmp_path / "backup.db"
    copy.write_bytes(b"")
    copy.chmod(0o644)
    ok(chat_admin(url, "db", "backup", str(copy), umask=0))
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    with sqlite3.connect(str(copy)) as db:
        assert db.execute("SELECT COUNT(*) FROM user WHERE password_hash IS NOT NULL"
                          ).fetchone() == (1,)


def test_backup_into_a_missing_folder_fails_with_one_line(tmp_path):
    url = sqlite_url(tmp_path / "chat.db")
    ok(chat_admin(url, "db", "migrate"))
    target = tmp_path / "missing" / "backup.db"
    failed(chat_admin(url, "db", "backup", str(target)), "%s: No such file or directory" % target)
    assert os.listdir(tmp_path) == ["chat.db"]


def test_backup_on_postgresql_points_at_pg_dump(tmp_path):
    failed(chat_admin("postgresql://chatd@127.0.0.1:1/chat", "db", "backup", str(tmp_path / "b")),
           "pg_dump")
    assert list(tmp_path.iterdir()) == []


def test_backup_refuses_to_overwrite_the_database_itself(tmp_path):
    path = tmp_path / "chat.db"
    ok(chat_admin(sqlite_url(path), "db", "migrate"))
    failed(chat_admin(sqlite_url(path), "db", "backup", str(path)), "the database itself")


@pytest.mark.slow
def test_migrate_creates_and_refuses_a_newer_schema(tmp_path):
    """(Upgrades from the previous release: tests/test_upgrade.py.)"""
    path = tmp_path / "chat.db"
    url = sqlite_url(path)
    assert ok(chat_admin(url, "db", "migrate")) == "schema at version 3\n"
    assert ok(chat_admin(url, "db", "migrate")) == "schema at version 3\n"
    server = Chatd(url).start()
    Client(server)
    server.stop()
    with sqlite3.connect(str(path)) as db:
        db.execute("UPDATE schemaversion SET version = 99")
    failed(chat_admin(url, "db", "migrate"), "schema 99 is newer")
    failed(chat_admin(url, "user", "list"), "schema 99 is newer")


def test_a_missing_sqlite_file_is_not_created_by_other_commands(tmp_path):
    path = tmp_path / "typo.db"
    failed(chat_admin(sqlite_url(path), "user", "list"), "no database at %s" % path)
    assert not path.exists()


@pytest.mark.slow
def test_a_locked_database_fails_with_one_clear_line(tmp_path):
    path = tmp_path / "chat.db"
    ok(chat_admin(sqlite_url(path), "db", "migrate"))
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock for the whole command
    holder.execute("INSERT INTO controlevent (kind, payload, created_at) VALUES ('x', '{}', 0)")
    try:
        result = chat_admin(sqlite_url(path), "user", "create", unique(), "--password-stdin",
                            stdin="long enough\n")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    failed(result, "the database is unavailable (database is locked); try again")


@pytest.mark.slow
def test_settings_come_from_config_then_environment_then_flag(tmp_path):
    names = {}
    for which in ("file", "env", "flag"):
        url = sqlite_url(tmp_path / (which + ".db"))
        names[which] = unique(which)
        ok(chat_admin(url, "db", "migrate"))
        ok(chat_admin(url, "user", "create", names[which], "--password-stdin",
                      stdin="long enough\n"))
    config = tmp_path / "chatd.ini"
    config.write_text("[database]\nurl = %s\n" % sqlite_url(tmp_path / "file.db"))
    env = {"CHATD_DATABASE_URL": sqlite_url(tmp_path / "env.db")}

    def user_names(*args, env=None):
        out = ok(chat_admin(None, "--config", str(config), *args, "user", "list", "--json",
                            env=env))
        return [u["username"] for u in json.loads(out)]
    assert user_names() == [names["file"]]
    assert user_names(env=env) == [names["env"]]
    assert user_names("--database", sqlite_url(tmp_path / "flag.db"), env=env) == [names["flag"]]


@pytest.mark.parametrize("args, says", [
    (["frobnicate"], "No such command"),
    (["user"], "Usage:"),
    (["user", "create"], "Missing argument 'NAME'"),
    (["--database", "ftp://host/db", "user", "list"], "scheme must be sqlite or postgresql"),
    (["--config", "/nonexistent/chatd.ini", "user", "list"], "cannot read config file"),
    (["history", "export", "--all", "--format", "xml"], "'xml' is not one of"),
])
def test_bad_usage_exits_2(args, says):
    result = chat_admin(None, *args)
    assert result.returncode == 2, result
    assert says in result.stderr and "Traceback" not in result.stderr


COMMANDS = ["user create", "user list", "user passwd", "user disable", "user enable",
            "user delete", "room create", "room list", "room members", "room delete",
            "history export", "history import", "history purge", "db migrate", "db backup"]


@pytest.mark.slow
def test_every_command_has_help():
    top = ok(chat_admin(None, "--help"))
    for group in ("user", "room", "history", "db"):
        assert "\n  %s " % group in top
    for command in COMMANDS:
        text = ok(chat_admin(None, *command.split(), "--help"))
        assert text.startswith("Usage: chat-admin %s" % command), text
        summary = text.split("\n\n")[1].strip()
        assert len(summary) > 20 and summary.endswith((".", ")")), (command, summary)


def test_version_is_the_installed_package_version():
    assert ok(chat_admin(None, "--version")) == "chat-admin %s\n" % importlib.metadata.version(
        "chatd")
