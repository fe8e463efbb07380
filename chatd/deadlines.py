"""A timing wheel: things to look at when their time comes, not on every tick.

The sweeper (ws.Sweeper) keeps each connection here at its next deadline
(authentication, ping, silence, an unanswered close). Looking at every
connection every second was half of an idle chatd's CPU at 19,000
connections (bench/hold.py with py-spy on chatd); with the wheel each is
looked at about once per ping interval.
"""


class Deadlines:
    """Items scheduled at times, handed out by due(now) once that time has passed.

    Time is cut into ticks of `tick` seconds: an item comes out of the first
    due() called in a later tick than its time's, so never early and at most
    one tick late (plus however late due() is called). An item is in one
    place at most: scheduling it again moves it, forget() takes it out.
    Items are compared by identity and hash, like dict keys.
    """

    def __init__(self, tick, now):
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.tick = tick
        self._slots = {}  # tick number -> the set of items due after it
        self._where = {}  # item -> its tick number
        self._next = int(now // tick)  # the first tick number not yet handed out

    def __len__(self):
        return len(self._where)

    @property
    def next_tick(self):
        """When the next tick starts: the earliest time due() can hand anything out."""
        return self._next * self.tick

    def schedule(self, item, when):
        """Hand `item` out at the first due() after `when` (a time already past: the next)."""
        slot = max(int(when // self.tick) + 1, self._next)
        old = self._where.get(item)
        if old == slot:
            return
        if old is not None:
            self._slots[old].discard(item)
        self._where[item] = slot
        items = self._slots.get(slot)
        if items is None:
            items = self._slots[slot] = set()
        items.add(item)

    def forget(self, item):
        slot = self._where.pop(item, None)
        if slot is not None:
            self._slots[slot].discard(item)

    def due(self, now):
        """The items whose time has passed, taken out (in no particular order)."""
        out = []
        last = int(now // self.tick)
        while self._next <= last:
            items = self._slots.pop(self._next, None)
            self._next += 1
            if items:
                for item in items:
                    del self._where[item]
                out.extend(items)
        return out
