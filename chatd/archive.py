"""History out and in, retention and backups: operations on a whole database.

Export streams: each room is read in (room, seq) keyset batches, each batch
in its own short read transaction, so memory stays flat whatever the room
size and a live chatd keeps writing. A record is a message's current state:
its text as last edited, what it answers, whom it mentions and its
reactions; a deleted message is left out. Import is all-or-nothing per file:
every line is validated first, then the whole file goes in one transaction.
Purge deletes in small batches, one short write transaction each, so chatd's
writes get in between. Records are tuples in the order of FIELDS.
"""
import collections
import csv
import datetime
import json
import os
import re
import sqlite3
import tempfile
import time

import peewee as pw

from . import validate
from .errors import BadRequest, Conflict, NotFound
from .events import DELETED_SENDER, iso
from .keys import room_key, room_name_key, user_key
from .ops.rooms import existing_room
from .storage import models, rooms, users
from .storage.models import (Membership, Mention, Message, Reaction, Room, RoomEvent, User,
                             transaction)

# The contract's seven columns first (PROTOCOL section 4), then the message's
# changes: a reader of a 0.1.0 export, or of the first seven csv columns, is not broken.
FIELDS = ("roomId", "roomName", "id", "sender", "message", "timestamp", "clientMsgId",
          "editedAt", "replyTo", "mentions", "reactions")
EXPORT_BATCH = 5000  # messages per read transaction
IMPORT_BATCH = 1000  # rows per INSERT statement
PURGE_BATCH = 1000  # messages per write transaction
PURGE_PAUSE = 0.01  # seconds between purge batches: a waiting chatd writer takes the lock

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)\Z")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse_timestamp(text, field="timestamp"):
    """RFC 3339 (with Z or an offset) -> integer milliseconds since the epoch."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        raise BadRequest("Field '%s' must be an RFC 3339 time like 2024-12-10T12:00:00Z." % field)
    fraction = re.search(r"\.(\d+)", text)
    whole = re.sub(r"\.\d+", "", text).upper().replace("Z", "+00:00")
    try:
        moment = datetime.datetime.fromisoformat(whole)
    except ValueError:
        raise BadRequest("Field '%s' is not a real time: %s." % (field, text))
    millis = int((fraction.group(1) + "00")[:3]) if fraction else 0
    return (moment - _EPOCH) // datetime.timedelta(seconds=1) * 1000 + millis


# -- export ----------------------------------------------------------------------
def rooms_for_export(room_ids=None):
    """[(pk, name)] of the named rooms (NotFound for any unknown), or of all rooms."""
    return _rooms(None if room_ids is None else [validate.room_id(r) for r in room_ids])


@transaction
def _rooms(pks):
    query = Room.select(Room.id, Room.name).order_by(Room.id)
    if pks is None:
        return list(query.tuples())
    found = dict(query.where(Room.id.in_(pks)).tuples())
    for pk in pks:
        if pk not in found:
            raise NotFound("No room %s." % room_key(pk))
    return [(pk, found[pk]) for pk in dict.fromkeys(pks)]


@transaction
def count_messages(room_pks=None, since=None, until=None, with_deleted=False):
    """How many messages an export of these rooms (None: all) will yield, for a progress
    bar; with_deleted: also the deleted ones' rows (what a purge removes)."""
    query = _in_window(Message.select(), since, until)
    if not with_deleted:
        query = query.where(Message.deleted == False)  # noqa: E712
    if room_pks is not None:
        query = query.where(Message.room.in_(room_pks))
    return query.count()


def export_records(rooms, since=None, until=None):
    """Every live message of the rooms with since <= timestamp < until, in (room, id) order."""
    for pk, name in rooms:
        key, after = room_key(pk), 0
        while True:
            rows, reactions = _export_batch(pk, after, since, until)
            for seq, sender, text, created_at, client_msg_id, edited_at, reply_to, mentions in rows:
                # Inline tests, not calls: most messages have none of the last four.
                yield (key, name, seq, sender or DELETED_SENDER, text, iso(created_at),
                       client_msg_id, edited_at and iso(edited_at), reply_to,
                       mentions and _names(mentions), reactions and reactions.get(seq))
            if len(rows) < EXPORT_BATCH:
                break
            after = rows[-1][0]


@transaction
def _export_batch(room_pk, after_seq, since, until):
    """(message rows, {seq: reactions}) of the next batch, read in one snapshot."""
    query = Message.select().where((Message.room == room_pk) & (Message.seq > after_seq)
                                   & (Message.deleted == False))  # noqa: E712
    query = (_in_window(query, since, until)
             .select(Message.seq, User.username, Message.text, Message.created_at,
                     Message.client_msg_id, Message.edited_at, Message.reply_to, Message.mentions)
             .join(User, pw.JOIN.LEFT_OUTER, on=(Message.sender == User.id))
             .order_by(Message.seq).limit(EXPORT_BATCH))
    # The driver's rows as they are: every column is already an int or a str,
    # and peewee's per-field conversion would halve the export rate.
    rows = models.proxy.obj.execute(query).fetchall()
    return rows, _reactions(room_pk, rows[0][0], rows[-1][0]) if rows else {}


def _names(mentions):
    """A message's stored mentions (JSON text) as a list; None when it mentions no one."""
    return json.loads(mentions) or None


def _reactions(room_pk, first_seq, last_seq):
    """{seq: [{"emoji", "users"}, ...]} of the messages first_seq..last_seq: one query per
    batch, each emoji in the order it was first added, its users in the order they added it."""
    query = (Reaction.select(Reaction.message_seq, Reaction.emoji, User.username)
             .join(User, on=(Reaction.user == User.id))
             .where((Reaction.room == room_pk) & (Reaction.message_seq >= first_seq)
                    & (Reaction.message_seq <= last_seq))
             .order_by(Reaction.id))  # the order they were added in, as history lists them
    found = {}
    for seq, emoji, username in models.proxy.obj.execute(query).fetchall():
        found.setdefault(seq, {}).setdefault(emoji, []).append(username)
    return {seq: [{"emoji": emoji, "users": names} for emoji, names in by_emoji.items()]
            for seq, by_emoji in found.items()}


def _in_window(query, since, until):
    if since is not None:
        query = query.where(Message.created_at >= since)
    if until is not None:
        query = query.where(Message.created_at < until)
    return query


_string = json.encoder.encode_basestring  # the C one; keeps non-ASCII text as it is


def _json_value(value):
    return json.dumps(value, ensure_ascii=False)


def _json_object(record):
    """The record as a JSON object with FIELDS as keys. Only the strings need
    encoding, so it is formatted directly: json.dumps per record held export
    under 100,000 messages/s, this makes it about 270,000."""
    (room_id, room_name, seq, sender, text, timestamp, client_msg_id,
     edited_at, reply_to, mentions, reactions) = record
    changed = edited_at or reply_to or mentions or reactions
    return ((_CHANGED if changed else _UNCHANGED)
            % (room_id, _string(room_name), seq, _string(sender), _string(text), timestamp,
               "null" if client_msg_id is None else _string(client_msg_id),
               _changes_json(edited_at, reply_to, mentions, reactions) if changed else ""))


_CHANGED = ('{"roomId": "%s", "roomName": %s, "id": %d, "sender": %s, "message": %s, '
            '"timestamp": "%s", "clientMsgId": %s, %s}')
# most messages: the last four fields as constant text
_UNCHANGED = _CHANGED.replace(
    "%s}", '"editedAt": null, "replyTo": null, "mentions": [], "reactions": []%s}')


def _changes_json(edited_at, reply_to, mentions, reactions):
    return ('"editedAt": %s, "replyTo": %s, "mentions": %s, "reactions": %s'
            % ("null" if edited_at is None else '"%s"' % edited_at,
               "null" if reply_to is None else "%d" % reply_to,
               _json_value(mentions or []), _json_value(reactions or [])))


def write_jsonl(records, out):
    for record in records:
        out.write(_json_object(record) + "\n")


def write_json(records, out):
    """One JSON array, written item by item."""
    out.write("[")
    separator = "\n"
    for record in records:
        out.write(separator + _json_object(record))
        separator = ",\n"
    out.write("\n]\n")


def write_csv(records, out):
    """RFC 4180: a header row, CRLF line ends, quotes where needed (open `out` with newline='').
    mentions and reactions are JSON text in their cell; a cell is empty when there is none."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    writer.writerows(_csv_row(record) for record in records)


def _csv_row(record):
    if not (record[9] or record[10]):
        return record[:9] + ("", "")
    return record[:9] + tuple(_json_value(v) if v else "" for v in record[9:])


WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "json": write_json}


# -- import ----------------------------------------------------------------------
def import_jsonl(path):
    """Restore a jsonl export: validate every line, then apply it all in one transaction.

    Returns counts: messages added, messages already present, rooms and users created.
    """
    _refuse_other_formats(path)
    for _ in _read_records(path):
        pass
    return _apply_import(path)


def _refuse_other_formats(path):
    """A csv or json export is named as such, not reported as a bad JSON line."""
    with open(path, "rb") as f:
        first = next((raw.strip() for raw in f if raw.strip()), b"")
    if first.startswith(b"["):
        kind = "a JSON array (a json export)"
    elif first.startswith(b"roomId,"):
        kind = "csv (a csv export)"
    else:
        return
    raise BadRequest("%s is %s; history import takes the jsonl format "
                     "(history export --format jsonl, the default)" % (path, kind))


def _read_records(path):
    """(line number, parsed record) for each non-blank line; BadRequest names the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                if line.strip():
                    yield number, _parse_record(line)
            except UnicodeDecodeError:
                raise BadRequest("line %d: not UTF-8 text" % number)
            except BadRequest as exc:
                raise BadRequest("line %d: %s" % (number, exc.message))


def _parse_record(line):
    """One export line -> an ImportRecord (sender None for a deleted user's message).
    The fields after clientMsgId are optional: a 0.1.0 export has none of them."""
    try:
        body = json.loads(line)
    except (ValueError, RecursionError):
        raise BadRequest("not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("not a JSON object")
    room_pk = validate.room_id(validate.string(body, "roomId"))
    room_name = validate.room_name(validate.string(body, "roomName"))
    seq = _message_id(body, "id", required=True)
    sender = validate.string(body, "sender")
    sender = None if sender == DELETED_SENDER else validate.username(sender, "sender")
    text = validate.string(body, "message")
    if validate.has_control(text, allow_newlines=True):
        raise BadRequest("Field 'message' must not contain control characters.")
    created_at = parse_timestamp(validate.string(body, "timestamp"))
    client_msg_id = validate.client_msg_id(body.get("clientMsgId"))
    edited_at = body.get("editedAt")
    edited_at = None if edited_at is None else parse_timestamp(edited_at, "editedAt")
    return ImportRecord(room_pk, room_name, seq, sender, text, created_at, client_msg_id,
                        edited_at, _message_id(body, "replyTo"), _mentions(body.get("mentions")),
                        _reactions_field(body.get("reactions")))


class ImportRecord(collections.namedtuple("ImportRecord", (
        "room_pk", "room_name", "seq", "sender", "text", "created_at", "client_msg_id",
        "edited_at", "reply_to", "mentions", "reactions"))):
    """A validated export line: times in ms, mentions a list of usernames, reactions a
    list of (emoji, [usernames]); both empty when there are none."""


def _message_id(body, field, required=False):
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value < 2 ** 62:
        raise BadRequest("Field '%s' must be a positive integer." % field)
    return value


def _mentions(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("Field 'mentions' must be a list of usernames.")
    return [validate.username(name, "mentions") for name in value]


def _reactions_field(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("Field 'reactions' must be a list of {emoji, users}.")
    reactions = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRequest("Field 'reactions' must be a list of {emoji, users}.")
        emoji = validate.emoji(item.get("emoji"), "reactions")
        names = item.get("users")
        if not isinstance(names, list) or not names:
            raise BadRequest("Field 'reactions' must give each emoji a list of users.")
        reactions.append((emoji, [validate.username(name, "reactions") for name in names]))
    return reactions


@transaction
def _apply_import(path):
    state = _Import()
    for number, record in _read_records(path):
        state.add(number, record)
    state.flush()
    for room_pk, seq in state.top_seq.items():  # later messages continue after the imported ids
        Room.update(last_seq=seq).where((Room.id == room_pk) & (Room.last_seq < seq)).execute()
    if state.counts["rooms"]:
        _advance_room_sequence()
    return dict(state.counts, skipped=state.total - state.counts["messages"])


class _Import:
    """One import transaction's running state: rooms and users seen, the batch to insert."""

    def __init__(self):
        self.counts = {"rooms": 0, "users": 0, "messages": 0}
        self.rooms, self.user_pks, self.members = set(), {None: None}, {}
        self.top_seq, self.batch, self.total = {}, {}, 0

    def add(self, number, record):
        self.total += 1
        if record.room_pk not in self.rooms:
            self.counts["rooms"] += _ensure_room(number, record.room_pk, record.room_name,
                                                 record.created_at)
            self.rooms.add(record.room_pk)
        for name in [record.sender] + [n for _, names in record.reactions for n in names]:
            self.user_pk(name)
        # keyed by (room, id): a line repeated in the file goes in once
        self.batch.setdefault((record.room_pk, record.seq), record)
        self.top_seq[record.room_pk] = max(record.seq, self.top_seq.get(record.room_pk, 0))
        if len(self.batch) >= IMPORT_BATCH:
            self.flush()

    def user_pk(self, username):
        """The user's pk; a missing one is created disabled, with no password."""
        if username not in self.user_pks:
            user = users.by_name(username)
            if user is None:
                user = users.create(username, None, disabled=True)
                self.counts["users"] += 1
            self.user_pks[username] = user.id
        return self.user_pks[username]

    def flush(self):
        """Insert the batch's messages not already here, with their reactions and mentions."""
        present = _present(self.batch)
        new = [r for key, r in self.batch.items() if key not in present]
        self.batch = {}
        if not new:
            return
        _insert_messages([(r.room_pk, r.seq, self.user_pk(r.sender), r.text, r.created_at,
                           r.client_msg_id, r.edited_at, r.reply_to, _mentions_text(r.mentions))
                          for r in new])
        self.counts["messages"] += len(new)
        _insert_ignoring_repeats(Reaction, [Reaction.room, Reaction.message_seq, Reaction.user,
                                            Reaction.emoji, Reaction.created_at], [
            (r.room_pk, r.seq, self.user_pk(name), emoji, r.created_at)
            for r in new for emoji, names in r.reactions for name in names])
        _insert_ignoring_repeats(Mention, [Mention.user, Mention.room, Mention.message_seq], [
            (self.room_members(r.room_pk)[user_key(name)], r.room_pk, r.seq)
            for r in new for name in r.mentions if user_key(name) in self.room_members(r.room_pk)])

    def room_members(self, room_pk):
        """{username key: user pk} of the room's members: only members are mentioned."""
        if room_pk not in self.members:
            rows = (Membership.select(User.username_key, User.id).join(User)
                    .where(Membership.room == room_pk).tuples())
            self.members[room_pk] = dict(rows)
        return self.members[room_pk]


def _present(batch):
    """The (room, id) keys of the batch already in the database."""
    present = set()
    for room_pk in {room for room, _ in batch}:
        seqs = [seq for room, seq in batch if room == room_pk]
        present.update((room_pk, seq) for (seq,) in Message.select(Message.seq).where(
            (Message.room == room_pk) & Message.seq.in_(seqs)).tuples())
    return present


def _mentions_text(names):
    return json.dumps(names, separators=(",", ":")) if names else None


def _ensure_room(number, room_pk, name, created_at):
    """1 if the room was created with its exported id, 0 if it exists."""
    if Room.select().where(Room.id == room_pk).exists():
        return 0
    taken = rooms.by_name(name)
    if taken is not None:
        raise Conflict("line %d: room name '%s' is taken here by %s, so %s cannot be created"
                       % (number, name, room_key(taken.id), room_key(room_pk)))
    Room.insert(id=room_pk, name=name, name_key=room_name_key(name), created_by=None,
                created_at=created_at, last_seq=0).execute()
    return 1


def _insert_messages(rows):
    """Insert messages known to be new here (same room and id absent). A clash on the
    clientMsgId index means this database holds another message with that retry key."""
    fields = [Message.room, Message.seq, Message.sender, Message.text, Message.created_at,
              Message.client_msg_id, Message.edited_at, Message.reply_to, Message.mentions]
    try:
        Message.insert_many(rows, fields=fields).execute()
    except pw.IntegrityError:
        raise Conflict("a message of this file has the clientMsgId of another message of "
                       "its sender in its room already here; nothing was imported")


def _insert_ignoring_repeats(model, fields, rows):
    for start in range(0, len(rows), IMPORT_BATCH):
        model.insert_many(rows[start:start + IMPORT_BATCH], fields=fields) \
            .on_conflict_ignore().execute()


def _advance_room_sequence():
    """PostgreSQL's serial does not see ids inserted by hand: move it past them."""
    if isinstance(models.proxy.obj, pw.PostgresqlDatabase):
        models.proxy.obj.execute_sql(
            "SELECT setval(pg_get_serial_sequence('room', 'id'), (SELECT MAX(id) FROM room))")


# -- retention -------------------------------------------------------------------
def purge(room_id, before):
    """Delete a room's messages older than `before` (ms), in short batches; returns the count."""
    room_pk = _room_pk(room_id)
    total = 0
    while True:
        deleted = _purge_batch(room_pk, before)
        total += deleted
        if deleted < PURGE_BATCH:
            return total
        time.sleep(PURGE_PAUSE)


def purge_count(room_id, before):
    """How many messages purge(room_id, before) would delete now."""
    return count_messages([_room_pk(room_id)], until=before, with_deleted=True)


@transaction
def _room_pk(room_id):
    return existing_room(room_id).id


@models.write_transaction
def _purge_batch(room_pk, before):
    """Delete the oldest batch with everything about it: reactions, mentions and the log's
    events on those messages (an edit's event holds the text too)."""
    oldest = list(Message.select(Message.id, Message.seq)
                  .where((Message.room == room_pk) & (Message.created_at < before))
                  .order_by(Message.seq).limit(PURGE_BATCH).tuples())
    if not oldest:
        return 0
    ids, seqs = zip(*oldest)
    for model in (Reaction, Mention, RoomEvent):
        model.delete().where((model.room == room_pk) & model.message_seq.in_(seqs)).execute()
    return Message.delete().where(Message.id.in_(ids)).execute()


# -- schema and backup -----------------------------------------------------------
@transaction
def schema_version():
    """The version the database's schema is at."""
    return models.schema_version()


def backup(path):
    """A consistent copy of a live SQLite database at `path` (SQLite's online backup API).

    The copy holds password and token hashes, so it is private (0600) from its
    first byte: SQLite writes into a file already created that way.
    """
    db = models.proxy.obj
    if not isinstance(db, pw.SqliteDatabase):
        raise BadRequest("db backup copies SQLite databases; on PostgreSQL use pg_dump, "
                         "keeping the dump private as it holds password hashes "
                         "(e.g. umask 077; pg_dump --format=custom --file=chat.dump DBNAME).")
    if os.path.exists(path) and os.path.samefile(path, db.database):
        raise BadRequest("The backup file is the database itself.")
    fd, partial = private_file_beside(path)
    os.close(fd)  # SQLite opens it by name; an empty file is an empty database
    try:
        target = sqlite3.connect(partial)
        try:
            # pages=-1: one step under one read snapshot. Stepwise copying restarts
            # whenever chatd writes, and might never finish under load; in WAL mode
            # the snapshot does not block chatd's writers.
            with models.session(db):
                db.connection().backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def private_file_beside(path):
    """(fd, name) of a new empty file, mode 0600, in `path`'s folder, to be renamed
    to `path` once complete: nobody sees half a file, nor anyone else a private one."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        return tempfile.mkstemp(dir=folder, prefix=".%s." % os.path.basename(path),
                                suffix=".partial")
    except OSError as exc:  # name the file the operator asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, path)
