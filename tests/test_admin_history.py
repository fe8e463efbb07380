"""chat-admin history ...: export, import and purge on the database a running chatd uses."""
import csv
import datetime
import json
import os

import pytest

import services
from admin_tool import Terminal, chat_admin, failed, ok
from helpers import Chatd, Client, unique

FIELDS = ["roomId", "roomName", "id", "sender", "message", "timestamp", "clientMsgId",
          "editedAt", "replyTo", "mentions", "reactions"]
HOSTILE = [
    "plain words",
    'a comma, "double quotes" and \'single ones\'',
    "line one\nline two\n\nline four",
    "tab\tseparated\tvalues",
    "\u202eRTL override\u202c and a \u200fRLM: שלום עולם, مرحبا",
    "emoji 🎉 family 👩‍👩‍👧‍👦 flag 🇺🇦",
    "'); DROP TABLE message; --",
    'back\\slash and {"json": [1, 2]}',
    '=HYPERLINK("http://x")',
    "  leading and trailing spaces  ",
]


@pytest.fixture(scope="module")
def conversation(server):
    """A room with hostile text from two users; (room id, room name, expected records)."""
    alice, bob = Client(server), Client(server)
    name = unique('Ops, "quoted" 🎉 ')
    room = alice.create_room(name)
    bob.post("/api/join-room", {"roomId": room})
    socks = alice.ws(join=room), bob.ws(join=room)
    for n, text in enumerate(HOSTILE):
        sock = socks[n % 2]
        sock.say(room, text, client_msg_id="c-%d" % n if n % 3 else None)
        sock.expect("new-message", message=text)
    history = alice.get("/api/chat-history/" + room).json()["messages"]
    assert [m["message"] for m in history] == HOSTILE
    return room, name, [record(room, name, m) for m in history]


def record(room, name, message):
    """The export record of a history item."""
    return {"roomId": room, "roomName": name, "id": message["id"], "sender": message["sender"],
            "message": message["message"], "timestamp": message["timestamp"],
            "clientMsgId": message.get("clientMsgId"), "editedAt": message.get("editedAt"),
            "replyTo": message.get("replyTo"), "mentions": message.get("mentions", []),
            "reactions": [{"emoji": r["emoji"], "users": r["users"]}
                          for r in message.get("reactions", [])]}


def read_export(path, fmt):
    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            return [json.loads(line) for line in f]
        if fmt == "json":
            return json.load(f)
        rows = list(csv.reader(f))
    assert rows[0] == FIELDS
    return [csv_record(row) for row in rows[1:]]


def csv_record(row):
    """A csv row as the jsonl record it stands for: empty cells are none, lists are JSON text."""
    return dict(zip(FIELDS, row), id=int(row[2]), clientMsgId=row[6] or None,
                editedAt=row[7] or None, replyTo=int(row[8]) if row[8] else None,
                mentions=json.loads(row[9] or "[]"), reactions=json.loads(row[10] or "[]"))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_export_round_trips_hostile_text(database_url, conversation, tmp_path, fmt):
    room, _, expected = conversation
    path = tmp_path / ("out." + fmt)
    out = ok(chat_admin(database_url, "history", "export", room, "--format", fmt,
                        "--output", str(path)))
    assert out == "exported to %s\n" % path
    assert read_export(path, fmt) == expected
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left beside it


def test_export_to_stdout_is_jsonl_by_default(database_url, conversation):
    room, _, expected = conversation
    out = ok(chat_admin(database_url, "history", "export", room))
    assert [json.loads(line) for line in out.splitlines()] == expected
    assert all(list(json.loads(line)) == FIELDS for line in out.splitlines())


def test_export_since_until_selects_a_time_window(database_url, conversation):
    room, _, expected = conversation
    since, until = expected[3]["timestamp"], expected[8]["timestamp"]
    out = ok(chat_admin(database_url, "history", "export", room, "--since", since,
                        "--until", until))
    assert [json.loads(line) for line in out.splitlines()] == [
        r for r in expected if since <= r["timestamp"] < until]
    bad = chat_admin(database_url, "history", "export", room, "--since", "yesterday")
    assert bad.returncode == 2 and "RFC 3339" in bad.stderr


def test_export_takes_a_date_alone_as_midnight_utc(database_url, conversation):
    room, _, expected = conversation
    day = expected[0]["timestamp"][:10]
    next_day = (datetime.date.fromisoformat(day) + datetime.timedelta(days=1)).isoformat()
    out = ok(chat_admin(database_url, "history", "export", room, "--since", day,
                        "--until", next_day))
    assert [json.loads(line) for line in out.splitlines()] == [
        r for r in expected if r["timestamp"] < next_day]
    assert ok(chat_admin(database_url, "history", "export", room, "--until", day)) == ""
    for option in ("--since", "--until"):
        bad = chat_admin(database_url, "history", "export", room, option, "2026-02-30")
        assert bad.returncode == 2, bad
        assert "'2026-02-30' is neither a date like 2024-12-10" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr


def test_export_failures_leave_no_file(database_url, conversation, tmp_path):
    room, _, _ = conversation
    path = tmp_path / "out.jsonl"
    failed(chat_admin(database_url, "history", "export", room, "room_999999",
                      "--output", str(path)), "No room room_999999")
    assert os.listdir(tmp_path) == []
    failed(chat_admin(database_url, "history", "export", room, "--output",
                      str(tmp_path / "missing" / "out.jsonl")),
           "%s: No such file or directory" % (tmp_path / "missing" / "out.jsonl"))
    for args in ([], [room, "--all"]):
        usage = chat_admin(database_url, "history", "export", *args)
        assert usage.returncode == 2 and "--all" in usage.stderr


def test_export_shows_a_progress_bar_on_a_terminal(database_url, conversation, tmp_path):
    room, _, expected = conversation
    path = tmp_path / "out.jsonl"
    term = Terminal(["--database", database_url, "history", "export", room, "--output", str(path)])
    assert term.finish() == 0
    assert "exporting" in term.screen.decode() and "100%" in term.screen.decode()
    assert read_export(path, "jsonl") == expected


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request, tmp_path):
    """An empty database of either kind, as a deployment moving its history has."""
    if request.param == "sqlite":
        yield "sqlite:///%s" % (tmp_path / "new.db")
        return
    with services.postgres_database() as url:
        yield url


@pytest.mark.slow
def test_import_moves_history_to_a_new_database(database_url, conversation, fresh_database_url,
                                                tmp_path):
    room, name, expected = conversation
    path = tmp_path / "all.jsonl"
    ok(chat_admin(database_url, "history", "export", "--all", "--output", str(path)))
    exported = read_export(path, "jsonl")
    senders = {r["sender"] for r in exported}
    rooms = {r["roomId"] for r in exported}
    assert ok(chat_admin(fresh_database_url, "history", "import", str(path))) == (
        "imported %d messages (0 already present); created %d rooms and %d users\n"
        % (len(exported), len(rooms), len(senders)))
    assert ok(chat_admin(fresh_database_url, "history", "import", str(path))) == (
        "imported 0 messages (%d already present); created 0 rooms and 0 users\n" % len(exported))
    moved = Chatd(fresh_database_url).start()
    try:
        check_moved_history(moved, room, name, expected, senders)
    finally:
        moved.stop()


def check_moved_history(server, room, name, expected, senders):
    """The new chatd serves the same room, ids and messages; the sequence goes on."""
    carol = Client(server)
    listed = {r["roomId"]: r["roomName"] for r in carol.get("/api/rooms").json()}
    assert listed[room] == name
    assert carol.post("/api/join-room", {"roomId": room}).status_code == 200
    history = carol.get("/api/chat-history/" + room).json()["messages"]
    assert [record(room, name, m) for m in history] == expected
    for sender in senders:  # imported users exist, disabled, with no password
        assert carol.post("/api/register", {"username": sender, "password": "x" * 12},
                          auth=False).status_code == 409
        assert carol.post("/api/login", {"username": sender, "password": "x" * 12},
                          auth=False).status_code == 401
    sock = carol.ws(join=room)
    sock.say(room, "first after the move")  # after carol's member-added: the log goes on
    assert sock.expect("new-message")["id"] > expected[-1]["id"]
    new_room = carol.create_room()
    assert int(new_room[5:]) > max(int(r[5:]) for r in listed)


@pytest.mark.slow
def test_import_applies_nothing_from_a_file_with_a_bad_line(database_url, conversation, tmp_path):
    room, name, expected = conversation
    good = [json.dumps(dict(r, roomId="room_999998", roomName=unique("restored "))) for r in expected]
    target = "sqlite:///%s" % (tmp_path / "target.db")
    ok(chat_admin(target, "db", "migrate"))
    cases = [
        (2, "{not json", "not valid JSON"),
        (3, json.dumps(dict(expected[0], id="seven")), "'id'"),
        (4, json.dumps(dict(expected[0], timestamp="12:00")), "'timestamp'"),
        (5, json.dumps({k: v for k, v in expected[0].items() if k != "sender"}), "'sender'"),
        (6, json.dumps(dict(expected[0], roomId="lobby")), "'roomId'"),
        (7, "[1, 2]", "not a JSON object"),
    ]
    for number, bad_line, reason in cases:
        path = tmp_path / ("bad%d.jsonl" % number)
        lines = good[:number - 1] + [bad_line] + good[number - 1:]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        failed(chat_admin(target, "history", "import", str(path)), "line %d: " % number, reason)
    path.write_bytes(b'{"roomId": "room_1", "message": "\xff"}\n')
    failed(chat_admin(target, "history", "import", str(path)), "line 1: not UTF-8")
    assert ok(chat_admin(target, "room", "list", "--json")) == "[]\n"
    assert ok(chat_admin(target, "user", "list", "--json")) == "[]\n"


def test_import_refuses_a_room_name_taken_by_another_room(database_url, conversation, tmp_path):
    room, name, expected = conversation
    path = tmp_path / "clash.jsonl"
    lines = [dict(r, roomId="room_999997", roomName=unique("fresh ")) for r in expected[:2]]
    lines += [dict(r, roomId="room_999996") for r in expected]  # same name as `room`
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    failed(chat_admin(database_url, "history", "import", str(path)),
           "line 3: room name", "taken here by %s" % room)
    listed = json.loads(ok(chat_admin(database_url, "room", "list", "--json")))
    assert not {"room_999997", "room_999996"} & {r["roomId"] for r in listed}


@pytest.mark.parametrize("fmt, kind", [("csv", "is csv"), ("json", "is a JSON array")])
def test_import_of_a_csv_or_json_export_says_it_takes_jsonl(database_url, conversation, tmp_path,
                                                            fmt, kind):
    room, _, _ = conversation
    path = tmp_path / ("out." + fmt)
    ok(chat_admin(database_url, "history", "export", room, "--format", fmt, "--output", str(path)))
    failed(chat_admin(database_url, "history", "import", str(path)),
           "%s %s" % (path, kind), "history import takes the jsonl format")


def test_import_of_a_missing_file_fails_with_exit_1(database_url, tmp_path):
    failed(chat_admin(database_url, "history", "import", str(tmp_path / "nope.jsonl")),
           "nope.jsonl", "No such file")


def test_purge_deletes_older_messages_and_ids_go_on(database_url, client):
    alice = client()
    room = alice.create_room()
    sock = alice.ws(join=room)
    for n in range(6):
        sock.say(room, "old %d" % n)
        sock.expect("new-message", message="old %d" % n)
    cutoff = alice.get("/api/chat-history/" + room).json()["messages"][4]["timestamp"]
    sock.say(room, "new")
    newest = sock.expect("new-message", message="new")["id"]
    before = [m for m in alice.get("/api/chat-history/" + room).json()["messages"]
              if m["timestamp"] < cutoff]
    assert 1 <= len(before) <= 4
    assert ok(chat_admin(database_url, "history", "purge", room, "--before", cutoff,
                         "--yes")) == "purged %d messages from %s\n" % (len(before), room)
    left = alice.get("/api/chat-history/" + room).json()["messages"]
    assert [m["message"] for m in left] == ["old %d" % n for n in range(len(before), 6)] + ["new"]
    sock.say(room, "after purge")
    assert sock.expect("new-message", message="after purge")["id"] == newest + 1
    failed(chat_admin(database_url, "history", "purge", "room_999999", "--before", cutoff,
                      "--yes"), "No room")
    usage = chat_admin(database_url, "history", "purge", room)
    assert usage.returncode == 2 and "--before" in usage.stderr


@pytest.mark.slow
def test_purge_asks_on_a_terminal_and_dry_run_changes_nothing(database_url, client):
    alice = client()
    room = alice.create_room()
    sock = alice.ws(join=room)
    for n in range(3):
        sock.say(room, "old %d" % n)
        sock.expect("new-message", message="old %d" % n)
    purge = ["--database", database_url, "history", "purge", room, "--before", "2100-01-01"]

    def stored():
        return len(alice.get("/api/chat-history/" + room).json()["messages"])
    assert ok(chat_admin(None, *purge, "--dry-run")) == "would purge 3 messages from %s\n" % room
    # No terminal to ask on: refused, even with a "y" piped in.
    failed(chat_admin(None, *purge, stdin="y\n"), "stdin is not a terminal", "--yes")
    question = "Delete 3 messages of %s older than 2100-01-01T00:00:00.000Z? [y/N]: " % room
    for answer, code in (("n", 1), ("y", 0)):
        assert stored() == 3
        term = Terminal(purge)
        term.read_until(question)
        term.type(answer)
        assert term.finish() == code
    assert "purged 3 messages from %s" % room in term.screen.decode()
    assert stored() == 0
    bad = chat_admin(None, *purge[:-1], "2100-13-01")
    assert bad.returncode == 2 and "is neither a date" in bad.stderr
