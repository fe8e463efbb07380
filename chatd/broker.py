"""What several chatd processes must share: events, presence and counters.

`MemoryBroker` is the embedded default (one process). A Redis implementation
subclasses it and replaces only the methods that must cross processes, as
python-socketio's pubsub manager does.
"""
import collections
import time


class MemoryBroker:
    """In-process broker: nothing to publish to, counts kept in dicts."""

    name = "memory"

    def __init__(self):
        self._presence = collections.defaultdict(collections.Counter)  # room -> user -> n
        self._hits = collections.defaultdict(collections.deque)  # key -> times
        self._buckets = {}  # key -> (tokens, updated)
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
    def count_recent(self, key, window):
        """How many hits `key` had in the last `window` seconds."""
        hits = self._hits.get(key)
        if not hits:
            return 0
        cutoff = time.monotonic() - window
        while hits and hits[0] < cutoff:
            hits.popleft()
        if not hits:
            del self._hits[key]
        return len(hits)

    def hit(self, key):
        self._hits[key].append(time.monotonic())

    def oldest_hit_age(self, key):
        hits = self._hits.get(key)
        return time.monotonic() - hits[0] if hits else 0.0

    def take_token(self, key, per_minute, burst):
        """Token bucket: True if one message may pass now."""
        now = time.monotonic()
        tokens, updated = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - updated) * per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True

