"""The API described: an OpenAPI 3.1 document of every /api route (PROTOCOL section 10).

Each route's description lives here once, keyed by (METHOD, bottle rule) as
chatd/http_api.py declares it; `document(app)` builds the document from the
app's actual routes and refuses a route without a description, or a
description without a route, so the two cannot drift: chatd does not start
while they disagree. What every route of a kind answers is added by the
builder, not written per route: 401 for a route behind the bearer scheme,
400/413/415 for one with a JSON body, 400 for one with parameters.
"""
import re

from . import __version__

# Routes of the contract whose code is on other branches (section 7's
# messages and events, section 8's read marker, section 9's search): kept
# described, left out of the document until served. The integrator empties
# this at merge; a route served while still listed here is refused too.
PENDING = set()

# Section 1's table: the one error code of each status.
ERRORS = {
    400: ("bad_request", "Malformed JSON, path or parameter, or a missing or invalid field "
                         "(the message names it)."),
    401: ("unauthorized", "No token, a bad, expired or revoked token, or bad credentials."),
    403: ("forbidden", "Authenticated but not allowed."),
    404: ("not_found", "An unknown room (or one the caller may not see), user, token or message."),
    409: ("conflict", "The name is already taken."),
    413: ("payload_too_large", "The body is over [limits] max_body_bytes, or a message over "
                               "[limits] max_message_chars."),
    415: ("unsupported_media_type", "The body is not application/json."),
    429: ("rate_limited", "Too many requests; retry after Retry-After seconds."),
}


def _ref(name):
    return {"$ref": "#/components/schemas/" + name}


def _obj(required, optional=None, **extra):
    """An object schema: `required` and `optional` map field names to schemas."""
    schema = {"type": "object", "required": list(required),
              "properties": {**required, **(optional or {})}}
    schema.update(extra)
    return schema


def _array(items):
    return {"type": "array", "items": items}


STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
TIME = _ref("Timestamp")
ROOM_ID = _ref("RoomId")
USERNAME = _ref("Username")
KIND = {"type": "string", "enum": ["public", "private", "direct"]}
ROLE = {"type": "string", "enum": ["owner", "moderator", "member"]}
SEQ = {"type": "integer", "minimum": 1}

SCHEMAS = {
    "Error": _obj({"status": {"const": "error"}, "error": STRING, "message": STRING},
                  description="Every error from /api (PROTOCOL section 1)."),
    "Success": _obj({"status": {"const": "success"}}),
    "Timestamp": {"type": "string", "format": "date-time",
                  "description": "RFC 3339 in UTC ending in Z.",
                  "examples": ["2024-12-10T12:00:00.123Z"]},
    "RoomId": {"type": "string", "pattern": "^room_[1-9][0-9]*$", "examples": ["room_12"],
               "description": "Opaque to clients."},
    "Username": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{3,32}$",
                 "description": "Unique ignoring case.", "examples": ["alice"]},
    "Credentials": _obj({"username": STRING, "password": STRING},
                        examples=[{"username": "alice", "password": "correct horse"}]),
    "Registration": _obj({"username": USERNAME,
                          "password": {"type": "string", "minLength": 8, "maxLength": 1024,
                                       "description": "No control characters."}},
                         examples=[{"username": "alice", "password": "correct horse"}]),
    "LoginToken": _obj({"status": {"const": "success"}, "token": STRING},
                       {"username": STRING, "expiresAt": TIME}),
    "Registered": _obj({"status": {"const": "success"}, "username": STRING}),
    "Me": _obj({"username": STRING, "createdAt": TIME, "rooms": _array(ROOM_ID)}),
    "NewRoom": _obj({"roomName": {"type": "string", "minLength": 1, "maxLength": 64, "description":
                                  "1-64 characters after trimming, no control characters; "
                                  "unique ignoring case."}},
                    {"creator": {"type": ["string", "null"],
                                 "description": "If given, the caller's name."},
                     "kind": {"type": "string", "enum": ["public", "private"],
                              "default": "public"},
                     "topic": {"type": "string", "maxLength": 250, "default": ""}},
                    examples=[{"roomName": "TechTalk", "kind": "public", "topic": "All things tech"}]),
    "RoomCreated": _obj({"status": {"const": "success"}, "roomId": ROOM_ID},
                        {"roomName": STRING, "kind": KIND}),
    "Room": _obj({"roomId": ROOM_ID, "roomName": STRING, "kind": KIND, "topic": STRING,
                  "member": BOOLEAN},
                 {"memberCount": INTEGER, "createdBy": NULLABLE_STRING, "createdAt": TIME,
                  "role": ROLE, "peer": {"type": "string", "description": "A direct room's "
                                         "other user (also its roomName)."},
                  "lastSeq": INTEGER, "readUpTo": INTEGER,
                  "unread": {"type": "integer", "description": "Messages after the read "
                             "marker, not deleted, not the caller's own."},
                  "mentions": {"type": "integer", "description": "Unread ones that mention "
                               "the caller."}},
                 description="A room as GET /api/rooms lists it to the caller."),
    "RoomRef": _obj({"roomId": STRING},
                    {"username": {"type": ["string", "null"],
                                  "description": "If given, the caller's name."}},
                    examples=[{"roomId": "room_2"}]),
    "Joined": _obj({"status": {"const": "success"},
                    "message": {"type": "string", "examples": ["Joined room TechTalk"]}}),
    "HistoryItem": _obj({"id": SEQ, "sender": STRING, "message": STRING, "timestamp": TIME},
                        {"clientMsgId": STRING, "editedAt": TIME, "replyTo": INTEGER,
                         "mentions": _array(STRING), "bot": BOOLEAN,
                         "reactions": _array(_obj({"emoji": STRING, "count": INTEGER,
                                                   "users": _array(STRING)}))}),
    "History": _obj({"roomId": ROOM_ID, "messages": _array(_ref("HistoryItem")),
                     "hasMore": BOOLEAN}),
    "Member": _obj({"username": STRING, "online": BOOLEAN}, {"role": ROLE}),
    "NewToken": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 64, "description": "1-64 characters after trimming."}},
                     {"expiresInDays": {"type": ["integer", "null"], "minimum": 1,
                                        "maximum": 3650, "description": "Absent or null: never."}},
                     examples=[{"name": "ci", "expiresInDays": 90}]),
    "AccessToken": _obj({"id": INTEGER, "name": STRING, "createdAt": TIME,
                         "expiresAt": {"type": ["string", "null"], "format": "date-time"},
                         "lastUsedAt": {"type": ["string", "null"], "format": "date-time"}}),
    "AccessTokenCreated": _obj({"id": INTEGER, "name": STRING, "token": STRING,
                                "createdAt": TIME,
                                "expiresAt": {"type": ["string", "null"], "format": "date-time"}},
                               description="The token is shown this once."),
    "PasswordChange": _obj({"currentPassword": STRING,
                            "newPassword": {"type": "string", "minLength": 8, "maxLength": 1024}},
                            examples=[{"currentPassword": "correct horse",
                                       "newPassword": "battery staple"}]),
    "UserRef": _obj({"username": STRING}, examples=[{"username": "alice"}]),
    "Direct": _obj({"status": {"const": "success"}, "roomId": ROOM_ID, "kind": {"const": "direct"}}),
    "RoomChange": {"type": "object", "description": "At least one of the two.",
                   "anyOf": [{"required": ["roomName"]}, {"required": ["topic"]}],
                   "properties": {"roomName": {"type": "string", "minLength": 1, "maxLength": 64},
                                  "topic": {"type": "string", "maxLength": 250}},
                   "examples": [{"topic": "Release planning"}]},
    "RoleChange": _obj({"role": ROLE}, examples=[{"role": "moderator"}]),
    "NewBan": _obj({"username": STRING},
                   {"reason": {"type": "string", "maxLength": 500,
                               "description": "No control characters."}},
                   examples=[{"username": "alice", "reason": "spam"}]),
    "Ban": _obj({"username": STRING, "by": NULLABLE_STRING, "reason": STRING,
                 "timestamp": TIME}),
    # Sections 7-9 (served once PENDING is empty).
    "NewMessage": _obj({"message": STRING},
                       {"clientMsgId": {"type": "string", "minLength": 1, "maxLength": 64},
                        "replyTo": INTEGER},
                       examples=[{"message": "Hello @alice", "clientMsgId": "ci-42"}]),
    "MessageText": _obj({"message": STRING}, examples=[{"message": "Hello again"}]),
    "NewMessageEvent": _obj({"action": {"const": "new-message"}, "roomId": ROOM_ID, "seq": SEQ,
                             "id": SEQ, "sender": STRING, "message": STRING, "timestamp": TIME},
                            {"clientMsgId": STRING, "replyTo": INTEGER,
                             "mentions": _array(STRING), "bot": BOOLEAN}),
    "MessageEditedEvent": _obj({"action": {"const": "message-edited"}, "roomId": ROOM_ID,
                                "seq": SEQ, "id": SEQ, "sender": STRING, "message": STRING,
                                "timestamp": TIME}, {"mentions": _array(STRING)}),
    "SequencedEvent": _obj({"action": {"type": "string", "enum": [
                               "new-message", "message-edited", "message-deleted",
                               "reaction-added", "reaction-removed", "member-added",
                               "member-removed", "member-updated", "room-updated"]},
                            "roomId": ROOM_ID, "seq": SEQ, "timestamp": TIME},
                           description="A change in the room's sequence, as a `since` replay "
                                       "sends it (PROTOCOL section 7)."),
    "Events": _obj({"roomId": ROOM_ID, "events": _array(_ref("SequencedEvent")),
                    "hasMore": BOOLEAN}),
    "ReadMarker": _obj({"upTo": INTEGER}, examples=[{"upTo": 1}]),
    "ReadUpTo": _obj({"status": {"const": "success"}, "readUpTo": INTEGER}),
    "SearchResults": _obj({"results": _array(_obj({"roomId": ROOM_ID, "roomName": STRING,
                                                   "id": SEQ, "sender": STRING,
                                                   "message": STRING, "timestamp": TIME})),
                           "next": {"type": ["string", "null"],
                                    "description": "The following page's cursor; null at the end."}}),
}

# Path parameters, by the name the bottle rules give them.
PATH_PARAMETERS = {
    "room_id": {"description": "A room id (room_12); any other string is an unknown room.",
                "schema": {"type": "string", "examples": ["room_1"]}},
    "username": {"description": "A username (case ignored).",
                 "schema": {"type": "string", "examples": ["alice"]}},
    "token_id": {"description": "An access token's id, as GET /api/tokens lists it.",
                 "schema": {"type": "integer", "examples": [1]}},
    "message_id": {"description": "A message id in the room.",
                   "schema": {"type": "integer", "examples": [1]}},
    "emoji": {"description": "1-32 characters, no whitespace or control characters, "
                             "percent-encoded UTF-8.",
              "schema": {"type": "string", "minLength": 1, "maxLength": 32,
                         "examples": ["👍"]}},
}


def _query(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def _int(low, high, default=None):
    schema = {"type": "integer", "minimum": low, "maximum": high}
    if default is not None:
        schema["default"] = default
    return schema


# (METHOD, bottle rule) -> what it does. Keys: summary, auth (default True),
# body (a schema name), ok ({status: (schema name or None, description)}),
# errors (statuses beyond those the builder adds), query (parameters).
ROUTES = {
    ("GET", "/api/openapi.json"): dict(
        summary="This document.", auth=False,
        ok={200: (None, "The OpenAPI 3.1 description of every /api endpoint.")}),
    ("POST", "/api/register"): dict(
        summary="Register a user, when [auth] open_registration is true.", auth=False,
        body="Registration", ok={201: ("Registered", "Registered.")},
        errors=(403, 409, 429)),
    ("POST", "/api/login"): dict(
        summary="A login token for a username and password (expires after [auth] token_ttl).",
        auth=False, body="Credentials", ok={200: ("LoginToken", "Logged in.")},
        errors=(401, 403, 429),
        description="Unknown user and wrong password answer alike (401). Failed logins are "
                    "throttled per username and per client address (429)."),
    ("POST", "/api/logout"): dict(
        summary="Revoke the token in use.", ok={200: ("Success", "Logged out.")}),
    ("GET", "/api/me"): dict(
        summary="The caller and the rooms they are in.", ok={200: ("Me", "The caller.")}),
    ("POST", "/api/password"): dict(
        summary="Change one's own password; every other login session of the user ends.",
        body="PasswordChange", ok={200: ("Success", "Changed.")}, errors=(403,),
        description="A wrong current password is 403. The token in use and access tokens stay."),
    ("POST", "/api/create-room"): dict(
        summary="Create a room; the caller becomes its owner.", body="NewRoom",
        ok={201: ("RoomCreated", "Created.")}, errors=(403, 409, 429)),
    ("GET", "/api/rooms"): dict(
        summary="Public rooms and every room the caller is in.",
        ok={200: ({"type": "array", "items": _ref("Room")}, "The rooms.")}),
    ("POST", "/api/join-room"): dict(
        summary="Join a public room (joining twice is fine).", body="RoomRef",
        ok={200: ("Joined", "Joined.")}, errors=(403, 404)),
    ("POST", "/api/leave-room"): dict(
        summary="End the caller's membership of a room.", body="RoomRef",
        ok={200: ("Success", "Left.")}, errors=(403, 404)),
    ("GET", "/api/chat-history/<room_id>"): dict(
        summary="A page of the room's messages, oldest first (members only).",
        query=[_query("limit", _int(1, 500, 50), "Messages in the page."),
               _query("before", INTEGER, "The page of messages older than this id."),
               _query("after", INTEGER, "The page of messages newer than this id.")],
        ok={200: ("History", "The page; hasMore says whether more lie beyond it.")},
        errors=(403, 404)),
    ("GET", "/api/rooms/<room_id>/members"): dict(
        summary="The room's members, their roles and presence (members only).",
        ok={200: (_array(_ref("Member")), "The members.")}, errors=(403, 404)),
    ("PATCH", "/api/rooms/<room_id>"): dict(
        summary="Rename a room or set its topic (owner, moderator).", body="RoomChange",
        ok={200: ("Room", "The room as listed.")}, errors=(403, 404, 409)),
    ("POST", "/api/rooms/<room_id>/members"): dict(
        summary="Add a user as a member (owner, moderator; no change if already in).",
        body="UserRef", ok={200: ("Success", "Added.")}, errors=(403, 404)),
    ("DELETE", "/api/rooms/<room_id>/members/<username>"): dict(
        summary="End a membership: one's own (leaving), or a lower rank's.",
        ok={200: ("Success", "Removed.")}, errors=(403, 404)),
    ("PATCH", "/api/rooms/<room_id>/members/<username>"): dict(
        summary="Set a member's role (owner); `owner` hands the room over.",
        body="RoleChange", ok={200: ("Success", "Changed.")}, errors=(403, 404)),
    ("POST", "/api/rooms/<room_id>/bans"): dict(
        summary="Ban a user of a lower rank: out of the room and kept out.", body="NewBan",
        ok={200: ("Success", "Banned.")}, errors=(403, 404)),
    ("DELETE", "/api/rooms/<room_id>/bans/<username>"): dict(
        summary="Lift a ban (the user is not added back).",
        ok={200: ("Success", "Lifted.")}, errors=(403, 404)),
    ("GET", "/api/rooms/<room_id>/bans"): dict(
        summary="The room's bans (owner, moderator).",
        ok={200: (_array(_ref("Ban")), "The bans.")}, errors=(403, 404)),
    ("POST", "/api/direct"): dict(
        summary="The direct room of the caller and another user, made on first ask.",
        body="UserRef", ok={201: ("Direct", "Made now."), 200: ("Direct", "Made before.")},
        errors=(404,)),
    ("POST", "/api/tokens"): dict(
        summary="A new access token for scripts; the token is shown this once.",
        body="NewToken", ok={201: ("AccessTokenCreated", "Created.")}),
    ("GET", "/api/tokens"): dict(
        summary="The caller's live access tokens, never the tokens themselves.",
        ok={200: (_array(_ref("AccessToken")), "The tokens.")}),
    ("DELETE", "/api/tokens/<token_id>"): dict(
        summary="Revoke one of the caller's access tokens.",
        ok={200: ("Success", "Revoked.")}, errors=(404,)),
    # -- section 7: the room's log over HTTP (PENDING) -------------------------------
    ("POST", "/api/rooms/<room_id>/messages"): dict(
        summary="Send a message (members only; the per-user message rate applies).",
        body="NewMessage", ok={201: ("NewMessageEvent", "Stored: its new-message event."),
                               200: ("NewMessageEvent", "A clientMsgId retry: the original.")},
        errors=(403, 404, 429)),
    ("PATCH", "/api/rooms/<room_id>/messages/<message_id>"): dict(
        summary="Edit one's own message.", body="MessageText",
        ok={200: ("MessageEditedEvent", "Its message-edited event.")}, errors=(403, 404, 429)),
    ("DELETE", "/api/rooms/<room_id>/messages/<message_id>"): dict(
        summary="Delete a message (its sender, the owner or a moderator); its text is erased.",
        ok={200: ("Success", "Deleted.")}, errors=(403, 404, 429)),
    ("PUT", "/api/rooms/<room_id>/messages/<message_id>/reactions/<emoji>"): dict(
        summary="Add the caller's reaction (no change if already there).",
        ok={200: ("Success", "Added.")}, errors=(403, 404, 429)),
    ("DELETE", "/api/rooms/<room_id>/messages/<message_id>/reactions/<emoji>"): dict(
        summary="Remove the caller's reaction (no change if absent).",
        ok={200: ("Success", "Removed.")}, errors=(403, 404, 429)),
    ("GET", "/api/rooms/<room_id>/events"): dict(
        summary="The room's sequenced events after a seq, as a `since` replay sends them.",
        query=[_query("after", {"type": "integer", "minimum": 0, "default": 0},
                      "Events with a larger seq."),
               _query("limit", _int(1, 500, 100), "Events in the page."),
               _query("wait", _int(0, 30, 0), "Seconds to hold the request until there is "
                                               "at least one event (long polling).")],
        ok={200: ("Events", "The events, in seq order.")}, errors=(403, 404)),
    # -- section 8 and 9: read markers and search (PENDING) ---------------------------
    ("POST", "/api/rooms/<room_id>/read"): dict(
        summary="Move the caller's read marker forward (a smaller upTo changes nothing).",
        body="ReadMarker", ok={200: ("ReadUpTo", "The marker now.")}, errors=(403, 404)),
    ("GET", "/api/search"): dict(
        summary="Messages holding every word of q in the caller's rooms, newest first.",
        query=[_query("q", {"type": "string", "minLength": 1, "maxLength": 200},
                      "Words; the last one also as a prefix.", required=True),
               _query("roomId", STRING, "Only this room."),
               _query("limit", _int(1, 100, 20), "Results in the page."),
               _query("cursor", STRING, "The previous page's next.")],
        ok={200: ("SearchResults", "A page of results.")}, errors=(403, 404)),
}

_PARAM = re.compile(r"<(\w+)(?::[^>]*)?>")


class RouteDrift(Exception):
    """The app's /api routes and their descriptions disagree."""


def openapi_path(rule):
    """A bottle rule in OpenAPI's form: /api/rooms/<room_id> -> /api/rooms/{room_id}."""
    return _PARAM.sub(r"{\1}", rule)


def api_routes(app):
    """(METHOD, rule) of every /api route the bottle app serves."""
    return {(route.method, route.rule) for route in app.routes if route.rule.startswith("/api/")}


def document(app):
    """The OpenAPI document of the app's /api routes; RouteDrift when they and ROUTES differ."""
    served = api_routes(app)
    problems = []
    for what, keys in (("served without a description (add it to chatd/openapi.py ROUTES)",
                        served - ROUTES.keys()),
                       ("described but not served (remove it, or list it in PENDING)",
                        ROUTES.keys() - served - PENDING),
                       ("served but still in PENDING (remove it from PENDING)",
                        served & PENDING)):
        problems += ["%s %s: %s" % (method, rule, what) for method, rule in sorted(keys)]
    if problems:
        raise RouteDrift("; ".join(problems))
    return describe(sorted(served))


def describe(routes):
    """The document of these (METHOD, rule) pairs, each described in ROUTES."""
    paths = {}
    for method, rule in routes:
        paths.setdefault(openapi_path(rule), {})[method.lower()] = _operation(method, rule)
    return {
        "openapi": "3.1.0",
        "info": {"title": "chatd", "version": __version__,
                 "description": "The HTTP API of chatd. The WebSocket protocol (/chat) is "
                                "described in the project's docs."},
        "paths": paths,
        "security": [{"bearer": []}],
        "components": {
            "schemas": SCHEMAS,
            "responses": {code: _error_response(status, code, text)
                          for status, (code, text) in ERRORS.items()},
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A login token (POST /api/login) or an access token "
                               "(POST /api/tokens)."}},
        },
    }


def _operation(method, rule):
    spec = ROUTES[(method, rule)]
    names = _PARAM.findall(rule)
    operation = {"operationId": _operation_id(method, rule), "summary": spec["summary"],
                 "parameters": [dict(PATH_PARAMETERS[name], name=name, **{"in": "path"},
                                     required=True) for name in names] + spec.get("query", [])}
    if spec.get("description"):
        operation["description"] = spec["description"]
    if not spec.get("auth", True):
        operation["security"] = []
    if spec.get("body"):
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _ref(spec["body"])}}}
    responses = {str(status): _ok_response(schema, text)
                 for status, (schema, text) in spec["ok"].items()}
    for status in sorted(_error_statuses(spec, names)):
        responses[str(status)] = {"$ref": "#/components/responses/" + ERRORS[status][0]}
    operation["responses"] = responses
    return operation


def _error_statuses(spec, path_names):
    statuses = set(spec.get("errors", ()))
    if spec.get("auth", True):
        statuses.add(401)
    if spec.get("body"):
        statuses |= {400, 413, 415}
    if path_names or spec.get("query"):
        statuses.add(400)  # a parameter out of range, a path that is not UTF-8
    return statuses


def _operation_id(method, rule):
    named = _PARAM.sub(lambda match: " by " + match.group(1).replace("_", " "), rule[len("/api/"):])
    words = re.findall(r"[a-z]+", named)
    return method.lower() + "".join(word.capitalize() for word in words)


def _ok_response(schema, text):
    if schema is None:
        schema = {"type": "object"}
    elif isinstance(schema, str):
        schema = _ref(schema)
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _error_response(status, code, text):
    response = {"description": text, "content": {"application/json": {"schema": {
        "allOf": [_ref("Error"), {"properties": {"error": {"const": code}}}]}}}}
    if status == 429:
        response["headers"] = {"Retry-After": {"required": True, "description": "Seconds.",
                                               "schema": {"type": "integer"}}}
    return response
