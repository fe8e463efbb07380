"""Messages: post (through the group commit), edit, delete, react; history pages,
the room's log read back (replay, gap repair, /events); the per-user rate limit.

Every stored change takes from the user's rate bucket here, whichever
transport asked. Changes other than a new message are written with
storage.roomlog.append in their own transaction and announced after it
commits (chat.announce: the hub), never before.
"""
import math

from .. import events, mentions, policy, validate
from ..errors import BadRequest, Forbidden, NotFound, RateLimited
from ..keys import room_key
from ..storage import commit, messages, roomlog, rooms
from ..storage.models import transaction
from .rooms import member_room, visible_room

LOG_PAGE = 1000  # log entries one read returns (replay and gap repair go on page by page)


@transaction
def history(user, room_id, limit=50, before=None, after=None):
    room = member_room(user, room_id)
    rows, more = messages.history_page(room.id, limit, before, after)
    reactions = messages.reactions_of(room.id, rows[0].seq, rows[-1].seq) if rows else {}
    return {"roomId": room_key(room.id),
            "messages": [events.history_item(row, reactions.get(row.seq)) for row in rows],
            "hasMore": more}


@transaction
def events_since(room_pk, since, upto, limit=LOG_PAGE):
    """The room's sequenced events with since < seq <= upto (None: open), in seq order."""
    return [events.logged(room_pk, row) for row in messages.log_rows(room_pk, since, upto, limit)]


@transaction
def room_events(user, room_id, after, limit):
    """GET /api/rooms/:roomId/events: (room pk, {"roomId", "events", "hasMore"})."""
    room = member_room(user, room_id)
    if after > room.last_seq:
        raise BadRequest("Parameter 'after' is past the room's last seq (%d)." % room.last_seq)
    rows = messages.log_rows(room.id, after, None, limit + 1)
    return room.id, {"roomId": room_key(room.id),
                     "events": [events.logged(room.id, row) for row in rows[:limit]],
                     "hasMore": len(rows) > limit}


@transaction
def room_last_seq(room_pk):
    return rooms.last_seq(room_pk)


def rate_for(user, settings):
    """(changes a minute, burst) of the user's bucket.

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


def check_rate(chat, user):
    """Take one change from the user's bucket, or RateLimited saying when to retry."""
    per_minute, burst = rate_for(user, chat.settings)
    if not chat.broker.take_token("rate:%d" % user.id, per_minute, burst):
        raise RateLimited("Too many messages; slow down.",
                          retry_after=max(1, math.ceil(60.0 / per_minute)))


def post_message(chat, user, room_pk, text, client_msg_id=None, reply_to=None, echo=False):
    """Store one message: (event or None, True) if new, (the original's event, False) for a retry.

    A new message reaches every session, the sender's too, through the
    writer's on_stored (the hub), which builds its event: only a retry, which
    the hub does not hear of, needs one built here (or every one, with echo).
    """
    check_rate(chat, user)
    text = validate.message_text(text, chat.settings.limits.max_message_chars)
    client_msg_id = validate.client_msg_id(client_msg_id)
    if reply_to is not None:
        reply_to = validate.integer(reply_to, "replyTo", 1)
    names, pks = _mentions_for(user, room_pk, text, reply_to)
    result = chat.writer.submit(commit.Post(user.id, user.username, room_pk, text, client_msg_id,
                                            reply_to, names, pks, bool(user.bot)))
    if result is commit.NOT_ALLOWED:
        _why_not_allowed(user, room_pk)
    row, is_new = result
    return (events.new_message(row) if echo or not is_new else None), is_new


def _mentions_for(user, room_pk, text, reply_to):
    """(usernames, user pks) the text mentions, after checking what it replies to:
    a message without `@` or replyTo reads nothing more."""
    if reply_to is None and not _mention_keys(text):
        return None, ()
    return _resolve(user, room_pk, text, reply_to)


def _mention_keys(text):
    """The names after `@` that could be usernames at all: text such as "@5:12#"
    then costs no lookup."""
    return [key for key in mentions.candidates(text) if validate.USERNAME_RE.match(key)]


@transaction
def _resolve(user, room_pk, text, reply_to):
    if reply_to is not None:
        member_room(user, room_key(room_pk))
        _live_message(room_pk, reply_to)
    return _resolve_mentions(room_pk, text)


def _resolve_mentions(room_pk, text):
    keys = _mention_keys(text)
    if not keys:
        return None, ()
    members = messages.members_named(room_pk, keys)
    names = mentions.resolve(text, {key: name for key, (name, _pk) in members.items()})
    return (names or None), [members[name.lower()][1] for name in names]


@transaction
def _why_not_allowed(user, room_pk):
    member_room(user, room_key(room_pk))
    raise Forbidden("You are not a member of %s." % room_key(room_pk))


def _live_message(room_pk, seq):
    """The message's sender pk; NotFound if the room has no such message or it is deleted."""
    found = messages.live_message(room_pk, seq)
    if found is None or found[1]:
        raise NotFound("No message %d in %s." % (seq, room_key(room_pk)))
    return found[0]


def _message_id(value):
    return validate.integer(value, "id", 1)


# -- changes to a message: each one entry of the room's log -----------------------------
def edit_message(chat, user, room_id, message_id, text):
    """The sender changes the text; returns the message-edited event."""
    check_rate(chat, user)
    text = validate.message_text(text, chat.settings.limits.max_message_chars)
    return _announced(chat, *_edit(user, room_id, _message_id(message_id), text))


@transaction
def _edit(user, room_id, seq, text):
    room = member_room(user, room_id)
    if _live_message(room.id, seq) != user.id:
        raise Forbidden("Only its sender may edit a message.")
    names, pks = _resolve_mentions(room.id, text)
    data = {"mentions": names} if names else {}  # the sender is the event's actor
    at, created_at = roomlog.append(room.id, "message-edited", user.id, data,
                                    message_seq=seq, text=text)
    messages.set_text(room.id, seq, text, names, created_at)  # editedAt = the event's timestamp
    messages.set_mentions(room.id, seq, pks)
    return room.id, events.message_edited(room.id, at, created_at, seq, user.username, text,
                                          names)


def delete_message(chat, user, room_id, message_id):
    """The sender, the room's owner or a moderator deletes it: the text is erased."""
    check_rate(chat, user)
    return _announced(chat, *_delete(user, room_id, _message_id(message_id)))


@transaction
def _delete(user, room_id, seq):
    room, role = visible_room(user, room_id)
    policy.check_member(role, room.id)
    policy.check_can_delete(role, _live_message(room.id, seq) == user.id)
    messages.erase(room.id, seq, user.id)
    at, created_at = roomlog.append(room.id, "message-deleted", user.id,
                                    {"deletedBy": user.username}, message_seq=seq)
    return room.id, events.change("message-deleted", room.id, at, created_at, id=seq,
                                  deletedBy=user.username)


def react(chat, user, room_id, message_id, emoji):
    """Add the user's reaction; None (nothing stored or sent) if they had it already."""
    check_rate(chat, user)
    return _announced(chat, *_react(user, room_id, _message_id(message_id),
                                    validate.emoji(emoji), True))


def unreact(chat, user, room_id, message_id, emoji):
    """Remove the user's reaction; None (nothing stored or sent) if they had none."""
    check_rate(chat, user)
    return _announced(chat, *_react(user, room_id, _message_id(message_id),
                                    validate.emoji(emoji), False))


@transaction
def _react(user, room_id, seq, emoji, add):
    room = member_room(user, room_id)
    _live_message(room.id, seq)
    change = messages.add_reaction if add else messages.remove_reaction
    if not change(room.id, seq, user.id, emoji):
        return room.id, None
    kind = "reaction-added" if add else "reaction-removed"
    fields = {"emoji": emoji, "username": user.username}
    at, created_at = roomlog.append(room.id, kind, user.id, fields, message_seq=seq)
    return room.id, events.change(kind, room.id, at, created_at, id=seq, **fields)


def _announced(chat, room_pk, event):
    """A committed change's event to live clients (none in chat-admin); returns it."""
    if event is not None and chat.announce is not None:
        chat.announce(room_pk, event)
    return event

