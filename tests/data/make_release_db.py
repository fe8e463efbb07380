"""Make the database a release wrote, for the upgrade tests of later releases.

Run once with the release checked out (it drives that release's own chatd and
chat-admin), then keep the output under tests/data/release-<version>/:

    git checkout v0.1.0 && .venv/bin/python tests/data/make_release_db.py OUTDIR

It writes OUTDIR/chat.db (SQLite) and OUTDIR/chat.pg.sql (a pg_dump of the same
content made on PostgreSQL), and OUTDIR/expected.json: for each engine, what history
must show after an upgrade (every room, every message with its id, sender, text,
timestamp and clientMsgId, and the users).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import services  # noqa: E402
from helpers import Chatd, Client  # noqa: E402

GENEROUS = {"CHATD_LIMITS_MESSAGES_PER_MINUTE": "1000000", "CHATD_LIMITS_MESSAGE_BURST": "100000"}
USERS = ["alice", "bob", "carol"]
TEXTS = ["hello @bob", "héllo wörld — ünïcode", "привет мир", "你好，世界", "line one\nline two",
         "<script>alert(1)</script>", "emoji 🎉👍", "a" * 4000]


def fill(server):
    """Three users, three rooms, messages with and without clientMsgIds; carol leaves."""
    alice, bob, carol = (Client(server, username=name) for name in USERS)
    rooms = [alice.create_room("General"), bob.create_room("Random"), carol.create_room("Ops")]
    for user in (bob, carol):
        for room in rooms:
            assert user.post("/api/join-room", {"roomId": room}).status_code == 200
    sockets = {user.username: user.ws() for user in (alice, bob, carol)}
    n = 0
    for room in rooms:
        for sock in sockets.values():
            sock.join(room)
        for i, text in enumerate(TEXTS):
            name = USERS[i % 3]
            n += 1
            cmid = "cmid-%d" % n if i % 2 == 0 else None
            sockets[name].say(room, text, cmid)
            sockets[name].expect("new-message", roomId=room, sender=name)
    for sock in sockets.values():
        sock.close()
    carol.post("/api/leave-room", {"roomId": rooms[2]})
    history = {room: alice.get("/api/chat-history/%s?limit=500" % room).json()["messages"]
               for room in rooms[:2]}
    history[rooms[2]] = bob.get("/api/chat-history/%s?limit=500" % rooms[2]).json()["messages"]
    return {"users": USERS, "password": alice.password,
            "rooms": {room: {"messages": msgs} for room, msgs in history.items()},
            "carolLeft": rooms[2]}


def main(out):
    os.makedirs(out, exist_ok=True)
    sqlite_path = os.path.join(out, "chat.db")
    if os.path.exists(sqlite_path):
        os.remove(sqlite_path)
    server = Chatd("sqlite:///" + os.path.abspath(sqlite_path), env=GENEROUS).start()
    try:
        expected = {"sqlite": fill(server)}
    finally:
        server.stop()
    with services.postgres_database() as url:
        server = Chatd(url, env=GENEROUS).start()
        try:
            expected["postgresql"] = fill(server)
        finally:
            server.stop()
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", url],
                              check=True, capture_output=True, text=True).stdout
    with open(os.path.join(out, "chat.pg.sql"), "w") as f:
        f.write(dump)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
