"""Every domain operation, called alike by HTTP, WebSocket and chat-admin.

Each validates, runs in one transaction, returns plain data and raises
ChatError. Live delivery is not done here: `post_message` hands the stored
event to `on_message` (the hub in chatd), and changes other processes must
act on are written as ControlEvent rows in the same transaction.
"""
import json

import peewee as pw

from . import auth, commit, models, store, validate
from .models import transaction
from .errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized
from .models import ControlEvent, Membership, Message, Room, Token, User

HOUR = 3600  # seconds: the window of the hourly limits


def _user_key(name):
    return name.lower()


def _room_key(name):
    return name.casefold()


class Chat:
    """The rules. `broker` holds counters shared across processes."""

    def __init__(self, settings, passwords, broker):
        self.settings = settings
        self.passwords = passwords
        self.broker = broker
        self.writer = commit.GroupCommit()  # chatd sets writer.on_stored to the hub

    # -- accounts -------------------------------------------------------------
    def register(self, username, password, address):
        """A user's own registration: open_registration, and an hourly limit per address."""
        if not self.settings.auth.open_registration:
            raise Forbidden("Registration is closed on this server.")
        key = "register-addr:" + address
        self._check_recent(key, self.settings.auth.registrations_per_hour, HOUR,
                           "Too many registrations from this address; try again later.")
        created = self.create_user(username, password)
        self.broker.hit(key, HOUR)
        return created

    def create_user(self, username, password, disabled=False):
        validate.username(username)
        hashed = self.passwords.hash(validate.password(password)) if password else None
        return self._insert_user(username, hashed, disabled)

    @transaction
    def _insert_user(self, username, hashed, disabled):
        try:
            User.create(username=username, username_key=_user_key(username),
                        password_hash=hashed, created_at=store.now_ms(), disabled=disabled)
        except pw.IntegrityError:
            raise Conflict("Username '%s' is already taken." % username)
        return {"username": username}

    def login(self, username, password, address):
        """A new token, or Unauthorized the same way for any bad pair."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise Unauthorized("Invalid username or password.")
        keys = ("login-user:" + _user_key(username)[:64], "login-addr:" + address)
        self._check_login_throttle(keys)
        user = self._find_user(username)
        ok = self.passwords.verify(user.password_hash if user else None, password)
        if not ok:
            for key in keys:
                self.broker.hit(key, self.settings.auth.login_failure_window)
            raise Unauthorized("Invalid username or password.")
        if user.disabled:
            raise Forbidden("This account is disabled.")
        token, hashed = auth.new_token()
        expires = self._store_token(user, hashed)
        return {"token": token, "username": user.username, "expiresAt": store.iso(expires)}

    def _check_login_throttle(self, keys):
        limits = (self.settings.auth.login_failures_per_user,
                  self.settings.auth.login_failures_per_address)
        for key, limit in zip(keys, limits):
            self._check_recent(key, limit, self.settings.auth.login_failure_window,
                               "Too many failed logins; try again later.")

    def _check_recent(self, key, limit, window, message):
        """RateLimited while `key` has `limit` hits in the last `window` seconds.

        The counters live in the broker, so on Redis the limit holds across
        processes. Retry-After is when the oldest hit leaves the window.
        """
        if self.broker.count_recent(key, window) >= limit:
            retry = max(1, int(window - self.broker.oldest_hit_age(key)) + 1)
            raise RateLimited(message, retry_after=retry)

    @transaction
    def _find_user(self, username):
        return User.get_or_none(User.username_key == _user_key(username))

    @transaction
    def _store_token(self, user, hashed):
        now = store.now_ms()
        expires = now + self.settings.auth.token_ttl * 1000
        Token.create(token_hash=hashed, user=user, created_at=now, expires_at=expires)
        return expires

    @transaction
    def authenticate(self, token):
        """The live user a bearer token belongs to, or Unauthorized."""
        if not token:
            raise Unauthorized("A token is required.")
        row = (Token.select(Token, User).join(User)
               .where(Token.token_hash == auth.token_hash(token)).first())
        if row is None or row.expires_at <= store.now_ms() or row.user.disabled:
            raise Unauthorized("The token is invalid or has expired.")
        return row.user

    @transaction
    def logout(self, token):
        hashed = auth.token_hash(token)
        Token.delete().where(Token.token_hash == hashed).execute()
        _control("token_revoked", token_hash=hashed)

    @transaction
    def me(self, user):
        rooms = (Membership.select(Membership.room).where(Membership.user == user)
                 .order_by(Membership.room).tuples())
        return {"username": user.username, "createdAt": store.iso(user.created_at),
                "rooms": [store.room_key(room) for (room,) in rooms]}

    # -- operator actions on accounts ----------------------------------------
    def set_password(self, username, password):
        hashed = self.passwords.hash(validate.password(password))
        self._update_user(username, password_hash=hashed)

    def set_disabled(self, username, disabled):
        self._update_user(username, disabled=disabled)

    @transaction
    def _update_user(self, username, **fields):
        user = self._existing_user(username)
        User.update(**fields).where(User.id == user.id).execute()
        if fields.get("disabled", True):  # a new password or a disable ends sessions
            Token.delete().where(Token.user == user.id).execute()
            _control("user_sessions_end", username=user.username)

    @transaction
    def delete_user(self, username):
        user = self._existing_user(username)
        _control("user_sessions_end", username=user.username)
        user.delete_instance()

    def _existing_user(self, username):
        user = User.get_or_none(User.username_key == _user_key(str(username)))
        if user is None:
            raise NotFound("No user named '%s'." % username)
        return user

    @transaction
    def list_users(self):
        rooms = pw.fn.COUNT(Membership.id)
        query = (User.select(User, rooms.alias("room_count"))
                 .join(Membership, pw.JOIN.LEFT_OUTER).group_by(User).order_by(User.username_key))
        return [{"username": u.username, "createdAt": store.iso(u.created_at),
                 "disabled": bool(u.disabled), "roomCount": u.room_count} for u in query]

    # -- rooms ----------------------------------------------------------------
    def create_room(self, user, name):
        """A user's own room: at most [limits] rooms_per_hour of them an hour."""
        key = "rooms-user:%d" % user.id
        self._check_recent(key, self.settings.limits.rooms_per_hour, HOUR,
                           "Too many rooms created; try again later.")
        created = self._create_room(user, name)
        self.broker.hit(key, HOUR)
        return created

    @transaction
    def _create_room(self, user, name):
        return self._new_room(user, name)

    @transaction
    def create_room_for(self, owner, name):
        """An operator's room, owned (and joined) by the user named `owner`."""
        return self._new_room(self._existing_user(owner), name)

    def _new_room(self, user, name):
        name = validate.room_name(name)
        try:
            room = Room.create(name=name, name_key=_room_key(name), created_by=user,
                               created_at=store.now_ms())
        except pw.IntegrityError:
            raise Conflict("Room name '%s' is already taken." % name)
        Membership.create(user=user, room=room, joined_at=room.created_at)
        return {"roomId": store.room_key(room.id), "roomName": room.name}

    @transaction
    def list_rooms(self, message_counts=False):
        """Every room; message_counts (a count per room: for operators, not per request)."""
        members = (Membership.select(pw.fn.COUNT(Membership.id))
                   .where(Membership.room == Room.id))
        messages = (Message.select(pw.fn.COUNT(Message.id)).where(Message.room == Room.id)
                    if message_counts else pw.Value(None))
        query = (Room.select(Room.id, Room.name, Room.created_at, User.username,
                             members.alias("member_count"), messages.alias("message_count"))
                 .join(User, pw.JOIN.LEFT_OUTER, on=(Room.created_by == User.id))
                 .order_by(Room.id).tuples())
        rooms = []
        for pk, name, created, creator, member_count, message_count in query:
            rooms.append({"roomId": store.room_key(pk), "roomName": name,
                          "memberCount": member_count, "createdBy": creator,
                          "createdAt": store.iso(created)})
            if message_counts:
                rooms[-1]["messageCount"] = message_count
        return rooms

    @transaction
    def join_room(self, user, room_id):
        """Membership (joining twice is fine); returns the room's name."""
        room = self._room(room_id)
        (Membership.insert(user=user, room=room, joined_at=store.now_ms())
         .on_conflict_ignore().execute())
        return room.name

    @transaction
    def leave_room(self, user, room_id):
        room = self._room(room_id)
        Membership.delete().where((Membership.user == user) & (Membership.room == room)).execute()

    def room_members(self, user, room_id):
        return self._with_presence(*self._member_names(user, room_id))

    def members_of(self, room_id, presence=True):
        """An operator's view of a room's members (no membership needed).

        `online` only when presence is true: chat-admin on the in-process
        broker cannot see who is connected to chatd.
        """
        room_pk, names = self._all_member_names(room_id)
        if not presence:
            return [{"username": name} for name in names]
        return self._with_presence(room_pk, names)

    def _with_presence(self, room_pk, names):
        online = set(self.broker.online(room_pk))  # may be a network call: outside the transaction
        return [{"username": name, "online": name in online} for name in names]

    @transaction
    def _member_names(self, user, room_id):
        room = self._member_room(user, room_id)
        return room.id, _names_in(room)

    @transaction
    def _all_member_names(self, room_id):
        room = self._room(room_id)
        return room.id, _names_in(room)

    @transaction
    def delete_room(self, room_id):
        room = self._room(room_id)
        _control("room_deleted", room=room.id)
        room.delete_instance()

    def _room(self, room_id):
        room = Room.get_or_none(Room.id == validate.room_id(room_id))
        if room is None:
            raise NotFound("No room %s." % room_id)
        return room

    def _member_room(self, user, room_id):
        room = self._room(room_id)
        if not Membership.select().where((Membership.user == user) &
                                         (Membership.room == room)).exists():
            raise Forbidden("You are not a member of %s." % room_id)
        return room

    # -- messages -------------------------------------------------------------
    @transaction
    def history(self, user, room_id, limit=50, before=None, after=None):
        room = self._member_room(user, room_id)
        events, more = store.history_page(room.id, limit, before, after)
        for event in events:
            del event["action"], event["roomId"]
        return {"roomId": store.room_key(room.id), "messages": events, "hasMore": more}

    @transaction
    def messages_since(self, room_pk, since, upto):
        return store.events_between(room_pk, since, upto)

    @transaction
    def room_last_seq(self, room_pk):
        return Room.select(Room.last_seq).where(Room.id == room_pk).scalar() or 0

    def check_rate(self, user):
        limits = self.settings.limits
        if not self.broker.take_token("rate:%d" % user.id, limits.messages_per_minute,
                                      limits.message_burst):
            raise RateLimited("Too many messages; slow down.", retry_after=1)

    def post_message(self, user, room_pk, text, client_msg_id=None):
        """Store one message (live delivery follows via writer.on_stored): (event, is_new)."""
        text = validate.message_text(text, self.settings.limits.max_message_chars)
        client_msg_id = validate.client_msg_id(client_msg_id)
        result = self.writer.submit(commit.Post(user.id, user.username, room_pk, text,
                                                client_msg_id))
        if result is commit.NOT_ALLOWED:
            self._why_not_allowed(user, room_pk)
        return result

    @transaction
    def _why_not_allowed(self, user, room_pk):
        self._member_room(user, store.room_key(room_pk))
        raise Forbidden("You are not a member of %s." % store.room_key(room_pk))

    def ping(self):
        """Whether the database answers (see models.probe)."""
        try:
            models.probe()
            return True
        except Exception:
            return False

    # -- control events for other processes -----------------------------------
    @transaction
    def control_events_after(self, last_id):
        rows = (ControlEvent.select().where(ControlEvent.id > last_id)
                .order_by(ControlEvent.id).limit(1000))
        return [(row.id, row.kind, json.loads(row.payload)) for row in rows]

    @transaction
    def last_control_event(self):
        return ControlEvent.select(pw.fn.MAX(ControlEvent.id)).scalar() or 0

    @transaction
    def housekeeping(self):
        """Drop expired tokens, and control events every process has long seen."""
        now = store.now_ms()
        Token.delete().where(Token.expires_at <= now).execute()
        ControlEvent.delete().where(ControlEvent.created_at < now - 3600 * 1000).execute()


def _names_in(room):
    names = (User.select(User.username).join(Membership)
             .where(Membership.room == room).order_by(User.username_key).tuples())
    return [name for (name,) in names]


def _control(kind, **payload):
    ControlEvent.create(kind=kind, payload=json.dumps(payload), created_at=store.now_ms())
