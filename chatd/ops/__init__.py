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
(events_since, room_last_seq) before the Chat and its writer exist.
Chat also names every operation once, as a method: the three transports
hold one object and call `chat.login(...)` alike, without knowing which
module holds which rule.
"""
from . import accounts, control, markers, messages, rooms, search, tokens


class Chat:
    def __init__(self, settings, passwords, broker, writer=None, announce=None, to_user=None,
                 take_out=None):
        """writer: the storage.commit.GroupCommit; None in chat-admin, which posts nothing.

        announce(room_pk, event): a sequenced event this process committed, for
        live delivery (the hub's event_stored); to_user(username, event): a
        per-user event (the hub's to_user); take_out(username, room_pk, event):
        unsubscribe every session of the user from the room, then send it the
        per-user event if any (the hub's take_out). None in chat-admin, whose
        changes reach running chatd processes as control events.
        """
        self.settings = settings
        self.passwords = passwords
        self.broker = broker
        self.writer = writer
        self.announce = announce
        self.to_user = to_user
        self.take_out = take_out

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
    join_room = rooms.join_room
    leave_room = rooms.leave_room
    room_members = rooms.room_members
    members_of = rooms.members_of
    check_visible = staticmethod(rooms.check_visible)
    delete_room = staticmethod(rooms.delete_room)
    # rooms with walls: direct rooms, name and topic, members, roles, bans
    open_direct = rooms.open_direct
    update_room = rooms.update_room
    add_member = rooms.add_member
    remove_member = rooms.remove_member
    set_role = rooms.set_role
    room_bans = staticmethod(rooms.room_bans)
    lift_ban = staticmethod(rooms.lift_ban)
    change_password = accounts.change_password
    # messages
    history = staticmethod(messages.history)
    events_since = staticmethod(messages.events_since)
    room_events = staticmethod(messages.room_events)
    room_last_seq = staticmethod(messages.room_last_seq)
    post_message = messages.post_message
    # access tokens and bots
    create_token = staticmethod(tokens.create_token)
    list_tokens = staticmethod(tokens.list_tokens)
    revoke_token = staticmethod(tokens.revoke_token)
    create_bot = staticmethod(tokens.create_bot)
    bot_token = staticmethod(tokens.bot_token)
    list_bots = tokens.list_bots
    delete_bot = staticmethod(tokens.delete_bot)
    edit_message = messages.edit_message
    delete_message = messages.delete_message
    react = messages.react
    unreact = messages.unreact
    # read markers, unread counts, search
    mark_read = markers.mark_read
    rooms_with_unread = markers.rooms_with_unread
    rebuild_search = staticmethod(search.rebuild)  # before `search` names the method here
    search = search.search
    # control events, housekeeping, health
    control_events_after = staticmethod(control.control_events_after)
    last_control_event = staticmethod(control.last_control_event)
    housekeeping = staticmethod(control.housekeeping)
    ping = staticmethod(control.ping)
