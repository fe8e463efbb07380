"""Queries on users and their tokens."""
import collections

import peewee as pw

from ..keys import user_key
from .models import Membership, Token, User, columns, execute, instance, now_ms


def by_name(username):
    """The user whose name matches ignoring case, or None."""
    return User.get_or_none(User.username_key == user_key(username))


def create(username, hashed, disabled, bot=False, rate_per_minute=None):
    """The new user, or None if the name (ignoring case) is taken."""
    try:
        return User.create(username=username, username_key=user_key(username),
                           password_hash=hashed, created_at=now_ms(), disabled=disabled,
                           bot=bot, rate_per_minute=rate_per_minute)
    except pw.IntegrityError:
        return None


def update(user_pk, **fields):
    User.update(**fields).where(User.id == user_pk).execute()


def delete(user):
    user.delete_instance()


def listing():
    """(username, created_at, disabled, bot, room count) of every user, by name."""
    rooms = pw.fn.COUNT(Membership.id)
    query = (User.select(User.username, User.created_at, User.disabled, User.bot, rooms)
             .join(Membership, pw.JOIN.LEFT_OUTER).group_by(User).order_by(User.username_key))
    return list(query.tuples())


def room_pks(user):
    """The rooms the user is a member of, by id."""
    rows = (Membership.select(Membership.room).where(Membership.user == user)
            .order_by(Membership.room).tuples())
    return [room for (room,) in rows]


# -- tokens ---------------------------------------------------------------------
def add_token(user, hashed, created_at, expires_at):
    Token.create(token_hash=hashed, user=user, created_at=created_at, expires_at=expires_at)


TokenRow = collections.namedtuple("TokenRow", "id kind expires_at last_used_at user")


def token(hashed):
    """The token with that hash as a TokenRow (its User joined), or None."""
    row = execute('SELECT t."id", t."kind", t."expires_at", t."last_used_at", %s '
                  'FROM "token" t JOIN "user" u ON u."id" = t."user_id" '
                  'WHERE t."token_hash" = ?' % columns(User, "u"), (hashed,)).fetchone()
    return None if row is None else TokenRow(*row[:4], instance(User, row[4:]))


def delete_token(hashed):
    Token.delete().where(Token.token_hash == hashed).execute()


def delete_tokens_of(user_pk):
    Token.delete().where(Token.user == user_pk).execute()


def delete_expired_tokens(now):
    Token.delete().where(Token.expires_at <= now).execute()
