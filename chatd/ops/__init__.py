"""The rules: every domain operation, called alike by HTTP, WebSocket and chat-admin.

One module per domain: accounts, rooms, messages, control. Each operation
validates, asks chatd.policy, runs its queries (chatd.storage) in one
transaction, returns plain data and raises ChatError. Live delivery is not
done here: the group commit hands each stored message to its on_stored
(the hub, in chatd), and changes other processes must act on are written
as control events in the same transaction.

Each operation is a plain function. One that needs what operations share
(settings, password hashing, the broker's counters, the message writer)
takes a `Chat`, the one object holding them, as its first argument; the
others do not, so the hub can be given its database readers
(messages_since, room_last_seq) before the Chat and its writer exist.
Chat also names every operation once, as a method: the three transports
hold one object and call `chat.login(...)` alike, without knowing which
module holds which rule.
"""
from . import accounts, control, markers, messages, rooms, search


class Chat:
    def __init__(self, settings, passwords, broker, writer=None, announce=None, to_user=None):
        """writer: the storage.commit.GroupCommit; None in chat-admin, which posts nothing.

        announce(room_pk, event): a sequenced event this process committed, for
        live delivery (the hub's event_stored); to_user(username, event): a
        per-user event (the hub's to_user). None in chat-admin, whose changes
        reach running chatd processes as control events.
        """
        self.settings = settings
        self.passwords = passwords
        self.broker = broker
        self.writer = writer
        self.announce = announce
        self.to_user = to_user

    # accounts
    register = accounts.register
    create_user = accounts.create_user
    login = accounts.login
    authenticate = staticmethod(accounts.authenticate)
    logout = staticmethod(accounts.logout)
    me = staticmethod(accounts.me)
    set_password = accounts.set_password
    set_disabled = staticmethod(accounts.set_disabled)
    delete_user = staticmethod(accounts.delete_user)
    list_users = staticmethod(accounts.list_users)
    # rooms
    create_room = rooms.create_room
    create_room_for = staticmethod(rooms.create_room_for)
    list_rooms = staticmethod(rooms.list_rooms)
    join_room = staticmethod(rooms.join_room)
    leave_room = staticmethod(rooms.leave_room)
    room_members = rooms.room_members
    members_of = rooms.members_of
    delete_room = staticmethod(rooms.delete_room)
    # messages
    history = staticmethod(messages.history)
    messages_since = staticmethod(messages.messages_since)
    room_last_seq = staticmethod(messages.room_last_seq)
    check_rate = messages.check_rate
    post_message = messages.post_message
    # read markers, unread counts, search
    mark_read = markers.mark_read
    annotate_unread = staticmethod(markers.annotate)
    rebuild_search = staticmethod(search.rebuild)  # before `search` names the method here
    search = staticmethod(search.search)
    # control events, housekeeping, health
    control_events_after = staticmethod(control.control_events_after)
    last_control_event = staticmethod(control.last_control_event)
    housekeeping = staticmethod(control.housekeeping)
    ping = staticmethod(control.ping)
