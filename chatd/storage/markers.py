"""Read markers (Membership.read_upto) and the unread counts read from them.

Counts are counted, not kept: a member's unread messages are a range of the
message table's (room, seq) index after the marker, so edits, deletions,
joins and markers moving on other devices can never leave a stored counter
wrong. One query answers every room of a user (see bench/unread_latency.py
for what it costs).
"""
from .models import Membership, Room, execute

# Per membership of the user: the room's last seq, the marker, the messages
# after it that are not deleted and not the user's own, and how many of those
# mention the user (Mention rows, joined to their message for the same rules).
_COUNTS = (
    'SELECT ms."room_id", r."last_seq", ms."read_upto", '
    '(SELECT COUNT(*) FROM "message" m WHERE m."room_id" = ms."room_id" '
    ' AND m."seq" > ms."read_upto" AND NOT m."deleted" '
    ' AND (m."sender_id" IS NULL OR m."sender_id" <> ms."user_id")), '
    '(SELECT COUNT(*) FROM "mention" mn JOIN "message" m '
    ' ON m."room_id" = mn."room_id" AND m."seq" = mn."message_seq" '
    ' WHERE mn."user_id" = ms."user_id" AND mn."room_id" = ms."room_id" '
    ' AND mn."message_seq" > ms."read_upto" AND NOT m."deleted" '
    ' AND (m."sender_id" IS NULL OR m."sender_id" <> ms."user_id")) '
    'FROM "membership" ms JOIN "room" r ON r."id" = ms."room_id" WHERE ms."user_id" = ?')


def counts(user_pk):
    """{room_pk: (last_seq, read_upto, unread, mentions)} for every room the user is in."""
    rows = execute(_COUNTS, (user_pk,)).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def advance(user_pk, room_pk, up_to):
    """Move the marker forward to up_to, clamped to the room's last seq.

    Returns (the marker now, whether it moved). A smaller up_to changes
    nothing. Run inside the caller's transaction, with membership checked.
    """
    last = Room.select(Room.last_seq).where(Room.id == room_pk).scalar() or 0
    target = min(up_to, last)
    moved = (Membership.update(read_upto=target)
             .where((Membership.user == user_pk) & (Membership.room == room_pk) &
                    (Membership.read_upto < target)).execute())
    if moved:
        return target, True
    return marker(user_pk, room_pk), False


def marker(user_pk, room_pk):
    return (Membership.select(Membership.read_upto)
            .where((Membership.user == user_pk) & (Membership.room == room_pk)).scalar())


def start(user_pk, room_pk):
    """A new member's marker: the room's last seq, so they start with nothing unread.

    Call in the transaction that made the membership, after any event it
    appended to the room's log (their own member-added included).
    """
    (Membership.update(read_upto=Room.select(Room.last_seq).where(Room.id == room_pk))
     .where((Membership.user == user_pk) & (Membership.room == room_pk)).execute())
