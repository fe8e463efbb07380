"""The WebSocket endpoint /chat: upgrade gate, authentication, dispatch.

One Session per connection, driven by the connection's own greenlet (the
one pywsgi spawned for it). Transport only: every rule is in ops, every
live-delivery concern in hub, every frame concern in wscodec and wsconn.
"""
import logging
import random
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import gevent

from . import errors, validate, wscodec, wsproto
from .auth import token_hash
from .deadlines import Deadlines
from .errors import ChatError, NotJoined
from .hub import encode
from .keys import room_key

log = logging.getLogger("chatd.ws")

REPLAY_BATCH = 500


class RoomCursor:
    """What this connection has been sent of one room."""
    __slots__ = ("last", "stash")

    def __init__(self):
        self.last = 0
        self.stash = []  # events that arrive while the join replays history


class Session:
    __slots__ = ("service", "conn", "user", "username", "token_hash", "rooms", "strikes")

    def __init__(self, service, conn):
        self.service = service
        self.conn = conn
        self.user = None
        self.username = None
        self.token_hash = None
        self.rooms = {}  # room_pk -> RoomCursor
        self.strikes = 0

    # -- delivery (called by the hub) -----------------------------------------
    def push(self, room_pk, seq, frame):
        if room_pk is None:  # a per-user event
            self.conn.send(frame)
            return
        cursor = self.rooms.get(room_pk)
        if cursor is None:
            return
        if cursor.stash is not None:
            cursor.stash.append((seq, frame))
        elif seq is None:
            self.conn.send(frame)
        elif seq > cursor.last:
            cursor.last = seq
            self.conn.send(frame)

    def send(self, event):
        self.conn.send(encode(event))

    def error(self, exc, ref=None):
        self.send(exc.as_event(ref))

    def close_queued(self):
        """Our close frame is queued: the peer is dropped if it was not heard from
        within write_timeout (the sweeper looks when that comes)."""
        self.service.sweeper.reschedule(self)

    def end(self, code, reason, error=None):
        """Close from the server side, telling the client why first."""
        if error is not None:
            self.error(error)
        self.conn.close(code, reason)

    # -- authentication -------------------------------------------------------
    def authenticate(self, token):
        chat = self.service.chat
        self.user = chat.authenticate(token)
        self.username = self.user.username
        self.token_hash = token_hash(token)
        self.service.hub.add_user_session(self)

    # -- the read loop --------------------------------------------------------
    def run(self, upgrade_token):
        if upgrade_token is not None:
            try:
                self.authenticate(upgrade_token)
            except ChatError as exc:
                self.end(wscodec.CLOSE_POLICY, "unauthorized", exc)
        next_message = self.conn.next_message
        while True:
            message = next_message()
            if message is None:
                return
            opcode, payload = message
            if self.conn.closing:
                continue  # the reader still drains until the peer's close
            if opcode != wscodec.OP_TEXT:
                self.service.metrics.rejected("binary")
                self.error(errors.BadRequest("Binary frames are not supported; send JSON text."))
                continue
            self.handle(payload)

    def handle(self, payload):
        action = None
        try:
            body = validate.json_object(payload, "frame")
            action = body.get("action")
            if not isinstance(action, str):
                raise errors.BadRequest("Field 'action' is required and must be a string.")
            if self.user is None and not self._first_message(body):
                return
            validate.own_username(body.get("username"), "username", self.username)
            handler = ACTIONS.get(action)
            if handler is None:
                raise errors.BadRequest("Unknown action '%s'." % action[:64])
            handler(self, body)
        except ChatError as exc:
            self.error(exc, action if isinstance(action, str) else None)
        except Exception:
            log.exception("websocket action %r failed for %s", action, self.username)
            self.error(errors.Internal("Internal error."), action if isinstance(action, str) else None)

    def _first_message(self, body):
        """Authenticate from the first message; False if the connection is done."""
        try:
            token = body.get("token")
            if not isinstance(token, str) or not token:
                raise errors.Unauthorized("Authenticate first: send a token.")
            self.authenticate(token)
        except ChatError as exc:
            if exc.code in ("unauthorized", "forbidden"):
                self.end(wscodec.CLOSE_POLICY, "unauthorized", errors.Unauthorized(exc.message))
                return False
            raise
        return True

    # -- actions ---------------------------------------------------------------
    def do_auth(self, body):
        """Authentication alone (the token was taken by _first_message)."""
        self.send({"action": "authenticated", "username": self.username})

    def do_join(self, body):
        room_id = validate.string(body, "roomId")
        room_pk = validate.room_ref(room_id)
        since = body.get("since")
        if since is not None:
            since = validate.integer(since, "since", 0)
        self._check_room_cap(room_pk)
        name = self.service.chat.join_room(self.user, room_id)
        hub = self.service.hub
        if since is not None and not hub.has_reached(room_pk, since):
            # Delivery would wait for ids past `since` that may never come.
            raise errors.BadRequest("Field 'since' is beyond the room's last message: "
                                    "this history comes from elsewhere; reload it.")
        cursor = self.rooms[room_pk] = RoomCursor()
        live = hub.subscribe(self, room_pk)
        upto = live.last_seq
        self.send({"action": "joined", "roomId": room_id,
                   "message": "Welcome to %s!" % name, "members": hub.online(room_pk)})
        cursor.last = upto
        if since is not None:
            if since > upto and since > self.service.chat.room_last_seq(room_pk):
                raise errors.BadRequest("Field 'since' is past the room's last seq: reload "
                                        "its history.")
            self._replay(room_pk, since, upto)
            cursor.last = max(since, upto)
        stash, cursor.stash = cursor.stash, None
        for seq, frame in stash:
            self.push(room_pk, seq, frame)

    def _check_room_cap(self, room_pk):
        # bad_request, not rate_limited: waiting does not help, leaving a room does.
        cap = self.service.settings.websocket.max_rooms_per_connection
        if room_pk not in self.rooms and len(self.rooms) >= cap:
            raise errors.BadRequest("This connection has joined %d rooms, the most it may; "
                                    "leave one first." % cap)

    def _replay(self, room_pk, after, upto):
        """The room's sequenced events after `after` up to `upto`, in batches the socket can take."""
        while after < upto and not self.conn.closing:
            events = self.service.chat.events_since(room_pk, after, upto)
            if not events:
                break
            self.conn.send(b"".join(encode(event) for event in events[:REPLAY_BATCH]))
            after = events[min(len(events), REPLAY_BATCH) - 1]["seq"]
            self.conn.wait_drained()

    def do_send_message(self, body):
        self.service.metrics.received()
        room_pk = self._joined_room(body)
        event, new = self._rated(self.service.chat.post_message, room_pk, body.get("message"),
                                 body.get("clientMsgId"), body.get("replyTo"))
        if event is not None and not new:
            self.send(event)  # a retry: only the sender hears it again

    # Changes to a message: their events reach this connection (if joined) like anyone's.
    def do_edit_message(self, body):
        self._rated(self.service.chat.edit_message, validate.string(body, "roomId"),
                    body.get("id"), body.get("message"))

    def do_delete_message(self, body):
        self._rated(self.service.chat.delete_message, validate.string(body, "roomId"),
                    body.get("id"))

    def do_react(self, body):
        self._rated(self.service.chat.react, validate.string(body, "roomId"), body.get("id"),
                    body.get("emoji"))

    def do_unreact(self, body):
        self._rated(self.service.chat.unreact, validate.string(body, "roomId"), body.get("id"),
                    body.get("emoji"))

    def _rated(self, operation, *args):
        """Run a change; past the rate, strike, and close a connection that keeps flooding."""
        try:
            result = operation(self.user, *args)
        except errors.RateLimited:
            self.service.metrics.rejected("rate_limited")
            self.strikes += 1
            if self.strikes >= self.service.settings.limits.flood_strikes:
                self.end(wscodec.CLOSE_POLICY, "flooding",
                         errors.RateLimited("Too many messages; disconnected."))
                return None, False
            raise
        self.strikes = 0
        return result

    def do_leave(self, body):
        room_pk = self._joined_room(body)
        self.service.hub.unsubscribe(self, room_pk)
        del self.rooms[room_pk]
        self.send({"action": "left", "roomId": room_key(room_pk)})

    def do_typing(self, body):
        self.service.hub.typing(self._joined_room(body), self.username)

    def do_read(self, body):
        """Move this user's read marker (PROTOCOL.md section 8): every session of
        the user, this one included, hears read-marker once it is stored."""
        self.service.chat.mark_read(self.user, validate.string(body, "roomId"), body.get("upTo"))

    def _joined_room(self, body):
        room_id = validate.string(body, "roomId")
        room_pk = validate.room_ref(room_id)
        if room_pk not in self.rooms:
            # An unknown room, or one this user may not see, is not_found (the
            # same answer for both); only a room they could join is not_joined.
            self.service.chat.check_visible(self.user, room_id)
            raise NotJoined("Join %s on this connection first." % room_key(room_pk))
        return room_pk

    def drop(self):
        for room_pk in list(self.rooms):
            self.service.hub.unsubscribe(self, room_pk)
        self.rooms.clear()
        if self.username is not None:
            self.service.hub.remove_user_session(self)

    def taken_out(self, room_pk, told):
        """The user is out of the room (left over HTTP, removed, banned): stop receiving it.

        Told: a room-removed follows; else it was the user's own leave, which
        this connection hears of as `left`.
        """
        if self.rooms.pop(room_pk, None) is None:
            return
        self.service.hub.unsubscribe(self, room_pk)
        if not told:
            self.send({"action": "left", "roomId": room_key(room_pk)})

    def room_deleted(self, room_pk):
        if self.rooms.pop(room_pk, None) is not None:
            self.send({"action": "room-deleted", "roomId": room_key(room_pk)})


ACTIONS = {
    "auth": Session.do_auth,
    "join": Session.do_join,
    "send-message": Session.do_send_message,
    "edit-message": Session.do_edit_message,
    "delete-message": Session.do_delete_message,
    "react": Session.do_react,
    "unreact": Session.do_unreact,
    "leave": Session.do_leave,
    "typing": Session.do_typing,
    "read": Session.do_read,
}


def serve(service, handler):
    """The whole life of one /chat connection, on its own greenlet."""
    limits = service.settings.websocket
    token = upgrade_token(handler.environ)
    conn = wsproto.take_over(handler, limits.max_frame_bytes, limits.max_fragments,
                             limits.send_queue, limits.write_timeout, limits.socket_send_buffer)
    conn.last_ping = conn.created - random.uniform(0, limits.ping_interval)
    session = Session(service, conn)
    service.sessions.add(session)
    service.sweeper.watch(session)
    if service.hub.stopping:  # upgraded after shutdown sent everyone else its 1001
        conn.close(wscodec.CLOSE_GOING_AWAY, "server shutting down")
    started = time.monotonic()
    try:
        session.run(token)
    finally:
        service.sweeper.forget(session)  # first: what follows may yield or raise
        service.sessions.discard(session)
        session.drop()
        conn.finish()
        service.metrics.closed(conn.close_sent, conn.peer_close_code)
        log.info("%s GET /chat 101 user=%s %.1fs sent=%s peer=%s", secrets.token_hex(6),
                 session.username, time.monotonic() - started, conn.close_sent,
                 conn.peer_close_code)


def end_sessions(sessions, match, reason):
    """Close every session `match` selects (disabled user, revoked token)."""
    for session in tuple(sessions):
        if session.user is not None and match(session):
            session.end(wscodec.CLOSE_POLICY, reason, errors.Unauthorized("Your session has ended."))


def upgrade_token(environ):
    header = environ.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    return values[0] if values else None


def origin_allowed(environ, allowed):
    """Section 3's rule: no Origin is fine; else listed, '*', or same host:port."""
    origin = environ.get("HTTP_ORIGIN")
    if not origin:
        return True
    if "*" in allowed:
        return True
    if allowed:
        return origin.rstrip("/") in {item.rstrip("/") for item in allowed}
    host = environ.get("HTTP_HOST", "")
    return urlsplit(origin).netloc.lower() == host.lower() and bool(host)


class Sweeper:
    """One greenlet for every connection's deadlines: auth, ping, silence, an
    unanswered close.

    Each connection waits in a Deadlines wheel for its next deadline and is
    looked at then, not every tick; a deadline that moved later meanwhile
    (the peer was heard from) is found then and the connection put back.
    """

    # Connections checked between yields: a sweep of 10,000 took the loop for
    # milliseconds, and a message stored meanwhile waited for all of it.
    BATCH = 256

    def __init__(self, settings):
        self.settings = settings.websocket
        self.deadlines = Deadlines(min(1.0, self.settings.auth_timeout / 2), time.monotonic())
        self._greenlet = gevent.spawn(self._run)

    def watch(self, session):
        """Keep a new connection's deadlines, a close we queue included."""
        session.conn.on_closing = session.close_queued
        self.reschedule(session)

    def forget(self, session):
        self.deadlines.forget(session)
        session.conn.on_closing = None  # the session and its connection point at each other

    def reschedule(self, session):
        """Put the connection at its next deadline."""
        write, auth, idle, ping = self._deadlines(session)
        if session.conn.closing:
            due = write
        else:
            due = min(idle, ping) if auth is None else min(idle, ping, auth)
        self.deadlines.schedule(session, due)

    def _deadlines(self, session):
        """(write, auth, idle, ping): when a peer that has not answered our close is
        dropped, one that has not authenticated (None once it has), one that is
        silent; when a quiet one is pinged."""
        conn, limits = session.conn, self.settings
        return (conn.last_seen + limits.write_timeout,
                conn.created + limits.auth_timeout if session.user is None else None,
                conn.last_seen + limits.idle_timeout,
                max(conn.last_ping, conn.last_seen) + limits.ping_interval)

    def _run(self):
        while True:
            # to the start of the next tick: what is due then waits no longer
            gevent.sleep(max(0.0, self.deadlines.next_tick - time.monotonic()))
            now = time.monotonic()
            for done, session in enumerate(self.deadlines.due(now), 1):
                if session.conn.on_closing is None:
                    continue  # forgotten (it ended) while this sweep yielded
                try:
                    self._check(session, now)
                    self.reschedule(session)
                except Exception:  # the sweeper must outlive any one connection
                    log.exception("checking a connection's deadlines failed")
                    self.deadlines.schedule(session, now + self.settings.ping_interval)
                if done % self.BATCH == 0:
                    gevent.sleep(0)

    def _check(self, session, now):
        conn = session.conn
        write, auth, idle, ping = self._deadlines(session)
        if conn.closing:
            if now > write:
                conn.abort()  # sent close long ago and the peer never answered
            return
        if auth is not None and now > auth:
            session.end(wscodec.CLOSE_POLICY, "unauthorized",
                        errors.Unauthorized("Authentication timed out."))
        elif now > idle:
            if conn.unfinished:
                # Begun and never finished, pinging or not (pings in the middle
                # of a message do not count as life): the peer learns why.
                conn.close(wscodec.CLOSE_POLICY, "message not finished")
            else:
                conn.abort()
        elif now >= ping:
            # Only a quiet peer is pinged, each on its own schedule (see serve):
            # pinging everyone at once made a burst that every message waited behind.
            conn.last_ping = now
            conn.send(wscodec.PING_FRAME)
