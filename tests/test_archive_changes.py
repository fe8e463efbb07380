"""chat-admin history export/import carry edits, replies, mentions and reactions (issue 13);
deleted messages are never exported.

The messages are sent through a real chatd; their later changes (an edit, a
reply, reactions, a deletion) are written into its database with peewee, as
chatd's own operations would leave them, so these tests do not depend on the
WebSocket actions that make them.
"""
import contextlib
import csv
import json

import pytest

import services
from admin_tool import chat_admin, failed, ok
from chatd.storage import models
from chatd.storage.models import Membership, Mention, Message, Reaction, Room, RoomEvent, User
from helpers import Client, unique
from test_admin_history import FIELDS, csv_record

EDITED_MS = 1900000000123  # 2030-03-17T17:46:40.123Z
EDITED = "2030-03-17T17:46:40.123Z"


@contextlib.contextmanager
def database(url):
    """The models bound to `url` in this test process, inside one transaction."""
    db = models.open_database(url)
    try:
        with db.bind_ctx(models.MODELS), db.atomic():
            yield
    finally:
        db.close_all() if hasattr(db, "close_all") else db.close()


def user_pk(username):
    return User.get(User.username == username).id


@pytest.fixture(scope="module")
def changed(server, database_url):
    """A room whose messages were edited, answered, mentioned, reacted to and one deleted.

    Returns (room id, its records as an export must give them, the deleted text)."""
    alice, bob, carol = Client(server), Client(server), Client(server)
    room = alice.create_room(unique("changes "))
    bob.post("/api/join-room", {"roomId": room})
    sock = alice.ws(join=room)
    texts = ["hello @%s and @nobody" % bob.username, "tpyo", "secret, then deleted",
             "an answer", "plain"]
    for n, text in enumerate(texts):
        sock.say(room, text, client_msg_id="k%d" % n)
        sock.expect("new-message", message=text)
    history = alice.get("/api/chat-history/" + room).json()["messages"]
    ids = [m["id"] for m in history]
    room_pk = int(room[5:])
    with database(database_url):
        Message.update(mentions=json.dumps([bob.username])).where(
            (Message.room == room_pk) & (Message.seq == ids[0])).execute()
        Mention.insert(user=user_pk(bob.username), room=room_pk,
                       message_seq=ids[0]).on_conflict_ignore().execute()  # chatd stored it too
        Message.update(text="typo", edited_at=EDITED_MS).where(
            (Message.room == room_pk) & (Message.seq == ids[1])).execute()
        # Deleted but its text kept here: the export must leave it out by the flag.
        Message.update(deleted=True, deleted_by=user_pk(alice.username)).where(
            (Message.room == room_pk) & (Message.seq == ids[2])).execute()
        Message.update(reply_to=ids[0]).where(
            (Message.room == room_pk) & (Message.seq == ids[3])).execute()
        reactions = [(ids[0], bob.username, "👍"), (ids[0], carol.username, ":shipit:"),
                     (ids[0], alice.username, "👍"), (ids[3], carol.username, "🎉"),
                     (ids[2], bob.username, "👀")]
        for n, (seq, username, emoji) in enumerate(reactions):
            Reaction.insert(room=room_pk, message_seq=seq, user=user_pk(username), emoji=emoji,
                            created_at=EDITED_MS + n).execute()
    base = {"roomId": room, "roomName": name_of(alice, room),
            "sender": alice.username, "editedAt": None, "replyTo": None, "mentions": [],
            "reactions": []}
    expected = [dict(base, id=m["id"], message=m["message"], timestamp=m["timestamp"],
                     clientMsgId=m["clientMsgId"]) for m in history]
    expected[0].update(mentions=[bob.username], reactions=[
        {"emoji": "👍", "users": [bob.username, alice.username]},
        {"emoji": ":shipit:", "users": [carol.username]}])
    expected[1].update(message="typo", editedAt=EDITED)
    expected[3].update(replyTo=ids[0], reactions=[{"emoji": "🎉", "users": [carol.username]}])
    del expected[2]
    return room, expected, texts[2]


def name_of(client, room):
    return next(r["roomName"] for r in client.get("/api/rooms").json() if r["roomId"] == room)


def read(path, fmt):
    with open(path, encoding="utf-8", newline="") as f:
        if fmt == "jsonl":
            return [json.loads(line) for line in f]
        if fmt == "json":
            return json.load(f)
        return [csv_record(row) for row in list(csv.reader(f))[1:]]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "json"])
def test_export_carries_changes_and_leaves_deleted_messages_out(database_url, changed, tmp_path,
                                                                fmt):
    room, expected, deleted_text = changed
    path = tmp_path / ("out." + fmt)
    ok(chat_admin(database_url, "history", "export", room, "--format", fmt, "--output", str(path)))
    assert read(path, fmt) == expected
    assert deleted_text not in path.read_text(encoding="utf-8")
    if fmt == "csv":  # the contract's seven columns first, the changes after them
        header = path.read_text(encoding="utf-8").splitlines()[0]
        assert header == ("roomId,roomName,id,sender,message,timestamp,clientMsgId,"
                          "editedAt,replyTo,mentions,reactions")
    if fmt == "jsonl":
        assert [list(json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()
                ] == [FIELDS] * len(expected)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request, tmp_path):
    if request.param == "sqlite":
        yield "sqlite:///%s" % (tmp_path / "fresh.db")
        return
    with services.postgres_database() as url:
        yield url


def test_export_import_export_gives_the_same_records(database_url, changed, fresh_database_url,
                                                     tmp_path):
    room, expected, _ = changed
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    ok(chat_admin(database_url, "history", "export", room, "--output", str(first)))
    users = {r["sender"] for r in expected} | {
        name for r in expected for reaction in r["reactions"] for name in reaction["users"]}
    assert ok(chat_admin(fresh_database_url, "history", "import", str(first))) == (
        "imported %d messages (0 already present); created 1 rooms and %d users\n"
        % (len(expected), len(users)))
    ok(chat_admin(fresh_database_url, "history", "export", room, "--output", str(second)))
    assert second.read_bytes() == first.read_bytes()
    # Twice adds nothing: no message, no reaction doubled.
    assert ok(chat_admin(fresh_database_url, "history", "import", str(first))) == (
        "imported 0 messages (%d already present); created 0 rooms and 0 users\n" % len(expected))
    ok(chat_admin(fresh_database_url, "history", "export", room, "--output", str(second)))
    assert second.read_bytes() == first.read_bytes()
    with database(fresh_database_url):
        room_row = Room.get_by_id(int(room[5:]))
        assert room_row.last_seq >= max(r["id"] for r in expected)
        assert all(u.disabled and u.password_hash is None for u in User.select())
        assert Reaction.select().count() == sum(
            len(reaction["users"]) for r in expected for reaction in r["reactions"])


def test_an_export_without_the_change_fields_still_imports(changed, tmp_path):
    """A 0.1.0 export has only the contract's seven fields."""
    room, expected, _ = changed
    old = tmp_path / "old.jsonl"
    seven = ["roomId", "roomName", "id", "sender", "message", "timestamp", "clientMsgId"]
    old.write_text("".join(json.dumps({k: r[k] for k in seven}) + "\n" for r in expected),
                   encoding="utf-8")
    target = "sqlite:///%s" % (tmp_path / "target.db")
    ok(chat_admin(target, "history", "import", str(old)))
    out = ok(chat_admin(target, "history", "export", room))
    assert [json.loads(line) for line in out.splitlines()] == [
        dict(r, editedAt=None, replyTo=None, mentions=[], reactions=[]) for r in expected]


def test_import_makes_mention_rows_for_members_only(database_url, changed, tmp_path):
    """Imported into a room whose members exist: the mentioned member gets a Mention row
    (what unread-mention counts read); a mentioned non-member only stays in the list."""
    room, expected, _ = changed
    member = expected[0]["mentions"][0]
    outsider = unique("out")  # a registered user who is not in the room
    ok(chat_admin(database_url, "user", "create", outsider, "--password-stdin",
                  stdin="x" * 12 + "\n"))
    line = dict(expected[-1], id=expected[-1]["id"] + 100, clientMsgId=None,
                message="@%s @%s" % (member, outsider), mentions=[member, outsider])
    path = tmp_path / "more.jsonl"
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    ok(chat_admin(database_url, "history", "import", str(path)))
    with database(database_url):
        mentioned = (Mention.select(User.username).join(User, on=(Mention.user == User.id))
                     .where((Mention.room == int(room[5:])) & (Mention.message_seq == line["id"]))
                     .tuples())
        assert [name for (name,) in mentioned] == [member]
        assert Room.get_by_id(int(room[5:])).last_seq >= line["id"]
    out = ok(chat_admin(database_url, "history", "export", room))
    assert json.loads(out.splitlines()[-1]) == line


BAD_FIELDS = [
    ({"editedAt": "yesterday"}, "'editedAt'"),
    ({"replyTo": "7"}, "'replyTo'"),
    ({"replyTo": 0}, "'replyTo'"),
    ({"mentions": "bob"}, "'mentions'"),
    ({"mentions": ["no spaces allowed"]}, "'mentions'"),
    ({"reactions": {"emoji": "👍"}}, "'reactions'"),
    ({"reactions": [{"emoji": "two words", "users": ["bob12"]}]}, "'reactions'"),
    ({"reactions": [{"emoji": "x" * 33, "users": ["bob12"]}]}, "'reactions'"),
    ({"reactions": [{"emoji": "👍", "users": []}]}, "'reactions'"),
    ({"reactions": [{"emoji": "👍", "users": ["?"]}]}, "'reactions'"),
]


@pytest.mark.parametrize("change, reason", BAD_FIELDS)
def test_import_refuses_bad_change_fields_and_applies_nothing(changed, tmp_path, change, reason):
    _, expected, _ = changed
    target = "sqlite:///%s" % (tmp_path / "target.db")
    path = tmp_path / "bad.jsonl"
    lines = [expected[0], dict(expected[1], **change), expected[2]]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    failed(chat_admin(target, "history", "import", str(path)), "line 2: ", reason)
    assert ok(chat_admin(target, "room", "list", "--json")) == "[]\n"


def test_purge_takes_the_messages_reactions_mentions_and_events_with_them(database_url, client):
    alice = client()
    room = alice.create_room()
    sock = alice.ws(join=room)
    sock.say(room, "old @%s" % alice.username)
    seq = sock.expect("new-message")["id"]
    room_pk = int(room[5:])
    with database(database_url):
        me = user_pk(alice.username)
        Reaction.insert(room=room_pk, message_seq=seq, user=me, emoji="👍", created_at=1).execute()
        Mention.insert(user=me, room=room_pk, message_seq=seq).on_conflict_ignore().execute()
        RoomEvent.insert(room=room_pk, seq=seq + 1, kind="message-edited", actor=me,
                         message_seq=seq, text="an edited text", created_at=1).execute()
        assert Membership.select().where(Membership.room == room_pk).count() == 1
    assert ok(chat_admin(database_url, "history", "purge", room, "--before", "2100-01-01",
                         "--yes")) == "purged 1 messages from %s\n" % room
    with database(database_url):
        for model in (Message, Reaction, Mention):
            assert model.select().where(model.room == room_pk).count() == 0, model
        # The events about the purged messages go; the room's membership events stay.
        assert not RoomEvent.select().where((RoomEvent.room == room_pk) &
                                            RoomEvent.message_seq.is_null(False)).exists()
        assert RoomEvent.select().where(RoomEvent.room == room_pk).count() == 1
