"""History out and in, retention and backups: operations on a whole database.

Export streams: each room is read in (room, seq) keyset batches, each batch
in its own short read transaction, so memory stays flat whatever the room
size and a live chatd keeps writing. Import is all-or-nothing per file: every
line is validated first, then the whole file goes in one transaction.
Purge deletes in small batches, one short write transaction each, so chatd's
writes get in between. Records are tuples in the order of FIELDS.
"""
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
from .keys import room_key, room_name_key
from .ops.rooms import existing_room
from .storage import models, rooms, users
from .storage.models import Message, Room, User, transaction

FIELDS = ("roomId", "roomName", "id", "sender", "message", "timestamp", "clientMsgId")
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
def count_messages(room_pks=None, since=None, until=None):
    """How many messages an export of these rooms (None: all) will yield, for a progress bar."""
    query = _in_window(Message.select(), since, until)
    if room_pks is not None:
        query = query.where(Message.room.in_(room_pks))
    return query.count()


def export_records(rooms, since=None, until=None):
    """Every message of the rooms with since <= timestamp < until, in (room, id) order."""
    for pk, name in rooms:
        key, after = room_key(pk), 0
        while True:
            rows = _export_batch(pk, after, since, until)
            for seq, sender, text, created_at, client_msg_id in rows:
                yield (key, name, seq, sender or DELETED_SENDER, text,
                       iso(created_at), client_msg_id)
            if len(rows) < EXPORT_BATCH:
                break
            after = rows[-1][0]


@transaction
def _export_batch(room_pk, after_seq, since, until):
    query = Message.select().where((Message.room == room_pk) & (Message.seq > after_seq))
    query = (_in_window(query, since, until)
             .select(Message.seq, User.username, Message.text, Message.created_at,
                     Message.client_msg_id)
             .join(User, pw.JOIN.LEFT_OUTER, on=(Message.sender == User.id))
             .order_by(Message.seq).limit(EXPORT_BATCH))
    # The driver's rows as they are: every column is already an int or a str,
    # and peewee's per-field conversion would halve the export rate.
    return models.proxy.obj.execute(query).fetchall()


def _in_window(query, since, until):
    if since is not None:
        query = query.where(Message.created_at >= since)
    if until is not None:
        query = query.where(Message.created_at < until)
    return query


_string = json.encoder.encode_basestring  # the C one; keeps non-ASCII text as it is


def _json_object(record):
    """The record as a JSON object with FIELDS as keys. Only the strings need
    encoding, so it is formatted directly: json.dumps per record held export
    under 100,000 messages/s, this makes it about 270,000."""
    room_id, room_name, seq, sender, text, timestamp, client_msg_id = record
    return ('{"roomId": "%s", "roomName": %s, "id": %d, "sender": %s, "message": %s, '
            '"timestamp": "%s", "clientMsgId": %s}'
            % (room_id, _string(room_name), seq, _string(sender), _string(text), timestamp,
               "null" if client_msg_id is None else _string(client_msg_id)))


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
    """RFC 4180: a header row, CRLF line ends, quotes where needed (open `out` with newline='')."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    writer.writerows(records)


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
    """One export line -> (room_pk, room_name, seq, sender or None, text, created_ms, clientMsgId)."""
    try:
        body = json.loads(line)
    except (ValueError, RecursionError):
        raise BadRequest("not valid JSON")
    if not isinstance(body, dict):
        raise BadRequest("not a JSON object")
    room_pk = validate.room_id(validate.string(body, "roomId"))
    room_name = validate.room_name(validate.string(body, "roomName"))
    seq = body.get("id")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq < 2 ** 62:
        raise BadRequest("Field 'id' must be a positive integer.")
    sender = validate.string(body, "sender")
    sender = None if sender == DELETED_SENDER else validate.username(sender, "sender")
    text = validate.string(body, "message")
    if validate.has_control(text, allow_newlines=True):
        raise BadRequest("Field 'message' must not contain control characters.")
    created_at = parse_timestamp(validate.string(body, "timestamp"))
    client_msg_id = validate.client_msg_id(body.get("clientMsgId"))
    return room_pk, room_name, seq, sender, text, created_at, client_msg_id


@transaction
def _apply_import(path):
    counts = {"rooms": 0, "users": 0, "messages": 0}
    rooms, users, top_seq, batch, total = set(), {None: None}, {}, [], 0
    for number, record in _read_records(path):
        total += 1
        room_pk, room_name, seq, sender, text, created_at, client_msg_id = record
        if room_pk not in rooms:
            counts["rooms"] += _ensure_room(number, room_pk, room_name, created_at)
            rooms.add(room_pk)
        if sender not in users:
            users[sender], created = _ensure_user(sender)
            counts["users"] += created
        batch.append((room_pk, seq, users[sender], text, created_at, client_msg_id))
        top_seq[room_pk] = max(seq, top_seq.get(room_pk, 0))
        if len(batch) >= IMPORT_BATCH:
            counts["messages"] += _insert_messages(batch)
            batch = []
    counts["messages"] += _insert_messages(batch)
    for room_pk, seq in top_seq.items():  # later messages continue after the imported ids
        Room.update(last_seq=seq).where((Room.id == room_pk) & (Room.last_seq < seq)).execute()
    if counts["rooms"]:
        _advance_room_sequence()
    return dict(counts, skipped=total - counts["messages"])


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


def _ensure_user(username):
    """(user pk, 1 if created): a missing sender comes back disabled, with no password."""
    user = users.by_name(username)
    if user is not None:
        return user.id, 0
    return users.create(username, None, disabled=True).id, 1


def _insert_messages(rows):
    """Insert, skipping any already present (same room and id); how many went in."""
    if not rows:
        return 0
    fields = [Message.room, Message.seq, Message.sender, Message.text,
              Message.created_at, Message.client_msg_id]
    return Message.insert_many(rows, fields=fields).on_conflict_ignore().as_rowcount().execute()


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
    return count_messages([_room_pk(room_id)], until=before)


@transaction
def _room_pk(room_id):
    return existing_room(room_id).id


@transaction
def _purge_batch(room_pk, before):
    oldest = (Message.select(Message.id)
              .where((Message.room == room_pk) & (Message.created_at < before))
              .order_by(Message.seq).limit(PURGE_BATCH))
    return Message.delete().where(Message.id.in_(oldest)).execute()


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
