"""Who a message mentions: `@name`, parsed once, resolved against the room's members.

A mention is `@` followed by the characters a username may hold
(A-Z a-z 0-9 _ . -), with trailing `.` and `-` dropped so that "thanks @bob."
names bob. The `@` must not follow one of those characters itself: the
`@` in "mail bob@example.com" is an address, not a mention.
"""
import re

_MENTION = re.compile(r"(?<![A-Za-z0-9_.\-])@([A-Za-z0-9_.\-]+)")


def candidates(text):
    """Lower-cased names after each `@`, once each, in order of first appearance."""
    seen = {}
    for match in _MENTION.finditer(text):
        key = match.group(1).rstrip(".-").lower()
        if key:
            seen.setdefault(key, None)
    return list(seen)


def resolve(text, members_by_key):
    """The mentioned members' names as registered, in order; members_by_key maps
    a lower-cased username to the username as registered."""
    return [members_by_key[key] for key in candidates(text) if key in members_by_key]
