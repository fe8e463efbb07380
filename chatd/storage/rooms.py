"""Queries on rooms, their memberships and bans."""
import peewee as pw

from ..keys import room_name_key
from .models import Ban, Membership, Room, User, columns, execute, instance, now_ms, proxy


def by_pk(room_pk):
    row = execute('SELECT %s FROM "room" r WHERE r."id" = ?' % columns(Room, "r"),
                  (room_pk,)).fetchone()
    return None if row is None else instance(Room, row)


def with_role(room_pk, user_pk):
    """(the room or None, the user's role in it or None), in one query."""
    row = execute('SELECT %s, m."role" FROM "room" r LEFT JOIN "membership" m '
                  'ON m."room_id" = r."id" AND m."user_id" = ? WHERE r."id" = ?'
                  % columns(Room, "r"), (user_pk, room_pk)).fetchone()
    return (None, None) if row is None else (instance(Room, row[:-1]), row[-1])


def by_name(name):
    """The room whose name matches ignoring case, or None."""
    return Room.get_or_none(Room.name_key == room_name_key(name))


def create(name, user, kind="public", topic="", name_key=None):
    """The new room, created by `user`, or None if its name key is taken.

    The insert runs in a savepoint: on PostgreSQL a failed statement would
    otherwise abort the caller's whole transaction, and a direct room's
    caller reads the existing room after a lost race.
    """
    try:
        with proxy.obj.atomic():
            return Room.create(name=name, name_key=name_key or room_name_key(name),
                               created_by=user, created_at=now_ms(), kind=kind, topic=topic)
    except pw.IntegrityError:
        return None


def by_name_key(name_key):
    return Room.get_or_none(Room.name_key == name_key)


def update(room, **fields):
    """Change a room's name or topic; False if the new name (ignoring case) is taken."""
    if "name" in fields:
        fields["name_key"] = room_name_key(fields["name"])
    try:
        with proxy.obj.atomic():
            Room.update(**fields).where(Room.id == room.id).execute()
    except pw.IntegrityError:
        return False
    return True


def delete(room):
    room.delete_instance()


def last_seq(room_pk):
    return Room.select(Room.last_seq).where(Room.id == room_pk).scalar() or 0


# Hand-written: for a user in 200 rooms, building this with peewee and turning
# its rows into tuples took 3 of the 4 ms the listing cost (PostgreSQL).
_LISTING = (
    'SELECT r."id", r."name", r."created_at", u."username", '
    '(SELECT COUNT(*) FROM "membership" m WHERE m."room_id" = r."id"), %s, '
    'r."kind", r."topic", mine."role" '
    'FROM "room" r LEFT JOIN "user" u ON u."id" = r."created_by_id" '
    'LEFT JOIN "membership" mine ON mine."room_id" = r."id" AND mine."user_id" = ? '
    'WHERE %s ORDER BY r."id"')
_MESSAGE_COUNT = '(SELECT COUNT(*) FROM "message" x WHERE x."room_id" = r."id")'
_VISIBLE = '(r."kind" = \'public\' OR mine."id" IS NOT NULL)'


def listing(message_counts=False, user=None, room_pk=None):
    """(pk, name, created_at, creator, member count, message count or None, kind, topic,
    the user's role or None) of every room, or with `user` of those it may see:
    the public ones and every room it is in; only room `room_pk` if given."""
    if user is None:
        where, params = ["1 = 1"], [None]
    else:
        where, params = [_VISIBLE], [_pk(user)]
    if room_pk is not None:
        where.append('r."id" = ?')
        params.append(room_pk)
    sql = _LISTING % (_MESSAGE_COUNT if message_counts else "NULL", " AND ".join(where))
    return execute(sql, params).fetchall()


def peers(user, room_pks):
    """{room pk: the other member's username} of these direct rooms."""
    if not room_pks:
        return {}
    rows = (Membership.select(Membership.room, User.username).join(User)
            .where(Membership.room.in_(room_pks) & (Membership.user != user)).tuples())
    return dict(rows)


# -- memberships ----------------------------------------------------------------
def add_member(user, room_pk, joined_at, role="member"):
    """Membership, with nothing unread yet; a second time changes nothing.
    True if the user was not a member."""
    return execute(
        'INSERT INTO "membership" ("user_id", "room_id", "joined_at", "role", "read_upto") '
        'VALUES (?, ?, ?, ?, (SELECT "last_seq" FROM "room" WHERE "id" = ?)) '
        'ON CONFLICT DO NOTHING RETURNING "id"',
        (_pk(user), room_pk, joined_at, role, room_pk)).fetchone() is not None


def remove_member(user, room_pk):
    """True if the user was a member."""
    return Membership.delete().where((Membership.user == user) &
                                     (Membership.room == room_pk)).execute() > 0


def _pk(user):
    return user if isinstance(user, int) else user.id


def is_member(user, room_pk):
    return Membership.select().where((Membership.user == user) &
                                     (Membership.room == room_pk)).exists()


def role_of(user_pk, room_pk):
    """The user's role in the room, or None when not a member."""
    row = execute('SELECT "role" FROM "membership" WHERE "user_id" = ? AND "room_id" = ?',
                  (user_pk, room_pk)).fetchone()
    return None if row is None else row[0]


def set_role(user_pk, room_pk, role):
    Membership.update(role=role).where((Membership.user == user_pk) &
                                       (Membership.room == room_pk)).execute()


def owner_of(room_pk):
    """The room's owner (a User), or None."""
    return (User.select().join(Membership)
            .where((Membership.room == room_pk) & (Membership.role == "owner")).first())


def member_names(room_pk):
    """(username, role) of the members, by name."""
    return list(User.select(User.username, Membership.role).join(Membership)
                .where(Membership.room == room_pk).order_by(User.username_key).tuples())


# -- bans -----------------------------------------------------------------------
def is_banned(user_pk, room_pk):
    return Ban.select().where((Ban.user == user_pk) & (Ban.room == room_pk)).exists()


def ban(user_pk, room_pk, by_pk, reason):
    """Ban the user; a second ban changes nothing."""
    (Ban.insert(room=room_pk, user=user_pk, by=by_pk, reason=reason, created_at=now_ms())
     .on_conflict_ignore().execute())


def unban(user_pk, room_pk):
    """Lift a ban; True if there was one."""
    return bool(Ban.delete().where((Ban.user == user_pk) & (Ban.room == room_pk)).execute())


def bans(room_pk):
    """(username, banned by or None, reason, created_at) of the room's bans, oldest first."""
    banned, by = User.alias("banned"), User.alias("by")
    return list(Ban.select(banned.username, by.username, Ban.reason, Ban.created_at)
                .join(banned, on=(Ban.user == banned.id))
                .switch(Ban).join(by, pw.JOIN.LEFT_OUTER, on=(Ban.by == by.id))
                .where(Ban.room == room_pk).order_by(Ban.created_at, Ban.id).tuples())
