"""Limits on acts that store little (PROTOCOL.md section 1): room creations per
user and registrations per client address, per hour; and the in-process
counters behind every such limit forget what no longer counts."""
import pytest
import requests

import services
from admin_tool import chat_admin, ok
from chatd.broker import SWEEP_EVERY, MemoryBroker
from helpers import Chatd, Client, unique

LOW = {"CHATD_LIMITS_ROOMS_PER_HOUR": "2", "CHATD_AUTH_REGISTRATIONS_PER_HOUR": "2",
       "CHATD_SERVER_TRUSTED_PROXIES": "127.0.0.1"}


@pytest.fixture
def strict(tmp_path):
    url = "sqlite:///%s" % (tmp_path / "limits.db")
    chatd = Chatd(url, env=LOW).start()
    yield chatd, url
    chatd.stop()


def register(server, address=None, name=None):
    headers = {"X-Forwarded-For": address} if address else {}
    return requests.post(server.url + "/api/register",
                         json={"username": name or unique(), "password": "correct horse"},
                         headers=headers, timeout=30)


def assert_rate_limited(answer):
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"] == "rate_limited"
    assert 3500 < int(answer.headers["Retry-After"]) <= 3601


@pytest.mark.slow
def test_room_creations_per_user_per_hour(strict):
    chatd, url = strict
    alice, bob = Client(chatd, register=False), Client(chatd, register=False)
    for user, address in ((alice, "10.0.0.1"), (bob, "10.0.0.2")):
        assert register(chatd, address, user.username).status_code == 201
        user.login()
    alice.create_room()
    alice.create_room()
    assert_rate_limited(alice.post("/api/create-room", {"roomName": unique("third ")}))
    bob.create_room()  # the limit is alice's, not everyone's
    # The operator's rooms are not counted and not limited.
    name = unique("ops ")
    ok(chat_admin(url, "room", "create", name, "--owner", alice.username))
    assert name in [r["roomName"] for r in alice.get("/api/rooms").json()]


def test_registrations_per_address_per_hour(strict):
    chatd, url = strict
    assert register(chatd, "10.1.0.1").status_code == 201
    assert register(chatd, "10.1.0.1").status_code == 201
    assert_rate_limited(register(chatd, "10.1.0.1"))
    assert register(chatd, "10.1.0.2").status_code == 201  # another address
    # A refused name (409) is not a registration: it does not count.
    taken = unique()
    assert register(chatd, "10.1.0.3", taken).status_code == 201
    assert register(chatd, "10.1.0.3", taken).status_code == 409
    assert register(chatd, "10.1.0.3").status_code == 201
    # The operator's accounts are not limited.
    name = unique()
    ok(chat_admin(url, "user", "create", name, "--password-stdin", stdin="correct horse\n"))


@pytest.mark.slow
def test_the_limits_hold_across_processes_on_redis(tmp_path):
    redis = services.RedisServer(tmp_path).start()
    url = "sqlite:///%s" % (tmp_path / "shared.db")
    procs = []
    try:
        procs = [Chatd(url, broker=redis.url, env=LOW).start() for _ in range(2)]
        a, b = procs
        assert register(a, "10.2.0.1").status_code == 201
        assert register(b, "10.2.0.1").status_code == 201
        assert_rate_limited(register(a, "10.2.0.1"))
        assert_rate_limited(register(b, "10.2.0.1"))
        user = Client(a, register=False)
        assert register(a, "10.2.0.2", user.username).status_code == 201
        user.login()
        user.create_room()
        user.server = b
        user.create_room()
        user.server = a
        assert_rate_limited(user.post("/api/create-room", {"roomName": unique("r ")}))
    finally:
        for proc in procs:
            proc.stop()
        redis.stop()


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_memory_broker_forgets_counters_whose_hits_left_the_window():
    clock = Clock()
    broker = MemoryBroker(clock=clock)
    for n in range(1000):  # a password sprayer: one failure for each of many names
        broker.hit("login-user:victim%d" % n, 900)
    broker.hit("login-user:recent", 3600)
    broker.take_token("rate:1", 120, 30)
    assert broker.count_recent("login-user:victim1", 900) == 1
    clock.now += max(901, SWEEP_EVERY)
    broker.hit("login-user:new", 900)  # any later hit sweeps
    assert set(broker._hits) == {"login-user:recent", "login-user:new"}
    assert set(broker._buckets) == set()  # refilled to the burst: same as never seen
    assert broker.count_recent("login-user:recent", 3600) == 1
    assert broker.count_recent("login-user:victim1", 900) == 0
