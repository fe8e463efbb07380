"""Messages: post (through the group commit), history pages, replay reads, the rate limit."""
from .. import events, policy, validate
from ..errors import Forbidden, RateLimited
from ..keys import room_key
from ..storage import commit, messages, rooms
from ..storage.models import transaction
from .rooms import member_room


@transaction
def history(user, room_id, limit=50, before=None, after=None):
    room = member_room(user, room_id)
    rows, more = messages.history_page(room.id, limit, before, after)
    return {"roomId": room_key(room.id), "messages": [events.history_item(row) for row in rows],
            "hasMore": more}


@transaction
def messages_since(room_pk, since, upto):
    """new-message events of a room with since < id <= upto (a page), in id order."""
    return [events.new_message(row) for row in messages.rows_between(room_pk, since, upto)]


@transaction
def room_last_seq(room_pk):
    return rooms.last_seq(room_pk)


def check_rate(chat, user):
    per_minute, burst = policy.rate_for(user, chat.settings)
    if not chat.broker.take_token("rate:%d" % user.id, per_minute, burst):
        raise RateLimited("Too many messages; slow down.", retry_after=1)


def post_message(chat, user, room_pk, text, client_msg_id=None):
    """Store one message: (None, True) if new, (the original's event, False) for a retry.

    A new message reaches every session, the sender's too, through the
    writer's on_stored (the hub), which builds its event: only a retry, which
    the hub does not hear of, needs one built here.
    """
    text = validate.message_text(text, chat.settings.limits.max_message_chars)
    client_msg_id = validate.client_msg_id(client_msg_id)
    result = chat.writer.submit(commit.Post(user.id, user.username, room_pk, text,
                                            client_msg_id))
    if result is commit.NOT_ALLOWED:
        _why_not_allowed(user, room_pk)
    row, is_new = result
    return (None if is_new else events.new_message(row)), is_new


@transaction
def _why_not_allowed(user, room_pk):
    member_room(user, room_key(room_pk))
    raise Forbidden("You are not a member of %s." % room_key(room_pk))
