"""Reference peer on Python's `websockets` (asyncio) library + SQLite.

Same protocol subset and storage as gevent_peer.py (join with `since` replays
the room's messages after it): no auth, no limits, each
message stored in SQLite (WAL) before it is broadcast to its room, the sender
included. Fan-out uses the library's own broadcast(), which its docs give for
this job (it writes to each connection without awaiting a slow one). sqlite3
is called straight from the event loop, as a plain server would.

    python bench/peers/websockets_peer.py --port 0
"""
import argparse
import asyncio
import itertools
import json

from websockets.asyncio.server import broadcast, serve

from store import announce, messages_since, open_db, store_message

rooms = {}          # roomId -> set of ServerConnection joined to it
user_ids = itertools.count(1)
db = None           # set in main()


async def chat(ws):
    if ws.request.path.split("?")[0] != "/chat":
        await ws.close(1008, "unknown path")
        return
    user = "user%d" % next(user_ids)   # no auth: each connection is its own user
    joined = set()
    try:
        async for raw in ws:
            await handle(ws, user, joined, json.loads(raw))
    except Exception:
        pass   # a dropped peer or a bad frame ends this connection only
    finally:
        for room_id in joined:
            rooms[room_id].discard(ws)


async def handle(ws, user, joined, msg):
    action = msg.get("action")
    room_id = msg.get("roomId")
    if action == "join":
        since = msg.get("since")
        backlog = messages_since(db, room_id, since) if isinstance(since, int) else []
        rooms.setdefault(room_id, set()).add(ws)
        joined.add(room_id)
        # broadcast() writes at once, without awaiting: the joined event and the
        # backlog leave before any live message can come between them.
        broadcast({ws}, json.dumps({"action": "joined", "roomId": room_id,
                                    "message": "Welcome", "members": []}))
        for event in backlog:
            broadcast({ws}, json.dumps(event))
    elif action == "send-message" and room_id in joined:
        event = store_message(db, room_id, user, msg.get("message", ""), msg.get("clientMsgId"))
        broadcast(rooms[room_id], json.dumps(event))


async def serve_forever(host, port):
    async with serve(chat, host, port) as server:
        announce(host, server.sockets[0].getsockname()[1])
        await asyncio.get_running_loop().create_future()


def main():
    global db
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8082)
    ap.add_argument("--database", help="SQLite file (default: a fresh temp file)")
    args = ap.parse_args()
    db = open_db(args.database)
    try:
        asyncio.run(serve_forever(args.host, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
