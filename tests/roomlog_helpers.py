"""Shared by the room-log tests: a replay applied in order must end with what history shows."""
import copy
import urllib.parse

SEQUENCED = {"new-message", "message-edited", "message-deleted", "reaction-added",
             "reaction-removed", "member-added", "member-removed", "member-updated",
             "room-updated"}


def apply(events, state=None):
    """History items (id -> item) after applying sequenced events in order, as a client would."""
    state = {} if state is None else copy.deepcopy(state)
    for event in events:
        kind = event["action"]
        if kind == "new-message":
            if event.get("deleted"):
                continue
            item = {key: event[key] for key in ("id", "sender", "message", "timestamp",
                                                  "clientMsgId", "replyTo", "mentions", "bot")
                    if key in event}
            state[event["id"]] = item
        elif kind == "message-edited" and event["id"] in state:
            item = state[event["id"]]
            item["message"] = event["message"]
            item["editedAt"] = event["timestamp"]
            item.pop("mentions", None)
            if event.get("mentions"):
                item["mentions"] = event["mentions"]
        elif kind == "message-deleted":
            state.pop(event["id"], None)
        elif kind == "reaction-added" and event["id"] in state:
            reactions = state[event["id"]].setdefault("reactions", [])
            for group in reactions:
                if group["emoji"] == event["emoji"]:
                    group["users"].append(event["username"])
                    group["count"] += 1
                    break
            else:
                reactions.append({"emoji": event["emoji"], "count": 1,
                                  "users": [event["username"]]})
        elif kind == "reaction-removed" and event["id"] in state:
            item = state[event["id"]]
            for group in item.get("reactions", []):
                if group["emoji"] == event["emoji"]:
                    group["users"].remove(event["username"])
                    group["count"] -= 1
            item["reactions"] = [g for g in item.get("reactions", []) if g["count"]]
            if not item["reactions"]:
                del item["reactions"]
    return state


def history(client, room_id):
    r = client.get("/api/chat-history/%s?limit=500" % room_id)
    assert r.status_code == 200, r.text
    return {item["id"]: item for item in r.json()["messages"]}


def events_after(client, room_id, after=0, **query):
    params = dict(after=after, limit=500, **query)
    r = client.get("/api/rooms/%s/events?%s" % (room_id, urllib.parse.urlencode(params)))
    assert r.status_code == 200, r.text
    return r.json()["events"]


def sequenced(events):
    return [event for event in events if event.get("action") in SEQUENCED]


def replay(sock, room_id, since, upto_seq):
    """join with since; every sequenced event up to seq `upto_seq`."""
    sock.join(room_id, since)
    got = []
    if since >= upto_seq:
        return got
    for event in sock.until(lambda e: e.get("seq") == upto_seq):
        if event.get("action") in SEQUENCED:
            got.append(event)
    return got
