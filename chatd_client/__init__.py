"""chatd_client: a Python client library and `chatctl`, for chatd's HTTP and WebSocket API.

Needs only `requests` and `websocket-client` (`pip install chatd[client]`);
imports nothing from chatd and patches nothing, so it runs in any program,
gevent or not.

    from chatd_client import Client, NotFound

    client = Client.login("http://localhost:8080", "alice", "secret")   # or Client(url, token)
    room = client.create_room("ops")["roomId"]
    client.send(room, "deploy done")            # HTTP; returns the new-message event
    for event in client.live(rooms=[room]):     # WebSocket; survives restarts
        print(event)

Client (chatd_client.client): one method per endpoint, returning the JSON
answer: register, login (a classmethod), logout, me, rooms,
create_room(name, kind, topic), join_room, leave_room, members, direct,
history(room_id, limit, before, after), mark_read, send(room_id, text,
client_msg_id, reply_to), edit, delete, react, unreact, events(room_id,
after, limit, wait), search(q, room_id, limit, cursor), create_token,
tokens, delete_token, live.

Errors (chatd_client.errors): ChatError(.status, .code, .message,
.retry_after) and one subclass per code: BadRequest, Unauthorized,
Forbidden, NotFound, MethodNotAllowed, Conflict, NotJoined, PayloadTooLarge,
UnsupportedMediaType, RateLimited, Internal, Unavailable; Unreachable when
no answer came at all. Client(url, token, retry_rate_limited=N) retries a
message operation answered 429 up to N times after its Retry-After.

Live sessions (chatd_client.live): reconnection with backoff, resume
without gap or duplicate, an outbox resent until acknowledged; see there.
"""
from .client import Client
from .errors import (BadRequest, ChatError, Conflict, Forbidden, Internal, MethodNotAllowed,
                     NotFound, NotJoined, PayloadTooLarge, RateLimited, Unauthorized,
                     Unavailable, Unreachable, UnsupportedMediaType)
from .live import Backoff, LiveSession

__all__ = ["Client", "LiveSession", "Backoff", "ChatError", "BadRequest", "Unauthorized",
           "Forbidden", "NotFound", "MethodNotAllowed", "Conflict", "NotJoined",
           "PayloadTooLarge", "UnsupportedMediaType", "RateLimited", "Internal", "Unavailable",
           "Unreachable"]
