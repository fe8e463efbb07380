"""Who may do what: the one place each transport and operation asks.

Today there is one rank: a member of a room may read and write in it. The
own-username rule is here too: a request may name its user in a field
(creator, username), and that name must be its own.
"""
from .errors import Forbidden
from .keys import room_key, user_key
from .storage import rooms


def check_member(user, room_pk):
    """Forbidden unless `user` is a member of the room (run inside a transaction)."""
    if not rooms.is_member(user, room_pk):
        raise Forbidden("You are not a member of %s." % room_key(room_pk))


def check_own_username(value, field, username):
    """Forbidden unless the optional field `value` names `username` (ignoring case)."""
    if value is not None and (not isinstance(value, str) or
                              user_key(value) != user_key(username)):
        raise Forbidden("Field '%s' must be your own username." % field)


def rate_for(user, settings):
    """(messages a minute, burst) of the user's message bucket.

    A bot given a rate of its own (`chat-admin bot create --rate`) has it,
    with a burst in the users' proportion ([limits] message_burst to
    messages_per_minute), so a faster bot may also send more at once; every
    other user has the users' rate and burst.
    """
    limits = settings.limits
    if not user.rate_per_minute:
        return limits.messages_per_minute, limits.message_burst
    per_minute = user.rate_per_minute
    return per_minute, max(1, round(per_minute * limits.message_burst / limits.messages_per_minute))
