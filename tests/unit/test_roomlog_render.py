"""The merged stream's rendering and mention resolution, in-process (no database)."""
from chatd import events, mentions
from chatd.storage.messages import LogRow

T = 1733832000123


def row(seq, kind, who="alice", text=None, deleted=False, message_seq=None, data=None, **extra):
    fields = dict(client_msg_id=None, reply_to=None, mentions=None, bot=False)
    fields.update(extra)
    return LogRow(seq, kind, who, text, T, fields["client_msg_id"], fields["reply_to"],
                  fields["mentions"], deleted, fields["bot"], message_seq, data)


def test_a_message_row_renders_as_new_message_with_its_optional_fields():
    event = events.logged(7, row(3, "new-message", text="hi @bob", client_msg_id="c",
                                 reply_to=2, mentions=["bob"], bot=True))
    assert event == {"action": "new-message", "roomId": "room_7", "seq": 3, "id": 3,
                     "sender": "alice", "message": "hi @bob", "timestamp":
                     "2024-12-10T12:00:00.123Z", "clientMsgId": "c", "replyTo": 2,
                     "mentions": ["bob"], "bot": True}


def test_a_deleted_message_and_its_edits_replay_without_text():
    new = events.logged(7, row(3, "new-message", text="", deleted=True, mentions=None))
    assert new["message"] == "" and new["deleted"] is True and "mentions" not in new
    edit = events.logged(7, row(5, "message-edited", text=None, deleted=True, message_seq=3,
                                data={"mentions": ["bob"]}))
    assert (edit["id"], edit["message"], edit["deleted"]) == (3, "", True)
    assert "mentions" not in edit


def test_room_event_rows_render_their_data_and_message_id():
    edit = events.logged(7, row(5, "message-edited", text="new", message_seq=3,
                                data={"mentions": ["bob"]}))
    assert edit == {"action": "message-edited", "roomId": "room_7", "seq": 5,
                    "timestamp": "2024-12-10T12:00:00.123Z", "id": 3, "sender": "alice",
                    "message": "new", "mentions": ["bob"]}
    reaction = events.logged(7, row(6, "reaction-added", message_seq=3,
                                    data={"emoji": "👍", "username": "bob"}))
    assert (reaction["id"], reaction["emoji"], reaction["username"]) == (3, "👍", "bob")
    member = events.logged(7, row(1, "member-added", data={"username": "alice", "role": "owner"}))
    assert "id" not in member and member["role"] == "owner" and member["seq"] == 1


def test_mentions_resolve_against_members_once_each_in_order():
    members = {"bob": "Bob", "carol.x": "carol.x", "al": "al"}
    text = "@BOB hi, @carol.x. and @bob again; mail al@example.com; @nobody @al-"
    assert mentions.resolve(text, members) == ["Bob", "carol.x", "al"]
    assert mentions.resolve("no mentions here", members) == []
