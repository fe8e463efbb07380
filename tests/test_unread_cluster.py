"""Read markers across processes: two chatd on one PostgreSQL and a private Redis.

A user's two devices on different processes agree: a marker moved on one is
heard (read-marker) by the other and counted the same by both."""
import pytest

import services
from helpers import Chatd, Client
from test_unread import item, read, send

ENV = {"CHATD_LIMITS_MESSAGES_PER_MINUTE": "100000", "CHATD_LIMITS_MESSAGE_BURST": "10000"}


@pytest.fixture(scope="module")
def pair_of_processes(tmp_path_factory):
    redis = services.RedisServer(tmp_path_factory.mktemp("redis")).start()
    procs = []
    try:
        with services.postgres_database() as url:
            procs = [Chatd(url, broker=redis.url, env=ENV).start() for _ in range(2)]
            yield procs
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()


def on(server, user):
    """The same user, logged in on another process (another device)."""
    device = Client(server, username=user.username, register=False)
    device.login()
    return device


def test_two_devices_on_two_processes_agree(pair_of_processes):
    first, second = pair_of_processes
    alice, bob = Client(first), Client(first)
    room = alice.create_room()
    assert bob.post("/api/join-room", {"roomId": room}).status_code == 200
    bob_elsewhere = on(second, bob)
    phone = bob_elsewhere.ws()  # joined to no room
    phone.send(action="auth", token=bob_elsewhere.token)
    phone.expect("authenticated")
    laptop = bob.ws(join=room)
    sock = alice.ws(join=room)
    ids = [send(sock, room, "cross %d" % n) for n in range(4)]
    assert item(bob, room)["unread"] == item(bob_elsewhere, room)["unread"] == 4

    laptop.send(action="read", roomId=room, upTo=ids[1])
    assert phone.expect("read-marker", roomId=room)["upTo"] == ids[1]
    assert laptop.expect("read-marker", roomId=room)["upTo"] == ids[1]
    assert item(bob_elsewhere, room)["unread"] == item(bob, room)["unread"] == 2

    assert read(bob_elsewhere, room, ids[3]).json()["readUpTo"] == ids[3]
    assert laptop.expect("read-marker", roomId=room)["upTo"] == ids[3]
    assert phone.expect("read-marker", roomId=room)["upTo"] == ids[3]
    assert item(bob, room)["unread"] == item(bob_elsewhere, room)["unread"] == 0
    for s in (phone, laptop, sock):
        s.close()
