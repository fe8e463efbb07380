"""chatctl against a real chatd: JSON lines on stdout, exit codes 0/1/2, one
line on stderr when it fails."""
import json
import os
import subprocess
import sys

import pytest

from helpers import unique
from test_client import has_route

CHATCTL = os.path.join(os.path.dirname(sys.executable), "chatctl")


def chatctl(*args, env=None, stdin=None):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CHATD_")}
    return subprocess.run([CHATCTL, *args], env=dict(environ, **(env or {})), input=stdin,
                          capture_output=True, text=True, timeout=30)


def lines(result):
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def alice(server, client):
    user = client()
    user.env = {"CHATD_URL": server.url, "CHATD_TOKEN": user.token}
    user.room_name = unique("room ")
    user.room = user.create_room(user.room_name)
    sock = user.ws(join=user.room)
    for i in range(5):
        sock.say(user.room, "m%d" % i)
        sock.expect("new-message", message="m%d" % i)
    user.sock = sock
    return user


def test_rooms_and_history_by_id_or_name(alice):
    assert {"roomId": alice.room, "roomName": alice.room_name}.items() <= next(
        item for item in lines(chatctl("rooms", env=alice.env))
        if item["roomId"] == alice.room).items()
    by_name = lines(chatctl("history", alice.room_name, "--limit", "2", env=alice.env))
    assert [m["message"] for m in by_name] == ["m3", "m4"]
    by_id = lines(chatctl("--url", alice.env["CHATD_URL"], "--token", alice.token,
                          "history", alice.room, "--before", str(by_name[0]["id"])))
    assert [m["message"] for m in by_id] == ["m0", "m1", "m2"]


def test_tail_last_lines_and_since(alice):
    last = lines(chatctl("tail", alice.room, "-n", "2", env=alice.env))
    assert [(e["action"], e["roomId"], e["message"]) for e in last] == [
        ("new-message", alice.room, "m3"), ("new-message", alice.room, "m4")]
    since = lines(chatctl("tail", alice.room_name, "--since", str(last[0]["id"]), env=alice.env))
    assert [e["message"] for e in since] == ["m4"]


def test_tail_follow_prints_new_events_as_they_come(alice):
    proc = subprocess.Popen([CHATCTL, "tail", alice.room, "-n", "1", "--follow"],
                            env=dict(os.environ, **alice.env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert json.loads(proc.stdout.readline())["message"] == "m4"
        alice.sock.say(alice.room, "live one")
        event = json.loads(proc.stdout.readline())
        assert (event["action"], event["message"]) == ("new-message", "live one")
    finally:
        proc.kill()
        proc.wait()


def test_login_with_password_on_stdin(alice):
    result = chatctl("--url", alice.env["CHATD_URL"], "--username", alice.username,
                     "--password-stdin", "history", alice.room, stdin=alice.password + "\n")
    assert len(lines(result)) == 5


@pytest.mark.parametrize("args, env, why", [
    (["rooms"], {"CHATD_TOKEN": "bad-token"}, "token"),
    (["history", "no such room name"], {}, "no room named"),
    (["history", "room_99999999"], {}, "room_99999999"),
])
def test_failures_exit_1_with_one_line(alice, args, env, why):
    result = chatctl(*args, env=dict(alice.env, **env))
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("chatctl: ")
    assert why in result.stderr.lower() or why in result.stderr


def test_unreachable_server_exits_1():
    result = chatctl("rooms", env={"CHATD_URL": "http://127.0.0.1:9", "CHATD_TOKEN": "t"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("chatctl: cannot reach http://127.0.0.1:9")


@pytest.mark.parametrize("args, env", [
    (["rooms"], {"CHATD_TOKEN": "t"}),  # no server
    (["rooms"], {"CHATD_URL": "http://127.0.0.1:9"}),  # no token
    (["tail", "room_1", "--since", "x"], {"CHATD_URL": "http://127.0.0.1:9", "CHATD_TOKEN": "t"}),
    (["frobnicate"], {}),
])
def test_bad_usage_exits_2(args, env):
    result = chatctl(*args, env=env)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr


def test_send_reads_stdin_and_prints_the_event(server, alice):
    if not has_route(server, "POST", "/api/rooms/room_1/messages"):
        pytest.skip("this chatd has no POST /api/rooms/:roomId/messages yet (section 7)")
    [event] = lines(chatctl("send", alice.room_name, "-", env=alice.env, stdin="from stdin\n"))
    assert (event["action"], event["message"]) == ("new-message", "from stdin")
    [event] = lines(chatctl("send", alice.room, "from args", env=alice.env))
    assert alice.sock.expect("new-message", message="from args")["id"] == event["id"]
