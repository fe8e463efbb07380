"""Read markers and unread counts (PROTOCOL.md section 8)."""
from .. import validate
from ..errors import BadRequest
from ..keys import room_key
from ..storage import markers
from ..storage.models import transaction
from .rooms import member_room, visible_rooms


def mark_read(chat, user, room_id, up_to):
    """Move the user's marker in the room to up_to; returns the marker now.

    An up_to beyond the room's last seq is clamped to it (a client may read
    ahead of what it was sent; it cannot have read more than exists). Every
    session of the user, on every process, hears `read-marker` once it is
    stored, and only when it moved.
    """
    if up_to is None:
        raise BadRequest("Field 'upTo' is required.")
    if isinstance(up_to, str):  # JSON: a number, not a string of digits
        raise BadRequest("Field 'upTo' must be an integer.")
    up_to = validate.integer(up_to, "upTo", 0)
    _senders_marked(chat)
    room_pk, read_upto, moved = _advance(user, room_id, up_to)
    if moved and chat.to_user is not None:
        chat.to_user(user.username, {"action": "read-marker", "roomId": room_key(room_pk),
                                     "upTo": read_upto})
    return read_upto


@transaction
def _advance(user, room_id, up_to):
    room = member_room(user, room_id)
    read_upto, moved = markers.advance(user.id, room.id, up_to)
    return room.id, read_upto, moved


def _senders_marked(chat):
    """On SQLite the writer moves senders' markers a moment after their messages:
    before a marker is read, every message stored so far has moved its sender's."""
    if chat.writer is not None:
        chat.writer.catch_up_now(index=False)


def rooms_with_unread(chat, user):
    """GET /api/rooms: the rooms the user may see, those it is in with lastSeq,
    readUpTo, unread and mentions (one query for all of them), in one transaction."""
    _senders_marked(chat)
    return _rooms_with_unread(user)


@transaction
def _rooms_with_unread(user):
    items = visible_rooms(user)
    counts = markers.counts(user.id)
    for item in items:
        found = counts.get(validate.room_id(item["roomId"]))
        if found is not None:
            item["lastSeq"], item["readUpTo"], item["unread"], item["mentions"] = found
    return items
