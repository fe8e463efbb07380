"""chatd_client's own logic, no chatd: backoff, since bookkeeping, the outbox,
error mapping, and the request shapes of the endpoints (against a fake HTTP
server in this process, for endpoints today's chatd may not have yet)."""
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chatd_client import Client, errors
from chatd_client.live import Backoff, LiveSession, Positions, sequence_number


# -- backoff -------------------------------------------------------------------
def test_backoff_doubles_with_jitter_up_to_the_cap_and_resets():
    low = Backoff(initial=0.5, maximum=4, rng=lambda: 0.0)
    high = Backoff(initial=0.5, maximum=4, rng=lambda: 1.0)
    assert [low.next_delay() for _ in range(6)] == [0.25, 0.5, 1, 2, 2, 2]
    assert [high.next_delay() for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]
    high.reset()
    assert high.next_delay() == 0.5


def test_backoff_jitter_spreads_clients():
    delays = {Backoff(initial=1).next_delay() for _ in range(50)}
    assert len(delays) > 1 and all(0.5 <= d <= 1 for d in delays)


# -- since bookkeeping -----------------------------------------------------------
def message(room, id_, **fields):
    return dict(action="new-message", roomId=room, id=id_, sender="bob", message="m%d" % id_,
                **fields)


def test_positions_drop_what_was_delivered_and_keep_the_largest():
    positions = Positions({"room_1": 5, "room_2": 0})
    assert not positions.accept(message("room_1", 5))
    assert not positions.accept(message("room_1", 3))
    assert positions.accept(message("room_1", 6))
    assert not positions.accept(message("room_1", 6))
    assert positions.accept(message("room_2", 1))
    assert positions.last == {"room_1": 6, "room_2": 1}


def test_seq_is_the_position_when_events_carry_one():
    positions = Positions({"room_1": 10})
    edit = {"action": "message-edited", "roomId": "room_1", "seq": 11, "id": 4}
    assert sequence_number(edit) == 11 and positions.accept(edit)
    assert not positions.accept(dict(edit))  # the same edit replayed
    assert sequence_number(message("room_1", 12, seq=12)) == 12


def test_unsequenced_events_always_pass():
    positions = Positions({"room_1": 10})
    for event in ({"action": "user-joined", "roomId": "room_1", "username": "bob"},
                  {"action": "joined", "roomId": "room_1"},
                  {"action": "read-marker", "roomId": "room_1", "upTo": 3},
                  message("room_9", 1)):  # a room the session does not follow
        assert positions.accept(event)
    assert positions.last == {"room_1": 10}


# -- the session's bookkeeping, fed events by hand ---------------------------------
def session(**since):
    live = LiveSession(Client("http://127.0.0.1:9"), rooms=list(since), since=since)
    return live


def test_own_message_acknowledges_even_when_already_delivered():
    live = session(room_1=5)
    cid = live.send("room_1", "hello")  # not connected: stays in the outbox
    assert live.unacknowledged == [cid]
    # The server's answer to a resend of a message we had yielded: dropped, but acknowledged.
    assert live._accept(message("room_1", 4, clientMsgId=cid)) is None
    assert live.unacknowledged == []


def test_refused_send_leaves_the_outbox_named_in_its_error():
    live = session(room_1=0)
    first, second = live.send("room_1", "a"), live.send("room_1", "b" * 5000)
    for cid in (first, second):
        live.outbox.in_flight.sent(cid)  # as if written on a connection
    assert live._accept(message("room_1", 1, clientMsgId=first))["message"] == "m1"
    error = live._accept({"action": "error", "code": "payload_too_large", "message": "too long",
                          "ref": "send-message"})
    assert error["clientMsgId"] == second and error["roomId"] == "room_1"
    assert live.unacknowledged == []


def test_refused_join_names_its_room_and_drops_it():
    live = session(room_1=0, room_2=0)
    live._joins.sent("room_1")
    live._joins.sent("room_2")
    assert live._accept({"action": "joined", "roomId": "room_1"})["roomId"] == "room_1"
    error = live._accept({"action": "error", "code": "not_found", "message": "no", "ref": "join"})
    assert error["roomId"] == "room_2"
    assert live.rooms == ["room_1"]
    with pytest.raises(ValueError):
        live.send("room_2", "hi")


def test_unauthorized_ends_the_session():
    live = session(room_1=0)
    with pytest.raises(errors.Unauthorized):
        live._accept({"action": "error", "code": "unauthorized", "message": "Session ended."})
    assert live.next_event() is None  # closed


def test_deleted_room_leaves_the_session():
    live = session(room_1=0, room_2=0)
    assert live._accept({"action": "room-deleted", "roomId": "room_2"})
    assert live.rooms == ["room_1"] and "room_2" not in live.positions.last


# -- error mapping -----------------------------------------------------------------
@pytest.mark.parametrize("status, code, cls", [
    (400, "bad_request", errors.BadRequest), (401, "unauthorized", errors.Unauthorized),
    (403, "forbidden", errors.Forbidden), (404, "not_found", errors.NotFound),
    (405, "method_not_allowed", errors.MethodNotAllowed), (409, "conflict", errors.Conflict),
    (413, "payload_too_large", errors.PayloadTooLarge),
    (415, "unsupported_media_type", errors.UnsupportedMediaType),
    (429, "rate_limited", errors.RateLimited), (500, "internal", errors.Internal),
    (503, "unavailable", errors.Unavailable),
])
def test_http_errors_map_to_their_class(status, code, cls):
    exc = errors.from_http(status, {"status": "error", "error": code, "message": "Why."})
    assert type(exc) is cls and isinstance(exc, errors.ChatError)
    assert (exc.status, exc.code, exc.message) == (status, code, "Why.")


def test_unknown_codes_and_bodies_fall_back_on_the_status():
    assert type(errors.from_http(403, {"error": "new_code", "message": "x"})) is errors.Forbidden
    assert errors.from_http(403, {"error": "new_code"}).code == "new_code"
    proxy = errors.from_http(502, None)
    assert type(proxy) is errors.Unavailable and proxy.message == "HTTP 502"
    assert type(errors.from_http(418, "teapot")) is errors.ChatError


def test_retry_after_from_the_header_or_the_event():
    assert errors.from_http(429, {"error": "rate_limited"}, "7").retry_after == 7
    event = {"action": "error", "code": "rate_limited", "message": "slow", "retryAfter": 2}
    exc = errors.from_event(event)
    assert type(exc) is errors.RateLimited and exc.retry_after == 2
    assert type(errors.from_event({"code": "not_joined"})) is errors.NotJoined


def test_no_server_is_unreachable_in_one_line():
    with pytest.raises(errors.Unreachable) as info:
        Client("http://127.0.0.1:9", "t").rooms()
    assert "Connection refused" in info.value.message and "\n" not in info.value.message


# -- request shapes, against a fake server -------------------------------------------
class FakeChatd:
    """Records each request; answers with the next scripted (status, body, headers)."""

    def __init__(self):
        self.requests, self.answers = [], []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fake.requests.append({"method": self.command, "path": self.path,
                                      "auth": self.headers.get("Authorization"),
                                      "type": self.headers.get("Content-Type"),
                                      "body": json.loads(body) if body else None})
                status, answer, headers = (fake.answers.pop(0) if fake.answers
                                           else (200, {"status": "success"}, {}))
                data = json.dumps(answer).encode()
                self.send_response(status)
                for key, value in dict(headers, **{"Content-Type": "application/json"}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.httpd.server_port


@pytest.fixture
def fake():
    server = FakeChatd()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


def test_message_endpoints_send_the_contract_shapes(fake):
    client = Client(fake.url, "tok")
    fake.answers.append((201, {"action": "new-message", "id": 7}, {}))
    assert client.send("room_1", "hi", reply_to=3)["id"] == 7
    client.send("room_1", "again", client_msg_id="c-1")
    client.edit("room_1", 7, "fixed")
    client.delete("room_1", 7)
    client.react("room_1", 7, "👍")
    client.unreact("room_1", 7, ":shipit:")
    sent = [(r["method"], r["path"], r["body"]) for r in fake.requests]
    first_cid = sent[0][2].pop("clientMsgId")
    assert isinstance(first_cid, str) and 1 <= len(first_cid) <= 64
    assert sent == [
        ("POST", "/api/rooms/room_1/messages", {"message": "hi", "replyTo": 3}),
        ("POST", "/api/rooms/room_1/messages", {"message": "again", "clientMsgId": "c-1"}),
        ("PATCH", "/api/rooms/room_1/messages/7", {"message": "fixed"}),
        ("DELETE", "/api/rooms/room_1/messages/7", None),
        ("PUT", "/api/rooms/room_1/messages/7/reactions/%F0%9F%91%8D", None),
        ("DELETE", "/api/rooms/room_1/messages/7/reactions/%3Ashipit%3A", None),
    ]
    assert {r["auth"] for r in fake.requests} == {"Bearer tok"}
    assert fake.requests[0]["type"] == "application/json"


def test_query_endpoints_send_only_what_is_given(fake):
    client = Client(fake.url, "tok")
    client.events("room_1", after=4, limit=10, wait=0)
    client.events("room_1")
    client.search("hel wor", room_id="room_1", limit=5, cursor="abc")
    client.search("x")
    client.history("room_1", limit=2, before=9)
    assert [r["path"] for r in fake.requests] == [
        "/api/rooms/room_1/events?after=4&limit=10&wait=0", "/api/rooms/room_1/events",
        "/api/search?q=hel+wor&roomId=room_1&limit=5&cursor=abc", "/api/search?q=x",
        "/api/chat-history/room_1?limit=2&before=9"]


def test_rooms_tokens_and_direct_shapes(fake):
    client = Client(fake.url, "tok")
    client.create_room("ops", kind="private", topic="on call")
    client.create_room("lobby")
    client.direct("bob")
    client.create_token("ci", expires_in_days=90)
    client.tokens()
    client.delete_token(12)
    client.mark_read("room_1", 40)
    assert [(r["method"], r["path"], r["body"]) for r in fake.requests] == [
        ("POST", "/api/create-room", {"roomName": "ops", "kind": "private", "topic": "on call"}),
        ("POST", "/api/create-room", {"roomName": "lobby"}),
        ("POST", "/api/direct", {"username": "bob"}),
        ("POST", "/api/tokens", {"name": "ci", "expiresInDays": 90}),
        ("GET", "/api/tokens", None),
        ("DELETE", "/api/tokens/12", None),
        ("POST", "/api/rooms/room_1/read", {"upTo": 40}),
    ]


def test_rate_limited_send_is_retried_only_when_asked_with_the_same_client_msg_id(fake):
    limited = (429, {"status": "error", "error": "rate_limited", "message": "Slow down."},
               {"Retry-After": "0"})
    fake.answers += [limited]
    with pytest.raises(errors.RateLimited) as info:
        Client(fake.url, "tok").send("room_1", "hi")
    assert info.value.retry_after == 0 and info.value.status == 429
    fake.requests.clear()
    fake.answers += [limited, limited, (201, {"id": 1}, {})]
    assert Client(fake.url, "tok", retry_rate_limited=2).send("room_1", "hi") == {"id": 1}
    assert len({r["body"]["clientMsgId"] for r in fake.requests}) == 1
    assert len(fake.requests) == 3


def test_error_body_becomes_the_typed_error(fake):
    fake.answers.append((404, {"status": "error", "error": "not_found",
                               "message": "No such room."}, {}))
    with pytest.raises(errors.NotFound) as info:
        Client(fake.url, "tok").events("room_nope", after=0)
    assert info.value.message == "No such room."


def test_from_env_picks_token_or_login(fake):
    client = Client.from_env({"CHATD_URL": fake.url, "CHATD_TOKEN": "abc"})
    assert client.token == "abc"
    fake.answers.append((200, {"status": "success", "token": "t2"}, {}))
    client = Client.from_env({"CHATD_URL": fake.url, "CHATD_USERNAME": "ci",
                              "CHATD_PASSWORD": "pw"})
    assert client.token == "t2" and fake.requests[-1]["body"] == {"username": "ci",
                                                                 "password": "pw"}
    with pytest.raises(ValueError):
        Client.from_env({"CHATD_URL": fake.url})


def test_importing_the_client_loads_neither_gevent_nor_chatd():
    code = ("import sys, chatd_client, chatd_client.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'chatd')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
