"""A live session: the rooms' events from a WebSocket that survives drops.

    with client.live(rooms=["room_1"], since={"room_1": 41}) as session:
        for event in session:           # blocks; yields dicts
            if event["action"] == "new-message":
                session.send(event["roomId"], "seen %d" % event["id"])

What it does for the caller:
- authenticates with the token in the first frame (`auth`, then waits for
  `authenticated`), joins every room, and yields every event it receives
  (presence, typing, `joined` after each (re)connection, errors included);
- when the connection drops, the server restarts or goes silent past
  `idle_timeout` (it pings every 25 s), reconnects with jittered
  exponential backoff and rejoins each room with `since` = the largest
  `seq` it has yielded for that room (a `new-message`'s `id` on servers
  whose events carry no `seq`), so nothing is missed; and it drops any
  sequenced event at or below that mark, so nothing is yielded twice;
- `send()` gives each message a clientMsgId and keeps it in an outbox until
  the server's own `new-message` with that clientMsgId comes back; after a
  reconnection every unacknowledged message is sent again, and the server
  stores it once whatever happened to the first try. A send the server
  refuses (too long, not a member, rate limited) leaves the outbox and is
  yielded as its `error` event with `clientMsgId` and `roomId` added (the
  server answers a connection's frames in order, which is how the error is
  matched to its message); a join refused (room gone, banned) is yielded
  as its `error` with `roomId` added, and the room leaves the session.
- A room that goes away (`room-deleted`, `room-removed`) leaves the session.

Rooms with no `since` start at the room's end as of the first connection,
which the first next_event() or iteration makes (learned over HTTP before
the first join: GET /api/rooms `lastSeq`, else the last history id),
so a drop before the first event still loses nothing; give `since={room: 0}`
to get a room's whole past first.

Ends: `close()` (from any thread) makes the iteration stop; a token that no
longer works (`unauthorized`) raises Unauthorized from the iteration, as does
an HTTP error other than a transient one while learning a room's end.

Threads: iterate (or call next_event) in one thread only; `send()` and
`close()` are safe from any thread (one lock guards the socket and outbox).
"""
import collections
import json
import random
import threading
import time
import uuid

import websocket

from . import errors

NETWORK_ERRORS = (OSError, websocket.WebSocketException)


def new_client_msg_id():
    """A fresh clientMsgId: random, so a retry of the same send is recognisable."""
    return uuid.uuid4().hex


class Backoff:
    """Jittered exponential delays: `initial` doubling up to `maximum`, each
    scaled by a random factor in [0.5, 1] so clients a restart dropped
    together do not come back together."""

    def __init__(self, initial=0.25, maximum=30.0, rng=random.random):
        self.initial = initial
        self.maximum = maximum
        self.rng = rng
        self.failures = 0

    def next_delay(self):
        ceiling = min(self.maximum, self.initial * 2 ** self.failures)
        self.failures += 1
        return ceiling * (0.5 + self.rng() / 2)

    def reset(self):
        self.failures = 0


class Positions:
    """The largest seq yielded per room: what to resume from, what is a duplicate."""

    def __init__(self, since=None):
        self.last = dict(since or {})

    def accept(self, event):
        """True if the event is to be yielded (new, or not sequenced at all)."""
        room, seq = event.get("roomId"), sequence_number(event)
        if seq is None or room is None or room not in self.last:
            return True
        if seq <= self.last[room]:
            return False
        self.last[room] = seq
        return True


def sequence_number(event):
    """An event's place in its room: `seq`; `id` for a new-message without one."""
    seq = event.get("seq")
    if seq is None and event.get("action") == "new-message":
        seq = event.get("id")
    return seq if isinstance(seq, int) else None


class Pending:
    """Requests sent on this connection not answered yet, in the order sent."""

    def __init__(self):
        self.keys = collections.deque()

    def sent(self, key):
        self.keys.append(key)

    def answered(self, key):
        try:
            self.keys.remove(key)
        except ValueError:
            pass

    def failed(self):
        """The oldest unanswered one: the one an error answer is about."""
        return self.keys.popleft() if self.keys else None

    def clear(self):
        self.keys.clear()


class Outbox:
    """Messages sent and not acknowledged, by clientMsgId, in the order sent."""

    def __init__(self):
        self.frames = collections.OrderedDict()
        self.in_flight = Pending()

    def add(self, frame):
        self.frames[frame["clientMsgId"]] = frame

    def acknowledged(self, client_msg_id):
        self.frames.pop(client_msg_id, None)
        self.in_flight.answered(client_msg_id)

    def refused(self):
        """The frame an error answer is about, out of the outbox (None if unknown)."""
        return self.frames.pop(self.in_flight.failed(), None)

    def __len__(self):
        return len(self.frames)


class LiveSession:
    """See the module docstring. Build it with Client.live()."""

    def __init__(self, client, rooms=(), since=None, backoff=None, idle_timeout=60.0,
                 connect_timeout=10.0):
        self.client = client
        self.rooms = list(dict.fromkeys(rooms))
        self.positions = Positions({room: seq for room, seq in (since or {}).items()
                                    if room in self.rooms})
        self.outbox = Outbox()
        self.backoff = backoff or Backoff()
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.username = None
        self.connections = 0  # how many times it has connected: 1 + reconnections
        self._joins = Pending()
        self._ws = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._retry_at = 0.0
        self._last_heard = 0.0

    # -- the caller's side ------------------------------------------------------
    def __iter__(self):
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def next_event(self, timeout=None):
        """The next event; None once closed; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closing.is_set():
            if self._ws is None:
                self._connect(deadline)
                continue
            event = self._receive(deadline)
            if event is not None:
                event = self._accept(event)
                if event is not None:
                    return event
        return None

    def send(self, room_id, text, client_msg_id=None, reply_to=None):
        """Queue a message for `room_id` (one of the session's rooms); returns its clientMsgId."""
        if room_id not in self.rooms:
            raise ValueError("%s is not one of this session's rooms" % room_id)
        frame = {"action": "send-message", "roomId": room_id, "message": text,
                 "clientMsgId": client_msg_id or new_client_msg_id()}
        if reply_to is not None:
            frame["replyTo"] = reply_to
        with self._lock:
            self.outbox.add(frame)
            self._send_message(frame)
        return frame["clientMsgId"]

    @property
    def unacknowledged(self):
        """clientMsgIds sent and not yet acknowledged, oldest first."""
        with self._lock:
            return list(self.outbox.frames)

    def close(self):
        self._closing.set()
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            _quietly(ws.close)

    # -- connecting ---------------------------------------------------------------
    def _connect(self, deadline):
        """One connection attempt after the backoff delay; retried by the caller's loop."""
        self._wait_until(self._retry_at, deadline)
        if self._closing.is_set():
            return
        try:
            self._open()
        except NETWORK_ERRORS + (errors.ChatError,) as exc:
            if isinstance(exc, errors.ChatError) and not errors.transient(exc):
                raise
            self._retry_at = time.monotonic() + self.backoff.next_delay()

    def _wait_until(self, when, deadline):
        if deadline is not None and deadline < when:
            self._closing.wait(max(0.0, deadline - time.monotonic()))
            raise TimeoutError("no event within the timeout")
        self._closing.wait(max(0.0, when - time.monotonic()))

    def _open(self):
        self._learn_positions()
        ws = websocket.create_connection(self.client.ws_url, timeout=self.connect_timeout)
        try:
            self._authenticate(ws)
        except BaseException:
            _quietly(ws.close)
            raise
        with self._lock:
            if self._closing.is_set():
                _quietly(ws.close)
                return
            self._ws = ws
            self._last_heard = time.monotonic()
            self._joins.clear()
            self.outbox.in_flight.clear()
            try:
                for room in self.rooms:
                    self._send_frame({"action": "join", "roomId": room,
                                      "since": self.positions.last[room]})
                    self._joins.sent(room)
            except NETWORK_ERRORS:
                pass  # dropped already: the reader sees it and connects again
            for frame in self.outbox.frames.values():
                self._send_message(frame)
        self.connections += 1

    def _authenticate(self, ws):
        ws.send(json.dumps({"action": "auth", "token": self.client.token}))
        while True:
            opcode, data = ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise errors.Unreachable("the server closed the connection while authenticating")
            event = json.loads(data)
            if event.get("action") == "authenticated":
                self.username = event.get("username")
                self.backoff.reset()
                return
            if event.get("action") == "error":
                raise errors.from_event(event)

    def _learn_positions(self):
        """Where rooms without a `since` end now, so a resume from there misses nothing."""
        missing = [room for room in self.rooms if room not in self.positions.last]
        if not missing:
            return
        listed = {item.get("roomId"): item for item in self.client.rooms()}
        for room in missing:
            last_seq = listed.get(room, {}).get("lastSeq")
            self.positions.last[room] = last_seq if isinstance(last_seq, int) else (
                self._last_message_id(room))

    def _last_message_id(self, room):
        try:
            page = self.client.history(room, limit=1)
        except errors.Forbidden:  # a public room we are not in yet: joining is allowed
            self.client.join_room(room)
            page = self.client.history(room, limit=1)
        return page["messages"][-1]["id"] if page["messages"] else 0

    # -- the connection -------------------------------------------------------------
    def _send_frame(self, frame):
        self._ws.send(json.dumps(frame))

    def _send_message(self, frame):
        """Send an outbox frame if connected (lock held); a failure waits for the reconnect."""
        if self._ws is None:
            return
        try:
            self._send_frame(frame)
        except NETWORK_ERRORS:
            return  # the reader sees the drop, reconnects and sends it again
        self.outbox.in_flight.sent(frame["clientMsgId"])

    def _receive(self, deadline):
        """One event from the socket; None for a control frame or a dropped connection."""
        ws = self._ws
        idle_at = self._last_heard + self.idle_timeout
        wait = idle_at if deadline is None else min(idle_at, deadline)
        try:
            ws.settimeout(max(0.01, wait - time.monotonic()))
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            if deadline is not None and deadline <= idle_at:
                raise TimeoutError("no event within the timeout") from None
            return self._dropped(ws)  # silent past idle_timeout: a dead link
        except NETWORK_ERRORS + (AttributeError,):  # AttributeError: closed under us
            return self._dropped(ws)
        self._last_heard = time.monotonic()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return self._dropped(ws)
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return None
        return json.loads(frame.data)

    def _dropped(self, ws):
        with self._lock:
            if self._ws is ws:
                self._ws = None
        _quietly(ws.close)
        self._retry_at = time.monotonic() + self.backoff.next_delay()
        return None

    def _accept(self, event):
        """Bookkeeping for one received event; the event to yield, or None."""
        action = event.get("action")
        if action == "new-message" and event.get("clientMsgId"):
            with self._lock:
                self.outbox.acknowledged(event["clientMsgId"])
        elif action == "joined":
            self._joins.answered(event.get("roomId"))
        elif action == "error":
            return self._error(event)
        elif action in ("room-deleted", "room-removed"):
            self._forget(event.get("roomId"))
        return event if self.positions.accept(event) else None

    def _error(self, event):
        if event.get("code") == "unauthorized":
            self.close()
            raise errors.from_event(event)
        ref = event.get("ref")
        if ref == "send-message":
            with self._lock:
                frame = self.outbox.refused()
            if frame is not None:
                event.update(roomId=frame["roomId"], clientMsgId=frame["clientMsgId"])
        elif ref == "join":
            room = self._joins.failed()
            if room is not None:
                event["roomId"] = room
                self._forget(room)
        return event

    def _forget(self, room):
        if room in self.rooms:
            self.rooms.remove(room)
            self.positions.last.pop(room, None)


def _quietly(call):
    try:
        call()
    except Exception:
        pass
