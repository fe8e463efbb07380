"""How rooms and names are keyed, each rule once.

A room is `room_<pk>` on the wire (validate.room_id reads it back); names
are unique ignoring case, through a key column with a unique index.
"""


def room_key(room_pk):
    return "room_%d" % room_pk


def user_key(username):
    """Usernames are ASCII (validate.username): lower-casing is their case-folding."""
    return username.lower()


def room_name_key(name):
    return name.casefold()
