"""A live session across a chatd restart and a kill -9: nothing missed, nothing
twice, every message sent through it stored once."""
import pytest

from chatd_client import Backoff, Client
from helpers import GENEROUS
from helpers import Chatd, Client as User, unique, wait_for


@pytest.fixture
def chatd(database_url):
    server = Chatd(database_url, env=GENEROUS).start()
    yield server
    server.kill()


def alice_session(chatd, **since):
    """A user, a room of theirs, and a live session of theirs on it (fast backoff)."""
    user = User(chatd)
    room = user.create_room(unique("room "))
    client = Client(chatd.url, user.token)
    session = client.live(rooms=[room], backoff=Backoff(initial=0.05, maximum=0.5))
    assert session.next_event(10)["action"] == "joined"
    return client, room, session


def messages(session, count, timeout=20):
    """The next `count` new-message events the session yields (waiting through reconnections)."""
    got = []
    while len(got) < count:
        event = session.next_event(timeout)
        if event["action"] == "new-message":
            got.append(event)
    return got


def assert_quiet(session):
    """Nothing more comes: no duplicate of anything already yielded."""
    with pytest.raises(TimeoutError):
        while True:
            assert session.next_event(0.5)["action"] != "new-message"


def test_restart_mid_session_delivers_what_was_sent_meanwhile_once_in_order(chatd):
    client, room, session = alice_session(chatd)
    bob = User(chatd)
    sock = bob.ws(join=room)
    for i in range(3):
        sock.say(room, "before %d" % i)
    assert [e["message"] for e in messages(session, 3)] == ["before %d" % i for i in range(3)]
    sock.close()

    chatd.restart()  # same port and database; the session has not noticed yet
    sock = bob.ws(join=room)
    for i in range(5):
        sock.say(room, "while away %d" % i)
        sock.expect("new-message", message="while away %d" % i)
    got = messages(session, 5)
    sock.say(room, "after")
    got += messages(session, 1)

    assert [e["message"] for e in got] == ["while away %d" % i for i in range(5)] + ["after"]
    assert session.connections == 2
    assert_quiet(session)
    session.close()


def test_unacknowledged_sends_are_resent_after_kill_9_and_stored_once(chatd):
    client, room, session = alice_session(chatd)
    texts = ["burst %d" % i for i in range(30)]
    for text in texts:
        session.send(room, text)
    # Kill while the burst is in flight: some stored and acknowledged, some stored with
    # the acknowledgement lost, some never read by chatd.
    assert wait_for(lambda: client.history(room, limit=1)["messages"], 10)
    chatd.kill()
    texts += ["while down %d" % i for i in range(5)]
    for text in texts[30:]:
        session.send(room, text)
    chatd.start()

    got = []
    while session.unacknowledged:
        event = session.next_event(20)
        if event["action"] == "new-message":
            got.append(event["message"])
    assert [m["message"] for m in client.history(room, limit=100)["messages"]] == texts
    assert got == texts  # each once, whichever way its acknowledgement came
    assert_quiet(session)
    session.close()


def test_a_lost_acknowledgement_is_resent_and_stored_once(chatd):
    client, room, session = alice_session(chatd)
    session.send(room, "once")
    assert wait_for(lambda: client.history(room)["messages"], 10)
    session._ws.sock.close()  # the link drops with the acknowledgement still unread

    assert [e["message"] for e in messages(session, 1)] == ["once"]
    assert session.unacknowledged == [] and session.connections == 2
    assert [m["message"] for m in client.history(room)["messages"]] == ["once"]
    assert_quiet(session)
    session.close()
