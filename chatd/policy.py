"""Who may do what: the one place each transport and operation asks.

Rooms have kinds (public, private, direct) and members have roles, ranked
owner > moderator > member (PROTOCOL section 6). The operator (chat-admin)
acts above every rank. Each question a rule answers is one function here,
asked alike by HTTP, WebSocket and chat-admin through chatd.ops; `role` is
the acting user's role in the room (None when not a member) or OPERATOR.
"""
from .errors import Forbidden
from .keys import room_key

KINDS = ("public", "private")  # what create-room makes; direct rooms come from /api/direct
ROLES = ("owner", "moderator", "member")
OPERATOR = "operator"  # chat-admin: not a member, above every rank
RANK = {None: 0, "member": 1, "moderator": 2, "owner": 3, OPERATOR: 4}


def visible(kind, role):
    """Whether the room exists for someone of this role: a private or direct room
    is invisible to anyone not in it (they get the unknown room's answer)."""
    return kind == "public" or role is not None


def check_member(role, room_pk):
    """Forbidden unless a member (for a public room's history, send, members)."""
    if role is None:
        raise Forbidden("You are not a member of %s." % room_key(room_pk))


def check_may_join(banned):
    """Joining a public room: anyone but a banned user."""
    if banned:
        raise Forbidden("You are banned from this room.")


def check_moderator(role):
    """Rename and topic, adding members, seeing and lifting bans: owner and moderators."""
    if RANK[role] < RANK["moderator"]:
        raise Forbidden("Only the room's owner or a moderator may do that.")


def check_not_direct(kind):
    """A direct room is its two users, with no roles, forever."""
    if kind == "direct":
        raise Forbidden("A direct room is its two users only.")


def check_may_add(role, kind):
    """Putting a user in a room: an owner or moderator, never in a direct room."""
    check_moderator(role)
    check_not_direct(kind)


def check_not_banned(banned):
    """Nobody adds a banned user back: the ban is lifted first."""
    if banned:
        raise Forbidden("That user is banned from this room; lift the ban first.")


def check_may_remove(role, target_role):
    """Taking someone else out of a room: an owner or moderator of a higher rank
    (taking oneself out is leaving)."""
    check_moderator(role)
    if RANK[role] <= RANK[target_role]:
        raise Forbidden("You may only remove members of a lower rank.")


def check_may_ban(role, kind, target_role):
    """Banning: an owner or moderator, over lower ranks (a non-member is lowest)."""
    check_moderator(role)
    check_not_direct(kind)
    if RANK[role] <= RANK[target_role]:
        raise Forbidden("You may only ban users of a lower rank.")


def check_may_set_role(role, kind, is_self):
    """Role changes and handing over: the owner (or the operator), never on oneself."""
    if RANK[role] < RANK["owner"]:
        raise Forbidden("Only the room's owner may change roles.")
    check_not_direct(kind)
    if is_self:
        raise Forbidden("You cannot change your own role; hand the room over instead.")


def check_can_delete(role, is_sender):
    """Deleting a message: its sender, or the room's owner or a moderator."""
    if not is_sender and RANK[role] < RANK["moderator"]:
        raise Forbidden("Only the sender, the room's owner or a moderator may delete it.")
