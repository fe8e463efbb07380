"""The Redis broker: what several chatd processes share, in the spirit of
python-socketio's pubsub manager.

It subclasses MemoryBroker and replaces only what must cross processes:
events (one pub/sub channel), presence (with per-process heartbeats) and the
counters behind login throttling and the message rate limit (Lua scripts,
so each check is one atomic round trip and uses Redis's clock).

Redis is never needed to store or acknowledge a message. While it is away,
every call falls back to the in-process behaviour of MemoryBroker (limits
count per process, presence is what this process sees), publishing drops
events, and /healthz reports the broker "down". A listener greenlet
reconnects with backoff; each time it is subscribed again it tells the hub
to resync (read from the database what it missed), and if this process
dropped events meanwhile it asks every other process to resync too.
Message delivery never depends on pub/sub alone: see hub.py and
the README, "Running several processes".

Presence in Redis, for room R, user U, process P:
  chatd:presence            sorted set of "R\\nU\\nP", scored by expiry (ms, Redis clock)
  chatd:presence:R:U        set of the processes where U is in R
  chatd:online:R            set of the users online in R
Every process refreshes its own entries every HEARTBEAT seconds and reaps
entries whose process stopped refreshing (kill -9): the reaper that removes
a user's last entry announces `user-left` to every process.
"""
import json
import logging
import os
import socket
import time
import uuid

import gevent
import gevent.queue
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .broker import MemoryBroker

log = logging.getLogger("chatd.broker")

HEARTBEAT = 5.0  # seconds between refreshes of this process's presence
PRESENCE_TTL = 20000  # ms an entry lives unrefreshed: a dead process's users go within 25 s
BACKOFF = (0.1, 5.0)  # reconnect delay: first, largest (doubling in between)
PUBLISH_BATCH = 1000
PREFIX = "chatd:"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: all entries, this user's processes in the room, the room's users
# ARGV: entry, process, user, ttl ms. Returns 1 if the user was nowhere before.
JOIN = _NOW + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[1])
local added = redis.call('SADD', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
if added == 1 and redis.call('SCARD', KEYS[2]) == 1 then return 1 end
return 0
"""

# Same KEYS; ARGV: entry, process, user. Returns 1 if that was the user's last entry.
LEAVE = """
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if removed == 1 and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[3])
  return 1
end
return 0
"""

# KEYS: all entries; ARGV: key prefix, max entries. Returns {room, user, ...}
# for every user whose last entry expired.
REAP = _NOW + """
local ended = {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now,
                                  'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('ZREM', KEYS[1], entry)
  local room, user, proc = string.match(entry, '^(%d+)\\n([^\\n]+)\\n(.+)$')
  if room then
    local procs = ARGV[1] .. 'presence:' .. room .. ':' .. user
    redis.call('SREM', procs, proc)
    if redis.call('SCARD', procs) == 0 then
      redis.call('SREM', ARGV[1] .. 'online:' .. room, user)
      table.insert(ended, room)
      table.insert(ended, user)
    end
  end
end
return ended
"""

# KEYS: hits of one key (sorted set scored by time); ARGV: window ms.
COUNT_RECENT = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: hits; ARGV: a unique member, ttl s.
HIT = _NOW + """
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
"""

# KEYS: hits. Returns the age of the oldest in ms (0 if none).
OLDEST_HIT_AGE = _NOW + """
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest == 0 then return 0 end
return now - tonumber(oldest[2])
"""

# KEYS: the bucket (hash of tokens, updated); ARGV: per minute, burst. 1 if one may pass.
TAKE_TOKEN = _NOW + """
local rate = tonumber(ARGV[1]) / 60000.0
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local ok = 0
if tokens >= 1 then
  tokens = tokens - 1
  ok = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return ok
"""


class RedisBroker(MemoryBroker):
    """Events over one pub/sub channel; presence and counters in Redis."""

    name = "redis"

    def __init__(self, url):
        super().__init__()
        self.process_id = "%s:%d:%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=32, timeout=2, socket_timeout=2, socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 0))  # no hidden retries: a failure falls back at once
        self.client = redis.Redis(connection_pool=pool)
        self.channel = "%sevents:%d" % (PREFIX, pool.connection_kwargs.get("db", 0))
        self.scripts = {name: self.client.register_script(text) for name, text in (
            ("join", JOIN), ("leave", LEAVE), ("reap", REAP), ("count", COUNT_RECENT),
            ("hit", HIT), ("oldest", OLDEST_HIT_AGE), ("take", TAKE_TOKEN))}
        self.up = False  # False: every call uses the in-process fallback
        self.dropped = False  # events this process could not publish since it was last up
        self.connected_at = 0.0  # when the listener was last subscribed
        self.outbox = gevent.queue.Queue()
        self.greenlets = []

    # -- lifecycle ------------------------------------------------------------
    def start(self, on_event):
        super().start(on_event)
        try:
            self.up = bool(self.client.ping())
        except redis.RedisError as exc:
            log.warning("redis broker unreachable at start (%s); retrying in the background", exc)
        self.greenlets = [gevent.spawn(self._listen), gevent.spawn(self._publisher),
                          gevent.spawn(self._heartbeat)]

    def stop(self):
        """Publish what is queued (the user-left of closed sessions), then go."""
        self._publish_queued()
        gevent.killall(self.greenlets)
        self.client.close()

    def status(self):
        return "ok" if self.up else "down"

    def _lost(self, exc):
        if self.up:
            log.warning("redis broker lost: %s", exc)
        self.up = False

    def _call(self, fallback, script, keys, args):
        """A script's result, or fallback() while Redis is away."""
        if self.up:
            try:
                return self.scripts[script](keys=keys, args=args)
            except redis.RedisError as exc:
                self._lost(exc)
        return fallback()

    # -- events ---------------------------------------------------------------
    def publish(self, event):
        if self.up:
            self.outbox.put(json.dumps(dict(event, origin=self.process_id)))
        else:
            self.dropped = True

    def _publisher(self):
        """One greenlet publishes, in order, in pipelined batches: the hub never waits on Redis."""
        while True:
            self.outbox.peek()
            self._publish_queued()

    def _publish_queued(self):
        batch = []
        while len(batch) < PUBLISH_BATCH and not self.outbox.empty():
            batch.append(self.outbox.get_nowait())
        if not batch:
            return
        if not self.up:
            self.dropped = True
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for payload in batch:
                pipe.publish(self.channel, payload)
            pipe.execute()
        except redis.RedisError as exc:
            self._lost(exc)
            self.dropped = True

    def _listen(self):
        """Deliver other processes' events; reconnect with backoff, forever."""
        delay = BACKOFF[0]
        while True:
            attempt = time.monotonic()
            try:
                self._subscribed_loop()
            except Exception as exc:  # refused, timed out, cut, or a bug: never die of it
                self._lost(exc)
            # Subscribed during this attempt: retry soon; else wait longer each time.
            delay = BACKOFF[0] if self.connected_at >= attempt else min(delay * 2, BACKOFF[1])
            gevent.sleep(delay)

    def _subscribed_loop(self):
        """Subscribe, catch up, deliver until the connection or any other call fails."""
        pubsub = self.client.pubsub()
        try:
            pubsub.subscribe(self.channel)
            self._confirmed(pubsub)
            self._back_up()
            while self.up:
                message = pubsub.get_message(timeout=HEARTBEAT)
                if message is None:
                    pubsub.ping()  # a silent channel or a dead server: find out which
                elif message["type"] == "message":
                    self._deliver(message["data"])
        finally:
            pubsub.close()

    @staticmethod
    def _confirmed(pubsub, timeout=5.0):
        """Wait for Redis to confirm the subscription: only then can nothing slip past."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "subscribe":
                return
        raise redis.TimeoutError("no confirmation of the subscription")

    def _back_up(self):
        """Subscribed (again): restore presence, catch up from the database, let others catch up."""
        if not self.up:
            log.info("redis broker connected")
        self.up = True
        self.connected_at = time.monotonic()
        self._refresh()
        if self.dropped:
            self.dropped = False
            self.publish({"kind": "resync"})
        self._dispatch({"kind": "resync"})

    def _deliver(self, data):
        try:
            message = json.loads(data)
        except ValueError:
            log.error("broker event is not JSON: %.200r", data)
            return
        if message.pop("origin", None) != self.process_id:
            self._dispatch(message)

    def _dispatch(self, message):
        """Hand an event to the hub; its failure (the database away) is not the broker's."""
        try:
            self.on_event(message)
        except Exception:
            log.exception("broker event %r not handled", message.get("kind"))

    # -- presence -------------------------------------------------------------
    def _presence_keys(self, room_id, username):
        return (PREFIX + "presence", "%spresence:%d:%s" % (PREFIX, room_id, username),
                "%sonline:%d" % (PREFIX, room_id))

    def _entry(self, room_id, username):
        return "%d\n%s\n%s" % (room_id, username, self.process_id)

    def presence_join(self, room_id, username):
        first_here = super().presence_join(room_id, username)
        return bool(self._call(lambda: first_here, "join",
                               self._presence_keys(room_id, username),
                               (self._entry(room_id, username), self.process_id, username,
                                PRESENCE_TTL)))

    def presence_leave(self, room_id, username):
        last_here = super().presence_leave(room_id, username)
        if not last_here:
            return False
        return bool(self._call(lambda: last_here, "leave",
                               self._presence_keys(room_id, username),
                               (self._entry(room_id, username), self.process_id, username)))

    def online(self, room_id):
        """Who is online anywhere; this process's own users also while Redis is away."""
        here = super().online(room_id)
        if self.up:
            try:
                members = self.client.smembers("%sonline:%d" % (PREFIX, room_id))
                return sorted({name.decode() for name in members}.union(here))
            except redis.RedisError as exc:
                self._lost(exc)
        return here

    def _heartbeat(self):
        while True:
            gevent.sleep(HEARTBEAT)
            if self.up:
                try:
                    self._refresh()
                    self._reap()
                except redis.RedisError as exc:
                    self._lost(exc)

    def _refresh(self):
        """Extend this process's entries (re-adding them after a Redis restart)."""
        pipe = self.client.pipeline(transaction=False)
        for room_id, users in list(self._presence.items()):
            for username in users:
                self.scripts["join"](keys=self._presence_keys(room_id, username),
                                     args=(self._entry(room_id, username), self.process_id,
                                           username, PRESENCE_TTL), client=pipe)
        pipe.execute()

    def _reap(self):
        """End the presence of users whose processes stopped refreshing it."""
        ended = self.scripts["reap"](keys=(PREFIX + "presence",), args=(PREFIX, 1000))
        for room, username in zip(ended[::2], ended[1::2]):
            event = {"kind": "presence-expired", "room": int(room), "username": username.decode()}
            log.info("presence of %s in room %s expired", event["username"], room)
            self._dispatch(event)
            self.publish(event)

    # -- counters -------------------------------------------------------------
    def count_recent(self, key, window):
        return self._call(lambda: super(RedisBroker, self).count_recent(key, window), "count",
                          (PREFIX + key,), (int(window * 1000),))

    def hit(self, key, window):
        self._call(lambda: super(RedisBroker, self).hit(key, window), "hit",
                   (PREFIX + key,), (uuid.uuid4().hex, max(1, int(window) + 1)))

    def oldest_hit_age(self, key):
        age_ms = self._call(lambda: super(RedisBroker, self).oldest_hit_age(key) * 1000,
                            "oldest", (PREFIX + key,), ())
        return age_ms / 1000.0

    def take_token(self, key, per_minute, burst):
        return bool(self._call(
            lambda: super(RedisBroker, self).take_token(key, per_minute, burst), "take",
            (PREFIX + key,), (per_minute, burst)))
