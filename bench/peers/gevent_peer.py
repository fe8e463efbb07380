"""Reference "plain" peer: bottle + gevent WSGIServer + gevent-websocket + SQLite.

Written the way the libraries' docs suggest, as a reference for chatd:
no auth, no limits, no TCP_NODELAY, one ws.send() per recipient. Each message
is stored in SQLite (WAL) before it is broadcast to its room, the sender
included. It speaks the subset of chatd's protocol that bench/loadgen.py uses:
join -> joined (with `since`: then the room's messages after it),
send-message -> new-message.

    python bench/peers/gevent_peer.py --port 0
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402

import bottle  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402
from geventwebsocket.handler import WebSocketHandler  # noqa: E402

from store import announce, messages_since, open_db, store_message  # noqa: E402

app = bottle.Bottle()
rooms = {}          # roomId -> set of WebSocket joined to it
replaying = {}      # WebSocket -> live messages held while it is sent its backlog
user_ids = itertools.count(1)
db = None           # set in main()


@app.route("/chat")
def chat():
    ws = bottle.request.environ.get("wsgi.websocket")
    if ws is None:
        bottle.abort(400, "WebSocket expected")
    user = "user%d" % next(user_ids)   # no auth: each connection is its own user
    joined = set()
    try:
        while True:
            raw = ws.receive()
            if raw is None:
                break
            handle(ws, user, joined, json.loads(raw))
    except Exception:
        pass   # a dropped peer or a bad frame ends this connection only
    finally:
        for room_id in joined:
            rooms[room_id].discard(ws)


def handle(ws, user, joined, msg):
    action = msg.get("action")
    room_id = msg.get("roomId")
    if action == "join":
        since = msg.get("since")
        backlog = messages_since(db, room_id, since) if isinstance(since, int) else []
        # Live messages for this socket wait while it is sent its backlog
        # (a send may yield, and another greenlet's send to it would fail).
        replaying[ws] = []
        rooms.setdefault(room_id, set()).add(ws)
        joined.add(room_id)
        try:
            ws.send(json.dumps({"action": "joined", "roomId": room_id,
                                "message": "Welcome", "members": []}))
            for event in backlog:
                ws.send(json.dumps(event))
            while replaying[ws]:
                waiting, replaying[ws] = replaying[ws], []
                for text in waiting:
                    ws.send(text)
        finally:
            del replaying[ws]
    elif action == "send-message" and room_id in joined:
        event = store_message(db, room_id, user, msg.get("message", ""), msg.get("clientMsgId"))
        broadcast(room_id, json.dumps(event))


def broadcast(room_id, text):
    for peer in list(rooms.get(room_id, ())):
        if peer in replaying:
            replaying[peer].append(text)
            continue
        try:
            peer.send(text)
        except Exception:
            # A closed peer, or one whose socket another greenlet is blocked
            # writing to (ConcurrentObjectUseError): skip it, as a plain server would.
            pass


def main():
    global db
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--database", help="SQLite file (default: a fresh temp file)")
    args = ap.parse_args()
    db = open_db(args.database)
    server = WSGIServer((args.host, args.port), app, handler_class=WebSocketHandler, log=None)
    server.start()
    announce(args.host, server.server_port)
    server.serve_forever()


if __name__ == "__main__":
    main()
