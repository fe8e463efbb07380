"""Queries on rooms and their memberships."""
import peewee as pw

from ..keys import room_name_key
from .models import Membership, Message, Room, User, now_ms


def by_pk(room_pk):
    return Room.get_or_none(Room.id == room_pk)


def by_name(name):
    """The room whose name matches ignoring case, or None."""
    return Room.get_or_none(Room.name_key == room_name_key(name))


def create(name, user):
    """The new room, created by `user`, or None if the name (ignoring case) is taken."""
    try:
        return Room.create(name=name, name_key=room_name_key(name), created_by=user,
                           created_at=now_ms())
    except pw.IntegrityError:
        return None


def delete(room):
    room.delete_instance()


def last_seq(room_pk):
    return Room.select(Room.last_seq).where(Room.id == room_pk).scalar() or 0


def listing(message_counts=False):
    """(pk, name, created_at, creator, member count, message count or None, kind, topic)
    of every room."""
    members = (Membership.select(pw.fn.COUNT(Membership.id))
               .where(Membership.room == Room.id))
    messages = (Message.select(pw.fn.COUNT(Message.id)).where(Message.room == Room.id)
                if message_counts else pw.Value(None))
    return list(Room.select(Room.id, Room.name, Room.created_at, User.username,
                            members.alias("member_count"), messages.alias("message_count"),
                            Room.kind, Room.topic)
                .join(User, pw.JOIN.LEFT_OUTER, on=(Room.created_by == User.id))
                .order_by(Room.id).tuples())


# -- memberships ----------------------------------------------------------------
def add_member(user, room_pk, joined_at, role="member"):
    """Membership, with nothing unread yet; a second time changes nothing."""
    (Membership.insert(user=user, room=room_pk, joined_at=joined_at, role=role,
                       read_upto=Room.select(Room.last_seq).where(Room.id == room_pk))
     .on_conflict_ignore().execute())


def remove_member(user, room_pk):
    Membership.delete().where((Membership.user == user) & (Membership.room == room_pk)).execute()


def is_member(user, room_pk):
    return Membership.select().where((Membership.user == user) &
                                     (Membership.room == room_pk)).exists()


def member_names(room_pk):
    """(username, role) of the members, by name."""
    return list(User.select(User.username, Membership.role).join(Membership)
                .where(Membership.room == room_pk).order_by(User.username_key).tuples())
