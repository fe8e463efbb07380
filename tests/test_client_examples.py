"""The examples in examples/ run against a real chatd and do what they say."""
import os
import subprocess
import sys

import pytest

from helpers import ROOT, unique
from test_client import has_route


def example(name):
    return [sys.executable, os.path.join(ROOT, "examples", name)]


def login_env(server, user):
    environ = {key: value for key, value in os.environ.items() if not key.startswith("CHATD_")}
    return dict(environ, CHATD_URL=server.url, CHATD_USERNAME=user.username,
                CHATD_PASSWORD=user.password)


def test_echo_bot_answers_mentions_and_echo_commands_only(server, client):
    bot, alice = client(), client()
    room = alice.create_room()
    sock = alice.ws(join=room)
    proc = subprocess.Popen(example("echo_bot.py") + [room], env=login_env(server, bot),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        sock.expect("user-joined", username=bot.username, timeout=20)
        sock.say(room, "nothing for the bot")
        sock.say(room, "!echo  hello there")
        reply = sock.expect("new-message", sender=bot.username)
        assert reply["message"] == "hello there"
        sock.say(room, "ping @%s." % bot.username.upper())
        reply = sock.expect("new-message", sender=bot.username)
        assert reply["message"] == "ping @%s." % bot.username.upper()
    finally:
        proc.kill()
        assert "Traceback" not in proc.communicate()[1]


def test_ci_notify_posts_one_line_once_per_job(server, client):
    if not has_route(server, "POST", "/api/rooms/room_1/messages"):
        pytest.skip("this chatd has no POST /api/rooms/:roomId/messages yet (section 7)")
    ci, alice = client(), client()
    room = alice.create_room()
    ci.post("/api/join-room", {"roomId": room})
    env = dict(login_env(server, ci), CI_JOB_ID=unique("job-"))
    for _ in range(2):  # a re-run of the same job
        result = subprocess.run(example("ci_notify.py") + [room, "passed", "main", "abc123"],
                                env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    messages = alice.get("/api/chat-history/%s" % room).json()["messages"]
    assert [m["message"] for m in messages] == ["✅ CI passed: main abc123"]


def test_ci_notify_fails_in_one_line(server, client):
    ci = client()
    result = subprocess.run(example("ci_notify.py") + ["room_99999999", "failed"],
                            env=login_env(server, ci), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1 and result.stderr.startswith("ci_notify: ")
    assert "Traceback" not in result.stderr
