"""Queries on tokens by kind: named access tokens for scripts, and a user's login tokens.

Finding the token a bearer string names, and adding a login token, are in
storage.users with the rest of logging in.
"""
import peewee as pw

from .models import Token, User

ACCESS, LOGIN = "access", "login"


def add_access(user_pk, hashed, name, created_at, expires_at):
    """The new access token's row."""
    return Token.create(token_hash=hashed, user=user_pk, created_at=created_at,
                        expires_at=expires_at, kind=ACCESS, name=name)


def access_of(user_pk, now):
    """A user's live access tokens, oldest first."""
    return list(Token.select().where(Token.user == user_pk, Token.kind == ACCESS,
                                     Token.expires_at > now).order_by(Token.id))


def access_token(user_pk, token_pk):
    """The user's access token with that id, or None (another user's is None too)."""
    return Token.get_or_none(Token.id == token_pk, Token.user == user_pk, Token.kind == ACCESS)


def delete(token_pk):
    Token.delete().where(Token.id == token_pk).execute()


def touch(token_pk, now):
    Token.update(last_used_at=now).where(Token.id == token_pk).execute()


def login_hashes(user_pk, keep=None):
    """Hashes of a user's login tokens, but `keep` (a hash)."""
    query = Token.select(Token.token_hash).where(Token.user == user_pk, Token.kind == LOGIN)
    if keep is not None:
        query = query.where(Token.token_hash != keep)
    return [hashed for (hashed,) in query.tuples()]


def delete_hashes(hashes):
    if hashes:
        Token.delete().where(Token.token_hash.in_(hashes)).execute()


def bots(now):
    """Every bot, by name, each with `live_tokens`: how many access tokens it has unexpired."""
    live = pw.fn.COUNT(Token.id).alias("live_tokens")
    query = (User.select(User, live)
             .join(Token, pw.JOIN.LEFT_OUTER,
                   on=((Token.user == User.id) & (Token.kind == ACCESS) & (Token.expires_at > now)))
             .where(User.bot == True)  # noqa: E712 (peewee builds SQL from ==)
             .group_by(User.id).order_by(User.username_key))
    return list(query)
