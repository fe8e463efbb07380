"""Access tokens and bots (PROTOCOL section 10): tokens for scripts, users that are scripts.

An access token is a named token with its own expiry (or none), stored
hashed like a login token and accepted wherever one is (accounts.authenticate).
A bot is a user with no password, so only its access tokens let it in, and
with a message rate of its own (ops.messages.rate_for).
"""
import re

from .. import auth, validate
from ..errors import BadRequest, Conflict, NotFound
from ..events import iso
from ..storage import control, tokens, users
from ..storage.models import NEVER, now_ms, transaction
from .accounts import existing_user, remove_user
from .messages import rate_for

DAY = 86400 * 1000  # ms
MAX_DAYS = 3650
MAX_RATE = 1000000  # messages a minute a bot may be given
BOT_TOKEN_NAME = "bot"  # the label of the token `chat-admin bot create` prints
_TOKEN_ID = re.compile(r"[1-9][0-9]{0,17}\Z")


def create_token(user, name, expires_in_days=None):
    """A new access token of `user`, shown this once: id, name, token, createdAt, expiresAt."""
    name = validate.token_name(name)
    days = _days(expires_in_days)
    return transaction(_new_token)(user.id, name, days)


def _days(value, field="expiresInDays"):
    """Days a token lives, 1-3650; None (absent or null): never expires."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest("Field '%s' must be an integer or null." % field)
    return validate.integer(value, field, 1, MAX_DAYS)


def _new_token(user_pk, name, days):
    """Inside the caller's transaction."""
    token, hashed = auth.new_token()
    now = now_ms()
    row = tokens.add_access(user_pk, hashed, name, now, NEVER if days is None else now + days * DAY)
    shown = _described(row)
    shown["token"] = token
    return shown


def _described(row):
    return {"id": row.id, "name": row.name, "createdAt": iso(row.created_at),
            "expiresAt": None if row.expires_at >= NEVER else iso(row.expires_at)}


@transaction
def list_tokens(user):
    """The caller's live access tokens, oldest first; never a token or its hash."""
    listed = []
    for row in tokens.access_of(user.id, now_ms()):
        item = _described(row)
        item["lastUsedAt"] = iso(row.last_used_at) if row.last_used_at is not None else None
        listed.append(item)
    return listed


@transaction
def revoke_token(user, token_id):
    """End one of the caller's access tokens, and the sockets it opened (on every chatd)."""
    row = tokens.access_token(user.id, int(token_id)) if _TOKEN_ID.match(token_id) else None
    if row is None:
        raise NotFound("You have no access token %s." % token_id[:64])
    tokens.delete(row.id)
    control.append("token_revoked", token_hash=row.token_hash)


# -- bots (chat-admin) ------------------------------------------------------------
def create_bot(username, rate=None):
    """A new bot and its first access token (never expires): {"username", "token"}."""
    validate.username(username)
    if rate is not None:
        validate.integer(rate, "rate", 1, MAX_RATE)
    return transaction(_insert_bot)(username, rate)


def _insert_bot(username, rate):
    user = users.create(username, None, False, bot=True, rate_per_minute=rate)
    if user is None:
        raise Conflict("Username '%s' is already taken." % username)
    return {"username": user.username, "token": _new_token(user.id, BOT_TOKEN_NAME, None)["token"]}


def bot_token(username, name, expires_in_days=None):
    """Another access token for a bot: {"username", "token"}."""
    name = validate.token_name(name)
    days = _days(expires_in_days)
    return transaction(_new_bot_token)(username, name, days)


def _new_bot_token(username, name, days):
    bot = _existing_bot(username)
    return {"username": bot.username, "token": _new_token(bot.id, name, days)["token"]}


@transaction
def list_bots(chat):
    """Every bot: username, createdAt, rate (messages a minute), tokens (live access tokens)."""
    return [{"username": bot.username, "createdAt": iso(bot.created_at),
             "rate": rate_for(bot, chat.settings)[0], "tokens": bot.live_tokens}
            for bot in tokens.bots(now_ms())]


@transaction
def delete_bot(username):
    """Remove a bot; its messages stay, its tokens and sockets end."""
    remove_user(_existing_bot(username))


def _existing_bot(username):
    user = existing_user(username)
    if not user.bot:
        raise NotFound("'%s' is a user, not a bot." % user.username)
    return user
