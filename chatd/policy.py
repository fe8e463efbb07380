"""Who may do what: the one place each transport and operation asks.

Today there is one rank: a member of a room may read and write in it. The
own-username rule is here too: a request may name its user in a field
(creator, username), and that name must be its own.
"""
from .errors import Forbidden
from .keys import room_key, user_key
from .storage import rooms

MODERATING = ("owner", "moderator")  # roles that may delete others' messages


def check_member(user, room_pk):
    """Forbidden unless `user` is a member of the room (run inside a transaction)."""
    if not rooms.is_member(user, room_pk):
        raise Forbidden("You are not a member of %s." % room_key(room_pk))


def check_can_delete(user, room_pk, sender_pk):
    """Forbidden unless `user` sent the message or is the room's owner or a moderator."""
    if sender_pk == user.id:
        return
    if rooms.member_role(user, room_pk) not in MODERATING:
        raise Forbidden("Only the sender, the room's owner or a moderator may delete it.")


def check_own_username(value, field, username):
    """Forbidden unless the optional field `value` names `username` (ignoring case)."""
    if value is not None and (not isinstance(value, str) or
                              user_key(value) != user_key(username)):
        raise Forbidden("Field '%s' must be your own username." % field)
