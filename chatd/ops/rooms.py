"""Rooms: create, list, join, leave, members, delete."""
from .. import events, policy, validate
from ..errors import Conflict, NotFound
from ..events import iso
from ..keys import room_key
from ..storage import control, roomlog, rooms
from ..storage.models import now_ms, transaction
from .accounts import existing_user
from .limits import HOUR, check_recent


def create_room(chat, user, name):
    """A user's own room: at most [limits] rooms_per_hour of them an hour."""
    key = "rooms-user:%d" % user.id
    check_recent(chat, key, chat.settings.limits.rooms_per_hour, HOUR,
                 "Too many rooms created; try again later.")
    created = _create_room(user, name)
    chat.broker.hit(key, HOUR)
    return created


@transaction
def _create_room(user, name):
    return _new_room(user, name)


@transaction
def create_room_for(owner, name):
    """An operator's room, owned (and joined) by the user named `owner`."""
    return _new_room(existing_user(owner), name)


def _new_room(user, name):
    name = validate.room_name(name)
    room = rooms.create(name, user)
    if room is None:
        raise Conflict("Room name '%s' is already taken." % name)
    rooms.add_member(user, room.id, room.created_at, role="owner")
    # Nobody is live in a room this new: the event is for replay only.
    roomlog.append(room.id, "member-added", user.id, {"username": user.username, "role": "owner"})
    return {"roomId": room_key(room.id), "roomName": room.name}


@transaction
def list_rooms(message_counts=False):
    """Every room; message_counts (a count per room: for operators, not per request)."""
    listed = []
    for pk, name, created, creator, member_count, message_count, kind, topic in \
            rooms.listing(message_counts):
        listed.append({"roomId": room_key(pk), "roomName": name, "kind": kind, "topic": topic,
                       "memberCount": member_count, "createdBy": creator,
                       "createdAt": iso(created)})
        if message_counts:
            listed[-1]["messageCount"] = message_count
    return listed


def join_room(chat, user, room_id):
    """Membership (joining twice is fine); returns the room's name.
    A new member is a member-added event in the room's log."""
    name, room_pk, event = _join(user, room_id)
    _announce(chat, room_pk, event)
    return name


@transaction
def _join(user, room_id):
    room = existing_room(room_id)
    if not rooms.add_member(user, room.id, now_ms()):
        return room.name, room.id, None
    fields = {"username": user.username, "role": "member"}
    seq, created_at = roomlog.append(room.id, "member-added", user.id, fields)
    return room.name, room.id, events.change("member-added", room.id, seq, created_at, **fields)


def leave_room(chat, user, room_id):
    """The membership ends (a member-removed event); leaving a room one is not in is fine."""
    _announce(chat, *_leave(user, room_id))


@transaction
def _leave(user, room_id):
    room = existing_room(room_id)
    if not rooms.remove_member(user, room.id):
        return room.id, None
    fields = {"username": user.username, "banned": False}
    seq, created_at = roomlog.append(room.id, "member-removed", user.id, fields)
    return room.id, events.change("member-removed", room.id, seq, created_at, **fields)


def _announce(chat, room_pk, event):
    """A committed change's event to live clients (none in chat-admin)."""
    if event is not None and chat.announce is not None:
        chat.announce(room_pk, event)


def room_members(chat, user, room_id):
    return _with_presence(chat, *_member_names(user, room_id))


def members_of(chat, room_id, presence=True):
    """An operator's view of a room's members (no membership needed).

    `online` only when presence is true: chat-admin on the in-process
    broker cannot see who is connected to chatd.
    """
    room_pk, names = _all_member_names(room_id)
    if not presence:
        return [{"username": name, "role": role} for name, role in names]
    return _with_presence(chat, room_pk, names)


def _with_presence(chat, room_pk, names):
    online = set(chat.broker.online(room_pk))  # may be a network call: outside the transaction
    return [{"username": name, "role": role, "online": name in online} for name, role in names]


@transaction
def _member_names(user, room_id):
    room = member_room(user, room_id)
    return room.id, rooms.member_names(room.id)


@transaction
def _all_member_names(room_id):
    room = existing_room(room_id)
    return room.id, rooms.member_names(room.id)


@transaction
def delete_room(room_id):
    room = existing_room(room_id)
    control.append("room_deleted", room=room.id)
    rooms.delete(room)


def existing_room(room_id):
    """The room `room_id` ("room_12") names, or NotFound; inside the caller's transaction."""
    room = rooms.by_pk(validate.room_ref(room_id))
    if room is None:
        raise NotFound("No room %s." % room_id)
    return room


def member_room(user, room_id):
    """The room, if it exists and policy lets `user` act in it."""
    room = existing_room(room_id)
    policy.check_member(user, room.id)
    return room
