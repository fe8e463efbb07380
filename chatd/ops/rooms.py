"""Rooms: create, list, join, leave, members, roles, bans, direct rooms, delete.

Who may do what is asked of chatd.policy; an `actor` is the User acting, or
None for the operator (chat-admin), who names rooms by id or by name.
A change to a room's members, roles, name or topic is appended to the
room's log in its transaction and told to live clients once it committed
(see Changes).
"""
from .. import events, policy, validate
from ..errors import BadRequest, Conflict, NotFound
from ..events import iso
from ..keys import room_key, user_key
from ..storage import control, markers, roomlog, rooms
from ..storage.models import now_ms, transaction
from .accounts import existing_user
from .limits import HOUR, check_recent

MAX_TOPIC = 250
MAX_REASON = 500
DIRECT_KEY = "direct:%d:%d"  # Room.name_key of a direct room: its users' pks, smaller first


class Changes:
    """What a room change tells live clients once it commits.

    In chatd, publish() hands the sequenced events to the hub and the
    per-user ones to every session of their user on every process. chat-admin
    has no hub: stage() writes them, inside the change's transaction, as one
    control event, which every chatd turns into the same delivery.
    """

    def __init__(self, room_pk):
        self.room_pk = room_pk
        self.events = []  # sequenced events, in seq order
        self.told = []  # (username, per-user event)
        self.taken_out = []  # (username, per-user event or None for one's own leave)

    def logged(self, kind, actor, **fields):
        """Append one change to the room's log; its event is delivered after commit."""
        seq, created_at = roomlog.append(self.room_pk, kind, actor.id if actor else None, fields)
        self.events.append(events.change(kind, self.room_pk, seq, created_at, **fields))

    def member_added(self, actor, member, role, **fields):
        """A membership made in this change: its event, and the new member's read
        marker at it (a new member starts with nothing unread, section 8)."""
        self.logged("member-added", actor, username=member.username, role=role, **fields)
        markers.start(member.id, self.room_pk)

    def tell(self, username, event):
        self.told.append((username, event))

    def take_out(self, username, event=None):
        self.taken_out.append((username, event))

    def stage(self, chat):
        if chat.announce is None and (self.events or self.told or self.taken_out):
            control.append("room_change", room=self.room_pk, events=len(self.events),
                           told=self.told, taken_out=self.taken_out)

    def publish(self, chat):
        if chat.announce is None:
            return  # staged as a control event
        for event in self.events:
            chat.announce(self.room_pk, event)
        for username, event in self.taken_out:
            chat.take_out(username, self.room_pk, event)
        for username, event in self.told:
            chat.to_user(username, event)


def _by(actor):
    """`by` of member-added/removed: who did it (left out for the operator)."""
    return {"by": actor.username} if actor is not None else {}


# -- creating and listing ----------------------------------------------------------
def create_room(chat, user, name, kind=None, topic=None):
    """A user's own room: at most [limits] rooms_per_hour of them an hour."""
    name, kind = _room_name(name), _kind(kind)
    topic = validate.short_text(topic, "topic", MAX_TOPIC)
    key = "rooms-user:%d" % user.id
    check_recent(chat, key, chat.settings.limits.rooms_per_hour, HOUR,
                 "Too many rooms created; try again later.")
    created = _create_room(user, name, kind, topic)
    chat.broker.hit(key, HOUR)
    return created


@transaction
def _create_room(user, name, kind, topic):
    return _new_room(user, name, kind, topic)


@transaction
def create_room_for(owner, name, kind="public"):
    """An operator's room, owned (and joined) by the user named `owner`."""
    return _new_room(existing_user(owner), _room_name(name), _kind(kind), "")


def _new_room(user, name, kind, topic):
    room = rooms.create(name, user, kind, topic)
    if room is None:
        raise Conflict("Room name '%s' is already taken." % name)
    rooms.add_member(user, room.id, room.created_at, role="owner")
    # Nobody is live in a room this new: the event is for replay only.
    roomlog.append(room.id, "member-added", user.id, {"username": user.username, "role": "owner"})
    markers.start(user.id, room.id)
    return {"roomId": room_key(room.id), "roomName": room.name, "kind": room.kind}


def _room_name(value):
    name = validate.room_name(value)
    if name.casefold().startswith("direct:"):  # the name keys of direct rooms
        raise BadRequest("Field 'roomName' must not start with 'direct:'.")
    return name


def _kind(value):
    if value is None:
        return "public"
    if value not in policy.KINDS:
        raise BadRequest("Field 'kind' must be 'public' or 'private'.")
    return value



def visible_rooms(user=None, message_counts=False):
    """The rooms `user` may see (public ones and its own), or every room for the
    operator; message_counts (a count per room: for operators, not per request).
    Inside the caller's transaction."""
    return _items(user, rooms.listing(message_counts, user), message_counts)


list_rooms = transaction(visible_rooms)


def _items(user, rows, message_counts=False):
    peers = rooms.peers(user, [row[0] for row in rows if row[6] == "direct"]) if user else {}
    listed = []
    for pk, name, created, creator, member_count, message_count, kind, topic, role in rows:
        item = {"roomId": room_key(pk), "roomName": name, "kind": kind, "topic": topic,
                "memberCount": member_count, "createdBy": creator, "createdAt": iso(created)}
        if message_counts:
            item["messageCount"] = message_count
        if user is not None:
            item["member"] = role is not None
            if role is not None:
                item["role"] = role
        if kind == "direct" and user is not None:
            item["roomName"] = item["peer"] = peers.get(pk, events.DELETED_SENDER)
        listed.append(item)
    return listed


def _item(user, room_pk):
    """One room's list item as `user` sees it."""
    return _items(user, rooms.listing(user=user, room_pk=room_pk))[0]


def display_name(room, user):
    """A room's name for `user`: a direct room is called by the other user's name."""
    if room.kind != "direct":
        return room.name
    return rooms.peers(user, [room.id]).get(room.id, events.DELETED_SENDER)


# -- joining and leaving -------------------------------------------------------------
def join_room(chat, user, room_id):
    """Membership (joining twice is fine); returns the room's name for `user`.
    A new member is a member-added event in the room's log."""
    name, changes = _join(chat, user, room_id)
    changes.publish(chat)
    return name


@transaction
def _join(chat, user, room_id):
    room, role = visible_room(user, room_id)
    changes = Changes(room.id)
    if role is None:
        policy.check_may_join(rooms.is_banned(user.id, room.id))
        if rooms.add_member(user, room.id, now_ms()):
            changes.member_added(user, user, "member")
    changes.stage(chat)
    return display_name(room, user), changes


def leave_room(chat, user, room_id):
    """End the membership (a member-removed event); every connection of the user
    stops receiving the room. Leaving a room one is not in is fine."""
    _leave(chat, user, room_id).publish(chat)


@transaction
def _leave(chat, user, room_id):
    room, _role = visible_room(user, room_id)
    changes = Changes(room.id)
    if rooms.remove_member(user, room.id):
        changes.logged("member-removed", user, username=user.username, banned=False)
    changes.take_out(user.username)
    changes.stage(chat)
    return changes


# -- direct rooms ---------------------------------------------------------------------
def open_direct(chat, user, username):
    """The direct room of `user` and `username`: ({roomId, kind}, True if made now).

    Made at most once per pair, whoever asks and on whatever process: the
    pair's name key is unique, so the loser of a race reads the winner's room.
    Asking again puts back either user who had left it.
    """
    room_pk, made, changes = _open_direct(chat, user, username)
    changes.publish(chat)
    return {"roomId": room_key(room_pk), "kind": "direct"}, made


@transaction
def _open_direct(chat, user, username):
    peer = existing_user(username)
    if peer.id == user.id:
        raise BadRequest("Field 'username' must name another user.")
    key = DIRECT_KEY % tuple(sorted((user.id, peer.id)))
    room = rooms.create(key, user, "direct", name_key=key)
    made = room is not None
    if not made:
        room = rooms.by_name_key(key)
    changes = Changes(room.id)
    now = now_ms()
    if rooms.add_member(user, room.id, now):
        changes.member_added(user, user, "member")
    if rooms.add_member(peer, room.id, now):
        changes.member_added(user, peer, "member",
                       **_by(user))
        changes.tell(peer.username, {"action": "room-added", "roomId": room_key(room.id),
                                     "roomName": user.username, "kind": "direct",
                                     "peer": user.username})
    changes.stage(chat)
    return room.id, made, changes


# -- name and topic ---------------------------------------------------------------------
def update_room(chat, user, room_id, name=None, topic=None):
    """Rename or set the topic (owner, moderator); the room's new list item."""
    if name is None and topic is None:
        raise BadRequest("Field 'roomName' or 'topic' is required.")
    fields = {}
    if name is not None:
        fields["name"] = _room_name(name)
    if topic is not None:
        fields["topic"] = validate.short_text(topic, "topic", MAX_TOPIC)
    item, changes = _update_room(chat, user, room_id, fields)
    changes.publish(chat)
    return item


@transaction
def _update_room(chat, user, room_id, fields):
    room, role = visible_room(user, room_id)
    policy.check_moderator(role)
    changes = Changes(room.id)
    if any(getattr(room, field) != value for field, value in fields.items()):
        if not rooms.update(room, **fields):
            raise Conflict("Room name '%s' is already taken." % fields["name"])
        changes.logged("room-updated", user, roomName=fields.get("name", room.name),
                       topic=fields.get("topic", room.topic), by=user.username)
    changes.stage(chat)
    return _item(user, room.id), changes


# -- members, roles and bans ---------------------------------------------------------------
def add_member(chat, actor, room_id, username):
    """Put a user in a room as a member (no change if already in)."""
    _add_member(chat, actor, room_id, username).publish(chat)


@transaction
def _add_member(chat, actor, room_id, username):
    room, role = acting_room(actor, room_id)
    policy.check_may_add(role, room.kind)
    target = existing_user(username)
    policy.check_not_banned(rooms.is_banned(target.id, room.id))
    changes = Changes(room.id)
    if rooms.add_member(target, room.id, now_ms()):
        changes.member_added(actor, target, "member",
                       **_by(actor))
        changes.tell(target.username, {"action": "room-added", "roomId": room_key(room.id),
                                       "roomName": room.name, "kind": room.kind})
    changes.stage(chat)
    return changes


def remove_member(chat, actor, room_id, username, ban=False, reason=None):
    """Take a user out of a room (for oneself: leave), or ban them from it."""
    if not ban and actor is not None and user_key(str(username)) == user_key(actor.username):
        return leave_room(chat, actor, room_id)
    reason = validate.short_text(reason, "reason", MAX_REASON)
    _remove_member(chat, actor, room_id, username, ban, reason).publish(chat)


@transaction
def _remove_member(chat, actor, room_id, username, ban, reason):
    room, role = acting_room(actor, room_id)
    if ban:
        policy.check_moderator(role)
    target = existing_user(username)
    target_role = rooms.role_of(target.id, room.id)
    if ban:
        policy.check_may_ban(role, room.kind, target_role)
        rooms.ban(target.id, room.id, actor.id if actor else None, reason)
    else:
        policy.check_may_remove(role, target_role)
    changes = Changes(room.id)
    if target_role is not None:
        rooms.remove_member(target, room.id)
        changes.logged("member-removed", actor, username=target.username, banned=ban,
                       **_by(actor))
        changes.take_out(target.username, {"action": "room-removed",
                                           "roomId": room_key(room.id), "banned": ban})
    elif not ban:
        raise NotFound("%s is not a member of %s." % (target.username, room_key(room.id)))
    changes.stage(chat)
    return changes




def set_role(chat, actor, room_id, username, role):
    """owner: moderator or member; `owner` hands the room over (the former owner
    becomes a moderator)."""
    if role not in policy.ROLES:
        raise BadRequest("Field 'role' must be 'owner', 'moderator' or 'member'.")
    _set_role(chat, actor, room_id, username, role).publish(chat)


@transaction
def _set_role(chat, actor, room_id, username, new_role):
    room, role = acting_room(actor, room_id)
    is_self = actor is not None and user_key(str(username)) == user_key(actor.username)
    policy.check_may_set_role(role, room.kind, is_self)
    target = existing_user(username)
    if rooms.role_of(target.id, room.id) is None:
        raise NotFound("%s is not a member of %s." % (target.username, room_key(room.id)))
    changes = Changes(room.id)
    by = actor.username if actor is not None else None
    if new_role == "owner":
        former = rooms.owner_of(room.id)
        if former is not None and former.id != target.id:
            rooms.set_role(former.id, room.id, "moderator")
            changes.logged("member-updated", actor, username=former.username,
                           role="moderator", by=by)
    if rooms.role_of(target.id, room.id) != new_role:
        rooms.set_role(target.id, room.id, new_role)
        changes.logged("member-updated", actor, username=target.username, role=new_role, by=by)
    changes.stage(chat)
    return changes


@transaction
def room_bans(actor, room_id):
    room, role = acting_room(actor, room_id)
    policy.check_moderator(role)
    return [{"username": name, "by": by, "reason": reason, "timestamp": iso(created)}
            for name, by, reason, created in rooms.bans(room.id)]


@transaction
def lift_ban(actor, room_id, username):
    """Lift a ban; the user is not added back."""
    room, role = acting_room(actor, room_id)
    policy.check_moderator(role)
    target = existing_user(username)
    if not rooms.unban(target.id, room.id):
        raise NotFound("%s is not banned from %s." % (target.username, room_key(room.id)))


def room_members(chat, user, room_id):
    return _with_presence(chat, *_member_names(user, room_id))


def members_of(chat, room_ref, presence=True):
    """An operator's view of a room's members (no membership needed).

    `online` only when presence is true: chat-admin on the in-process
    broker cannot see who is connected to chatd.
    """
    room_pk, names = _all_member_names(room_ref)
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
def _all_member_names(room_ref):
    room = room_by_ref(room_ref)
    return room.id, rooms.member_names(room.id)


@transaction
def delete_room(room_ref):
    """The operator deletes a room; returns its id."""
    room = room_by_ref(room_ref)
    control.append("room_deleted", room=room.id)
    rooms.delete(room)
    return room_key(room.id)


# -- finding rooms (inside the caller's transaction) ------------------------------------
def existing_room(room_id):
    """The room `room_id` ("room_12") names, or NotFound."""
    room = rooms.by_pk(validate.room_ref(room_id))
    if room is None:
        raise NotFound("No room %s." % room_id)
    return room


def room_by_ref(ref):
    """The operator's way to name a room: its id (room_12), else its name ignoring case."""
    if validate.ROOM_ID_RE.match(ref):
        return existing_room(ref)
    room = rooms.by_name(ref)
    if room is None:
        raise NotFound("No room %s: give a room id like room_12 or a room's name." % ref)
    return room


def visible_room(user, room_id):
    """(room, the user's role or None), or NotFound: an unknown room and one the user
    may not see (private or direct, not theirs) answer alike, after the same queries."""
    room_pk = validate.room_ref(room_id)
    room, role = rooms.with_role(room_pk, user.id)
    if room is None or not policy.visible(room.kind, role):
        raise NotFound("No room %s." % room_id)
    return room, role


@transaction
def check_visible(user, room_id):
    """NotFound unless the room exists for `user` (see visible_room)."""
    visible_room(user, room_id)


def acting_room(actor, room_id):
    """visible_room for a user; for the operator (None) the room by id or name."""
    if actor is None:
        return room_by_ref(room_id), policy.OPERATOR
    return visible_room(actor, room_id)


def member_room(user, room_id):
    """The room, if `user` may see it and is a member (public rooms answer 403)."""
    room, role = visible_room(user, room_id)
    policy.check_member(role, room.id)
    return room
