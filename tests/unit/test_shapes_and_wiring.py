"""Wire shapes made from one row, error bodies from one place, and wiring without hidden work."""
import json
import subprocess
import sys

import pytest

from chatd import config, errors, events
from chatd.storage.messages import MessageRow

ROW = MessageRow(12, 3, "alice", "hi", 1733832000123, "c-1")


def test_history_item_and_new_message_come_from_the_same_row():
    item = {"id": 3, "sender": "alice", "message": "hi", "timestamp": "2024-12-10T12:00:00.123Z",
            "clientMsgId": "c-1"}
    assert events.history_item(ROW) == item
    assert events.new_message(ROW) == dict({"action": "new-message", "roomId": "room_12",
                                            "seq": 3}, **item)
    assert list(events.new_message(ROW)) == ["action", "roomId", "seq", "id", "sender", "message",
                                             "timestamp", "clientMsgId"]


def test_a_deleted_sender_and_no_client_msg_id():
    item = events.history_item(ROW._replace(sender=None, client_msg_id=None))
    assert item["sender"] == "[deleted]" and "clientMsgId" not in item


def test_error_shapes():
    exc = errors.Unavailable("Try again.")
    assert json.loads(errors.error_body(exc)) == exc.as_dict() == {
        "status": "error", "error": "unavailable", "message": "Try again."}
    assert exc.as_event("send-message") == {"action": "error", "code": "internal",
                                            "message": "Try again.", "ref": "send-message"}
    assert errors.NotJoined("x").as_event() == {"action": "error", "code": "not_joined",
                                                "message": "x"}


def test_settings_are_read_only():
    settings = config.load(environ={})
    with pytest.raises(AttributeError):
        settings.limits.message_burst = 1
    with pytest.raises(AttributeError):
        settings.limits = None
    assert settings.limits.message_burst == 30


def test_importing_chat_admin_hashes_no_password():
    counting = ("import argon2; calls = []; real = argon2.PasswordHasher.hash\n"
                "argon2.PasswordHasher.hash = lambda *a: calls.append(1) or real(*a)\n"
                "import admin_cli.cli, chatd.auth, chatd.server\n"
                "assert not calls, 'a password was hashed at import'\n"
                "assert chatd.auth.Passwords().verify(None, 'x') is False and calls == [1]\n")
    subprocess.run([sys.executable, "-c", counting], check=True)

