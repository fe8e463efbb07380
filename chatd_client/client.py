"""The HTTP half of the client: one method per endpoint of the contract.

Every method returns the server's JSON answer as plain dicts and lists and
raises a ChatError subclass (chatd_client.errors) on an error answer or on
no answer at all (Unreachable). A Client holds a requests.Session: share it
between threads only as requests allows (one Client per thread is safest).
"""
import os
import time
from urllib.parse import quote

import requests

from . import errors
from .live import LiveSession, new_client_msg_id

DEFAULT_TIMEOUT = 30.0


class Client:
    """A user of one chatd, by its base URL (`http://host:port`) and token.

    `retry_rate_limited` (default 0: off) is how many times a message
    operation (send, edit, delete, react, unreact) answered `429` is tried
    again after sleeping its `Retry-After`; sends keep their clientMsgId, so
    a retry never stores a message twice.
    """

    def __init__(self, url, token=None, timeout=DEFAULT_TIMEOUT, retry_rate_limited=0):
        self.url = url.rstrip("/")
        self.token = token
        self.username = None  # known after login()
        self.timeout = timeout
        self.retry_rate_limited = retry_rate_limited
        self.http = requests.Session()

    @classmethod
    def login(cls, url, username, password, **options):
        """A Client holding a fresh login token for username/password."""
        client = cls(url, **options)
        answer = client._call("POST", "/api/login", {"username": username, "password": password})
        client.token = answer["token"]
        client.username = answer.get("username", username)
        return client

    @classmethod
    def from_env(cls, environ=None, **options):
        """A Client from CHATD_URL and CHATD_TOKEN, or CHATD_USERNAME and CHATD_PASSWORD."""
        environ = os.environ if environ is None else environ
        url = environ.get("CHATD_URL")
        if not url:
            raise ValueError("CHATD_URL is not set")
        if environ.get("CHATD_TOKEN"):
            return cls(url, environ["CHATD_TOKEN"], **options)
        if environ.get("CHATD_USERNAME") and "CHATD_PASSWORD" in environ:
            return cls.login(url, environ["CHATD_USERNAME"], environ["CHATD_PASSWORD"], **options)
        raise ValueError("set CHATD_TOKEN, or CHATD_USERNAME and CHATD_PASSWORD")

    @property
    def ws_url(self):
        """The WebSocket endpoint that goes with the base URL."""
        scheme, rest = self.url.split("://", 1)
        return "%s://%s/chat" % ("wss" if scheme == "https" else "ws", rest)

    # -- accounts --------------------------------------------------------------
    def register(self, username, password):
        return self._call("POST", "/api/register", {"username": username, "password": password})

    def logout(self):
        return self._call("POST", "/api/logout")

    def me(self):
        return self._call("GET", "/api/me")

    # -- rooms -----------------------------------------------------------------
    def rooms(self):
        return self._call("GET", "/api/rooms")

    def create_room(self, name, kind=None, topic=None):
        return self._call("POST", "/api/create-room",
                          _present(roomName=name, kind=kind, topic=topic))

    def join_room(self, room_id):
        return self._call("POST", "/api/join-room", {"roomId": room_id})

    def leave_room(self, room_id):
        return self._call("POST", "/api/leave-room", {"roomId": room_id})

    def members(self, room_id):
        return self._call("GET", "/api/rooms/%s/members" % _segment(room_id))

    def direct(self, username):
        """The direct room with `username` (made on first ask): {"roomId", "kind"…}."""
        return self._call("POST", "/api/direct", {"username": username})

    def history(self, room_id, limit=None, before=None, after=None):
        return self._call("GET", "/api/chat-history/%s" % _segment(room_id),
                          params=_present(limit=limit, before=before, after=after))

    def mark_read(self, room_id, up_to):
        return self._call("POST", "/api/rooms/%s/read" % _segment(room_id), {"upTo": up_to})

    # -- messages over HTTP (section 7) ----------------------------------------
    def send(self, room_id, text, client_msg_id=None, reply_to=None):
        """Store a message; returns its `new-message` event.

        A clientMsgId is made when not given, so every retry (ours after a
        429, or the caller's after a lost answer) stores the message once.
        """
        body = _present(message=text, clientMsgId=client_msg_id or new_client_msg_id(),
                        replyTo=reply_to)
        return self._message_call("POST", "/api/rooms/%s/messages" % _segment(room_id), body)

    def edit(self, room_id, message_id, text):
        return self._message_call("PATCH", self._message_path(room_id, message_id),
                                  {"message": text})

    def delete(self, room_id, message_id):
        return self._message_call("DELETE", self._message_path(room_id, message_id))

    def react(self, room_id, message_id, emoji):
        return self._message_call("PUT", self._reaction_path(room_id, message_id, emoji))

    def unreact(self, room_id, message_id, emoji):
        return self._message_call("DELETE", self._reaction_path(room_id, message_id, emoji))

    def events(self, room_id, after=None, limit=None, wait=None):
        """Sequenced events after `after`; `wait` seconds of long polling."""
        return self._call("GET", "/api/rooms/%s/events" % _segment(room_id),
                          params=_present(after=after, limit=limit, wait=wait),
                          timeout=self.timeout + (wait or 0))

    def search(self, q, room_id=None, limit=None, cursor=None):
        return self._call("GET", "/api/search",
                          params=_present(q=q, roomId=room_id, limit=limit, cursor=cursor))

    # -- access tokens (section 10) --------------------------------------------
    def create_token(self, name, expires_in_days=None):
        """A new access token: {"id","name","token","createdAt","expiresAt"}; shown once."""
        return self._call("POST", "/api/tokens", {"name": name, "expiresInDays": expires_in_days})

    def tokens(self):
        return self._call("GET", "/api/tokens")

    def delete_token(self, token_id):
        return self._call("DELETE", "/api/tokens/%s" % _segment(str(token_id)))

    # -- live -------------------------------------------------------------------
    def live(self, rooms=(), since=None, **options):
        """A LiveSession on the WebSocket: see chatd_client.live."""
        return LiveSession(self, rooms, since, **options)

    # -- transport ---------------------------------------------------------------
    def _message_path(self, room_id, message_id):
        return "/api/rooms/%s/messages/%d" % (_segment(room_id), message_id)

    def _reaction_path(self, room_id, message_id, emoji):
        return "%s/reactions/%s" % (self._message_path(room_id, message_id), _segment(emoji))

    def _message_call(self, method, path, body=None):
        """A call that takes from the rate bucket: retried after 429 when asked to."""
        tries = self.retry_rate_limited
        while True:
            try:
                return self._call(method, path, body)
            except errors.RateLimited as exc:
                if tries <= 0:
                    raise
                tries -= 1
                time.sleep(exc.retry_after if exc.retry_after is not None else 1.0)

    def _call(self, method, path, body=None, params=None, timeout=None):
        headers = {"Authorization": "Bearer %s" % self.token} if self.token else {}
        try:
            response = self.http.request(method, self.url + path, json=body, params=params,
                                         headers=headers, timeout=timeout or self.timeout)
        except requests.RequestException as exc:
            raise errors.Unreachable("cannot reach %s: %s" % (self.url, _reason(exc))) from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            raise errors.from_http(response.status_code, answer,
                                   response.headers.get("Retry-After"))
        return answer


def _present(**fields):
    """The fields that were given (None means absent)."""
    return {key: value for key, value in fields.items() if value is not None}


def _segment(value):
    """One path segment, percent-encoded (room ids are opaque; emoji are UTF-8)."""
    return quote(value, safe="")


def _reason(exc):
    """The innermost cause's words: 'Connection refused', not urllib3's wrapping."""
    cause = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    text = str(cause) or type(cause).__name__
    return text.rsplit("] ", 1)[-1] if "Errno" in text else text
