"""Live delivery on this process: rooms -> sessions, presence, ordered fan-out.

Every sequenced event (a new message and every other change in a room's
log) passes a per-room sequencer on its `seq`: seqs are dense per room, so
the hub delivers L+1 after L and never twice. An id that
arrives early (another process published first, or the broker lost some
events) waits briefly, then the missing ids are read from the database.
The same rule makes local and remote delivery idempotent, so a message is
delivered locally at once and published for the other processes after.

Per-user events (read markers, a room added or removed) go to every
session of a user on this process and are published for the others.

A user taken out of a room (left, removed, banned) is unsubscribed from it
on every session of theirs on every process at once (`take_out`).

Long polls (GET /api/rooms/:roomId/events?wait=) wait on the room's one
gevent Event, set when the room fans out: a waiter costs a greenlet, not a
database connection, and keeps the room live so other processes' events
reach it.

Sessions are duck-typed: `username`, `push(room_pk, seq, frame)` (room_pk
None for a per-user event), `taken_out(room_pk, told)` and `end(code, reason)`.
"""
import collections
import json
import logging
import time

import gevent
import gevent.event

from . import events, wscodec
from .keys import user_key

log = logging.getLogger("chatd.hub")
REPAIR_GRACE = 0.05  # seconds an early id waits for the ones before it
TYPING_INTERVAL = 2.0  # seconds: a user's typing reaches a room at most this often


def encode(event):
    """JSON text frame for an event: built once, written to every recipient."""
    payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return wscodec.encode_frame(payload)


class RoomLive:
    __slots__ = ("pk", "sessions", "last_seq", "pending", "repairing", "users", "typed",
                 "waiters", "wake")

    def __init__(self, pk, last_seq):
        self.pk = pk
        self.sessions = set()
        self.last_seq = last_seq
        self.pending = {}  # seq -> frame, ids that came early
        self.repairing = False
        self.users = collections.Counter()  # username -> local sessions joined
        self.typed = {}  # username -> when their last typing went out from here
        self.waiters = 0  # long polls waiting for the room's next event
        self.wake = None  # their gevent Event, made by the first of them, set on fan-out

    def idle(self):
        return not self.sessions and not self.waiters


class Hub:
    def __init__(self, broker, fetch_events, room_last_seq, stats=None):
        """fetch_events(room_pk, after, upto) and room_last_seq(room_pk) read the database.

        The wiring starts the broker with on_remote as its listener.
        """
        self.broker = broker
        self.fetch_events = fetch_events
        self.room_last_seq = room_last_seq
        self.rooms = {}
        self.users = collections.defaultdict(set)  # user key -> authenticated sessions here
        self.stats = stats
        # Set at shutdown, once every local connection was sent its close: the
        # presence events of their ends go to the other processes alone (19,000
        # user-left fanned out to closing sockets were 8% of a stop's CPU).
        self.stopping = False

    # -- messages -------------------------------------------------------------
    def message_stored(self, row):
        """A message this process committed (a MessageRow): deliver here, then tell the others."""
        self.event_stored(row.room_pk, events.new_message(row))
        if self.stats:
            self.stats.broadcast_done(row.created_at)

    def event_stored(self, room_pk, event):
        """Any sequenced event this process committed: deliver here, then tell the others."""
        self._sequenced(room_pk, event["seq"], event)
        self.broker.publish({"kind": "event", "room": room_pk, "event": event})

    def _sequenced(self, room_pk, seq, event, frame=None):
        room = self.rooms.get(room_pk)
        if room is None or seq <= room.last_seq:
            return
        frame = frame or encode(event)
        if seq != room.last_seq + 1:
            room.pending[seq] = frame
            if not room.repairing:
                room.repairing = True
                gevent.spawn_later(REPAIR_GRACE, self._repair, room_pk, room)
            return
        self._fan_out(room, seq, frame)
        while room.pending:
            frame = room.pending.pop(room.last_seq + 1, None)
            if frame is None:
                break
            self._fan_out(room, room.last_seq + 1, frame)

    def _fan_out(self, room, seq, frame):
        room.last_seq = seq
        if room.wake is not None:
            room.wake.set()
            room.wake = None
        for session in tuple(room.sessions):
            session.push(room.pk, seq, frame)
        if self.stats:
            self.stats.delivered(len(room.sessions))

    def _repair(self, room_pk, room):
        """Fill the gap before the earliest waiting id from the database."""
        try:
            while room.pending and self.rooms.get(room_pk) is room:
                first_waiting = min(room.pending)
                if first_waiting == room.last_seq + 1:
                    self._sequenced(room_pk, first_waiting, None, room.pending.pop(first_waiting))
                    continue
                events = self.fetch_events(room_pk, room.last_seq, first_waiting - 1)
                for event in events:
                    self._sequenced(room_pk, event["seq"], event)
                if not events and room.last_seq < first_waiting - 1:
                    # The missing ids are gone (purged with the room's history). Only
                    # those: ids that arrived early while we read are not skipped.
                    room.last_seq = first_waiting - 1
        except Exception:  # the database is away: the next early id retries
            log.exception("gap repair in room %d failed", room_pk)
        finally:
            room.repairing = False

    def resync(self):
        """After the broker was away: deliver what other processes stored meanwhile."""
        for room_pk, room in list(self.rooms.items()):
            self._catch_up(room_pk, room)

    def _catch_up(self, room_pk, room):
        """Deliver every stored message of the room beyond what it has delivered."""
        seen = None
        while self.rooms.get(room_pk) is room and room.last_seq != seen:
            seen = room.last_seq  # fetch_events returns a page: go on until one adds nothing
            for event in self.fetch_events(room_pk, seen, None):
                self._sequenced(room_pk, event["seq"], event)

    def _catch_up_new(self, room_pk, room):
        try:
            self._catch_up(room_pk, room)
        except Exception:  # the database is away: the next early id repairs
            log.exception("catching up room %d failed", room_pk)

    # -- other room events (not stored, not sequenced) ------------------------
    def broadcast(self, room_pk, event, exclude_user=None):
        if not self.stopping:
            self._local(room_pk, encode(event), exclude_user)
        self.broker.publish({"kind": "room", "room": room_pk, "event": event,
                             "exclude": exclude_user})

    def typing(self, room_pk, username):
        """Tell the room the user types, unless this process did so less than
        TYPING_INTERVAL ago: a typing storm costs one event, not one per frame."""
        room = self.rooms.get(room_pk)
        if room is None:
            return
        now = time.monotonic()
        last = room.typed.get(username)
        if last is not None and now - last < TYPING_INTERVAL:
            return
        room.typed[username] = now
        self.broadcast(room_pk, events.presence("user-typing", room_pk, username),
                       exclude_user=username)

    def _local(self, room_pk, frame, exclude_user=None):
        room = self.rooms.get(room_pk)
        if room is None:
            return
        for session in tuple(room.sessions):
            if session.username != exclude_user:
                session.push(room_pk, None, frame)

    def on_remote(self, message):
        """An event published by another process."""
        kind = message.get("kind")
        if kind == "event":
            event = message["event"]
            self._sequenced(message["room"], event["seq"], event)
        elif kind == "user":
            self._to_local_user(message["user"], encode(message["event"]))
        elif kind == "room":
            self._local(message["room"], encode(message["event"]), message.get("exclude"))
        elif kind == "take-out":
            self.take_out_local(message["user"], message["room"], message.get("event"))
        elif kind == "resync":
            self.resync()
        elif kind == "presence-expired":  # the broker reaped a dead process's user
            self._local(message["room"], encode(events.presence(
                "user-left", message["room"], message["username"])), message["username"])

    # -- per-user events -------------------------------------------------------
    def add_user_session(self, session):
        """An authenticated session: it gets its user's per-user events from now on."""
        self.users[user_key(session.username)].add(session)

    def remove_user_session(self, session):
        key = user_key(session.username)
        sessions = self.users.get(key)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.users[key]

    def to_user(self, username, event):
        """A per-user event to every session of the user, on every process."""
        key = user_key(username)
        self._to_local_user(key, encode(event))
        self.broker.publish({"kind": "user", "user": key, "event": event})

    def _to_local_user(self, key, frame):
        for session in tuple(self.users.get(key, ())):
            session.push(None, None, frame)

    def to_local_user(self, username, event):
        """A per-user event to this process's sessions of the user only (a control
        event every process reads)."""
        self._to_local_user(user_key(username), encode(event))

    # -- a user taken out of a room ----------------------------------------------
    def take_out(self, username, room_pk, event=None):
        """Unsubscribe every session of the user from the room, on every process,
        then send them the per-user `event` (room-removed) if any."""
        key = user_key(username)
        self.take_out_local(key, room_pk, event)
        self.broker.publish({"kind": "take-out", "user": key, "room": room_pk, "event": event})

    def take_out_local(self, username, room_pk, event=None):
        sessions = tuple(self.users.get(user_key(username), ()))
        for session in sessions:
            session.taken_out(room_pk, told=event is not None)
        if event is not None:
            frame = encode(event)
            for session in sessions:
                session.push(None, None, frame)

    def catch_up(self, room_pk):
        """Deliver what another program (chat-admin) appended to a room's log."""
        room = self.rooms.get(room_pk)
        if room is not None:
            self._catch_up_new(room_pk, room)

    # -- subscriptions and presence -------------------------------------------
    def _live(self, room_pk):
        """The room's RoomLive, made (and caught up) if it has none yet."""
        room = self.rooms.get(room_pk)
        if room is None:
            last_seq = self.room_last_seq(room_pk)  # on PostgreSQL other greenlets run meanwhile
            room = self.rooms.get(room_pk)
        if room is None:
            room = self.rooms[room_pk] = RoomLive(room_pk, last_seq)
            # Another process's events that came while last_seq was read found
            # no live room here and were dropped: read them from the database.
            gevent.spawn(self._catch_up_new, room_pk, room)
        return room

    def wait_after(self, room_pk, after, timeout):
        """Wait (a greenlet, no connection held) until the room has an event past
        `after` or `timeout` seconds pass. The room stays live meanwhile, so other
        processes' events reach it too."""
        room = self._live(room_pk)
        room.waiters += 1
        try:
            deadline = time.monotonic() + timeout
            while room.last_seq <= after and self.rooms.get(room_pk) is room:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if room.wake is None:
                    room.wake = gevent.event.Event()
                room.wake.wait(left)
        finally:
            room.waiters -= 1
            if room.idle() and self.rooms.get(room_pk) is room:
                del self.rooms[room_pk]

    def subscribe(self, session, room_pk):
        """Add a session to a room; returns the RoomLive (its last_seq is the replay bound)."""
        room = self._live(room_pk)
        if session in room.sessions:
            return room
        room.sessions.add(session)
        room.users[session.username] += 1
        if room.users[session.username] == 1 and \
                self.broker.presence_join(room_pk, session.username):
            self.broadcast(room_pk, events.presence("user-joined", room_pk, session.username),
                           exclude_user=session.username)
        return room

    def has_reached(self, room_pk, seq):
        """Whether the room's messages have reached `seq`: this process's live
        view, else the database (another process may be ahead of this one)."""
        room = self.rooms.get(room_pk)
        return (room is not None and seq <= room.last_seq) or seq <= self.room_last_seq(room_pk)

    def online(self, room_pk):
        return self.broker.online(room_pk)

    def unsubscribe(self, session, room_pk):
        room = self.rooms.get(room_pk)
        if room is None or session not in room.sessions:
            return
        room.sessions.discard(session)
        room.users[session.username] -= 1
        if room.users[session.username] <= 0:
            del room.users[session.username]
            room.typed.pop(session.username, None)
            if self.broker.presence_leave(room_pk, session.username):
                self.broadcast(room_pk, events.presence("user-left", room_pk, session.username),
                               exclude_user=session.username)
        if room.idle() and self.rooms.get(room_pk) is room:  # the broker call yields
            del self.rooms[room_pk]

    def close_room(self, room_pk):
        """The room is gone: forget it without presence events; returns its sessions."""
        room = self.rooms.pop(room_pk, None)
        if room is None:
            return ()
        if room.wake is not None:  # its long polls answer now (the room is not found)
            room.wake.set()
        for username in room.users:
            self.broker.presence_leave(room_pk, username)
        return tuple(room.sessions)

    def room_count(self):
        return len(self.rooms)
