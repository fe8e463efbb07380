"""The hub's per-room sequencer and gap repair, with a fake database and fake sessions.

The hub's timers (the repair grace, the catch-up on a new room) are
recorded instead of scheduled, and each test runs them when it means
"the grace has passed": deterministic, no sleeps.
"""
import json

import pytest

from chatd import events, hub as hub_module
from chatd.storage.messages import MessageRow

ROOM = 7


def row(seq):
    return MessageRow(ROOM, seq, "alice", "message %d" % seq, 1733832000000 + seq, None)


class FakeDatabase:
    """Stored messages of ROOM; fetch_events/room_last_seq as ops gives them to the hub."""

    def __init__(self, seqs=()):
        self.seqs = set(seqs)
        self.fetches = []

    def fetch_events(self, room_pk, after, upto):
        self.fetches.append((after, upto))
        return [events.new_message(row(seq)) for seq in sorted(self.seqs)
                if seq > after and (upto is None or seq <= upto)]

    def room_last_seq(self, room_pk):
        return max(self.seqs, default=0)


class FakeBroker:
    def __init__(self):
        self.published = []
        self.started = False

    def start(self, on_event):
        self.started = True

    def publish(self, event):
        self.published.append(event)

    def presence_join(self, room_pk, username):
        return True

    def presence_leave(self, room_pk, username):
        return True

    def online(self, room_pk):
        return []


class FakeSession:
    def __init__(self, username="bob"):
        self.username = username
        self.received = []  # (seq, decoded event)

    def push(self, room_pk, seq, frame):
        header = 2 if frame[1] < 126 else 4  # frames here are under 64 KiB
        self.received.append((seq, json.loads(frame[header:])))

    def seqs(self):
        return [seq for seq, event in self.received if event["action"] == "new-message"]


class Timers:
    """Stands in for the gevent module inside chatd.hub: records what would be spawned."""

    def __init__(self):
        self.pending = []

    def spawn(self, fn, *args):
        self.pending.append((fn, args))

    def spawn_later(self, _seconds, fn, *args):
        self.pending.append((fn, args))

    def run(self):
        while self.pending:
            fn, args = self.pending.pop(0)
            fn(*args)


@pytest.fixture
def timers(monkeypatch):
    fake = Timers()
    monkeypatch.setattr(hub_module, "gevent", fake)
    return fake


def live_room(timers, stored=()):
    """A hub with one session in ROOM, after its catch-up has run."""
    database = FakeDatabase(stored)
    hub = hub_module.Hub(FakeBroker(), database.fetch_events, database.room_last_seq)
    session = FakeSession()
    hub.subscribe(session, ROOM)
    timers.run()
    return hub, session, database


def test_the_hub_does_not_start_the_broker():
    broker = FakeBroker()
    hub_module.Hub(broker, FakeDatabase().fetch_events, FakeDatabase().room_last_seq)
    assert not broker.started  # the wiring starts it, with hub.on_remote


def test_messages_in_order_are_delivered_at_once_and_published(timers):
    hub, session, _ = live_room(timers)
    for seq in (1, 2, 3):
        hub.message_stored(row(seq))
    assert session.seqs() == [1, 2, 3]
    assert [e["event"]["id"] for e in hub.broker.published if e["kind"] == "event"] == [1, 2, 3]
    assert session.received[0][1] == events.new_message(row(1))


def test_an_early_id_waits_then_the_gap_is_read_from_the_database(timers):
    hub, session, database = live_room(timers)
    database.seqs.update({1, 2, 3})
    hub.on_remote({"kind": "event", "room": ROOM, "event": events.new_message(row(3))})
    assert session.seqs() == []  # 3 waits for 1 and 2
    timers.run()  # the grace has passed: repair
    assert session.seqs() == [1, 2, 3]
    assert database.fetches[-1] == (0, 2)


def test_an_id_that_fills_the_gap_in_time_needs_no_database(timers):
    hub, session, database = live_room(timers)
    hub.on_remote({"kind": "event", "room": ROOM, "event": events.new_message(row(2))})
    hub.message_stored(row(1))
    assert session.seqs() == [1, 2]
    fetches = len(database.fetches)
    timers.run()
    assert len(database.fetches) == fetches


def test_duplicates_are_dropped(timers):
    hub, session, _ = live_room(timers)
    hub.message_stored(row(1))
    hub.on_remote({"kind": "event", "room": ROOM, "event": events.new_message(row(1))})
    hub.message_stored(row(1))
    hub.message_stored(row(2))
    hub.on_remote({"kind": "event", "room": ROOM, "event": events.new_message(row(2))})
    assert session.seqs() == [1, 2]


def test_a_purged_gap_is_skipped(timers):
    hub, session, database = live_room(timers)
    hub.on_remote({"kind": "event", "room": ROOM, "event": events.new_message(row(5))})
    timers.run()  # 1-4 are not in the database: purged
    assert session.seqs() == [5]
    hub.message_stored(row(6))
    assert session.seqs() == [5, 6]


def test_a_new_room_starts_after_what_is_stored(timers):
    hub, session, _ = live_room(timers, stored={1, 2})
    hub.message_stored(row(2))  # already stored before the subscription: not live news
    hub.message_stored(row(3))
    assert session.seqs() == [3]
