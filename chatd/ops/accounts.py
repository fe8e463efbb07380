"""Accounts: registration, login, tokens, and the operator's actions on users."""
from .. import auth, validate
from ..errors import Conflict, Forbidden, NotFound, Unauthorized
from ..events import iso
from ..keys import room_key, user_key
from ..storage import control, tokens, users
from ..storage.models import now_ms, transaction
from .limits import HOUR, check_recent

# An access token's lastUsedAt is at most this stale: it costs one write a
# minute per token in use, never one per request.
TOUCH_EVERY = 60 * 1000  # ms


def register(chat, username, password, address):
    """A user's own registration: open_registration, and an hourly limit per address."""
    if not chat.settings.auth.open_registration:
        raise Forbidden("Registration is closed on this server.")
    key = "register-addr:" + address
    check_recent(chat, key, chat.settings.auth.registrations_per_hour, HOUR,
                 "Too many registrations from this address; try again later.")
    created = create_user(chat, username, password)
    chat.broker.hit(key, HOUR)
    return created


def create_user(chat, username, password, disabled=False):
    validate.username(username)
    hashed = chat.passwords.hash(validate.password(password)) if password else None
    return _insert_user(username, hashed, disabled)


@transaction
def _insert_user(username, hashed, disabled):
    if users.create(username, hashed, disabled) is None:
        raise Conflict("Username '%s' is already taken." % username)
    return {"username": username}


def login(chat, username, password, address):
    """A new token, or Unauthorized the same way for any bad pair of strings."""
    keys = ("login-user:" + user_key(username)[:64], "login-addr:" + address)
    _check_login_throttle(chat, keys)
    user = _find_user(username)
    ok = chat.passwords.verify(user.password_hash if user else None, password)
    if not ok:
        for key in keys:
            chat.broker.hit(key, chat.settings.auth.login_failure_window)
        raise Unauthorized("Invalid username or password.")
    if user.disabled:
        raise Forbidden("This account is disabled.")
    token, hashed = auth.new_token()
    expires = _store_token(chat, user, hashed)
    return {"token": token, "username": user.username, "expiresAt": iso(expires)}


def _check_login_throttle(chat, keys):
    limits = (chat.settings.auth.login_failures_per_user,
              chat.settings.auth.login_failures_per_address)
    for key, limit in zip(keys, limits):
        check_recent(chat, key, limit, chat.settings.auth.login_failure_window,
                     "Too many failed logins; try again later.")


@transaction
def _find_user(username):
    return users.by_name(username)


@transaction
def _store_token(chat, user, hashed):
    now = now_ms()
    expires = now + chat.settings.auth.token_ttl * 1000
    users.add_token(user, hashed, now, expires)
    return expires


@transaction
def authenticate(token):
    """The live user a bearer token belongs to, or Unauthorized."""
    if not token:
        raise Unauthorized("A token is required.")
    row = users.token(auth.token_hash(token))
    now = now_ms()
    if row is None or row.expires_at <= now or row.user.disabled:
        raise Unauthorized("The token is invalid or has expired.")
    if row.kind == tokens.ACCESS and (row.last_used_at or 0) <= now - TOUCH_EVERY:
        tokens.touch(row.id, now)
    return row.user


@transaction
def logout(token):
    hashed = auth.token_hash(token)
    users.delete_token(hashed)
    control.append("token_revoked", token_hash=hashed)


@transaction
def me(user):
    return {"username": user.username, "createdAt": iso(user.created_at),
            "rooms": [room_key(room) for room in users.room_pks(user)]}


# -- a user's own account -----------------------------------------------------------
def change_password(chat, user, token, current, new):
    """The user's new password; every other login session of theirs ends (the token
    in use stays, and access tokens are not sessions: section 10)."""
    new = validate.password(new, "newPassword")
    if not chat.passwords.verify(user.password_hash, current):
        raise Forbidden("The current password is wrong.")
    _replace_password(user, chat.passwords.hash(new), auth.token_hash(token))


@transaction
def _replace_password(user, hashed, kept):
    users.update(user.id, password_hash=hashed)
    end_login_sessions(user, keep=kept)


# -- operator actions on accounts ------------------------------------------------
def set_password(chat, username, password):
    hashed = chat.passwords.hash(validate.password(password))
    _update_user(username, password_hash=hashed)


def set_disabled(username, disabled):
    _update_user(username, disabled=disabled)


@transaction
def _update_user(username, **fields):
    user = existing_user(username)
    users.update(user.id, **fields)
    if fields.get("disabled"):  # every token and session ends
        users.delete_tokens_of(user.id)
        control.append("user_sessions_end", username=user.username)
    elif "password_hash" in fields:
        end_login_sessions(user)


def end_login_sessions(user, keep=None):
    """A new password: the user's login tokens but `keep` (a hash) die, with their sockets.

    Access tokens stay (PROTOCOL section 10), and so do the sockets they
    opened: each ended token is named in its own token_revoked, which
    every chatd matches against its sessions' token hashes.
    """
    hashes = tokens.login_hashes(user.id, keep)
    tokens.delete_hashes(hashes)
    for hashed in hashes:
        control.append("token_revoked", token_hash=hashed)


@transaction
def delete_user(username):
    remove_user(existing_user(username))


def remove_user(user):
    """A user gone (their messages stay, sender shown as deleted); their sessions end."""
    control.append("user_sessions_end", username=user.username)
    users.delete(user)


def existing_user(username):
    """The user named so (ignoring case), or NotFound; inside the caller's transaction."""
    user = users.by_name(validate.user_ref(str(username)))
    if user is None:
        raise NotFound("No user named '%s'." % username)
    return user


@transaction
def list_users():
    return [{"username": name, "createdAt": iso(created), "disabled": bool(disabled),
             "bot": bool(bot), "roomCount": room_count}
            for name, created, disabled, bot, room_count in users.listing()]
