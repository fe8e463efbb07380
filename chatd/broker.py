"""What several chatd processes must share: events, presence and counters.

`MemoryBroker` is the embedded default (one process). A Redis implementation
subclasses it and replaces only the methods that must cross processes, as
python-socketio's pubsub manager does.
"""
import collections
import time

SWEEP_EVERY = 60.0  # seconds between sweeps of counters that no longer count


class MemoryBroker:
    """In-process broker: nothing to publish to, counts kept in dicts."""

    name = "memory"

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._presence = collections.defaultdict(collections.Counter)  # room -> user -> n
        self._hits = collections.defaultdict(collections.deque)  # key -> times
        self._hits_until = {}  # key -> when its last hit leaves its window
        self._buckets = {}  # key -> (tokens, updated, full again at)
        self._next_sweep = clock() + SWEEP_EVERY
        self.on_event = None

    # -- lifecycle ------------------------------------------------------------
    def start(self, on_event):
        """Deliver events published by other processes to on_event(dict)."""
        self.on_event = on_event

    def stop(self):
        pass

    def status(self):
        return "ok"

    # -- events ---------------------------------------------------------------
    def publish(self, event):
        """Send an event dict to the other processes (none here)."""

    # -- presence -------------------------------------------------------------
    def presence_join(self, room_id, username):
        """Count one more of this process's user-in-room; True if the first anywhere."""
        users = self._presence[room_id]
        users[username] += 1
        return users[username] == 1

    def presence_leave(self, room_id, username):
        """Count one less; True if that was the user's last anywhere."""
        users = self._presence.get(room_id)
        if not users or users[username] <= 0:
            return False
        users[username] -= 1
        if users[username] == 0:
            del users[username]
            if not users:
                del self._presence[room_id]
            return True
        return False

    def online(self, room_id):
        return sorted(self._presence.get(room_id, ()))

    # -- counters -------------------------------------------------------------
    # Keys are many and short-lived (one per username tried, per address, per
    # user): a sweep now and then forgets those whose hits all left their
    # window and the buckets that are full again, so memory follows recent
    # activity, not every key ever seen.
    def count_recent(self, key, window):
        """How many hits `key` had in the last `window` seconds."""
        hits = self._hits.get(key)
        if not hits:
            return 0
        cutoff = self._clock() - window
        while hits and hits[0] < cutoff:
            hits.popleft()
        if not hits:
            self._forget(key)
        return len(hits)

    def hit(self, key, window):
        """Record a hit on `key`, counted by count_recent over `window` seconds."""
        now = self._clock()
        self._hits[key].append(now)
        self._hits_until[key] = now + window
        self._sweep(now)

    def oldest_hit_age(self, key):
        hits = self._hits.get(key)
        return self._clock() - hits[0] if hits else 0.0

    def take_token(self, key, per_minute, burst):
        """Token bucket: True if one message may pass now."""
        now = self._clock()
        tokens, updated, _ = self._buckets.get(key, (float(burst), now, now))
        tokens = min(float(burst), tokens + (now - updated) * per_minute / 60.0)
        passed = tokens >= 1.0
        if passed:
            tokens -= 1.0
        full_at = now + (burst - tokens) * 60.0 / max(per_minute, 1e-9)
        self._buckets[key] = (tokens, now, full_at)
        self._sweep(now)
        return passed

    def _forget(self, key):
        self._hits.pop(key, None)
        self._hits_until.pop(key, None)

    def _sweep(self, now):
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY
        for key in [k for k, until in self._hits_until.items() if until <= now]:
            self._forget(key)
        for key in [k for k, (_, _, full_at) in self._buckets.items() if full_at <= now]:
            del self._buckets[key]

