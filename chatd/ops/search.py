"""Search over the messages of the rooms a user is in (PROTOCOL.md section 9)."""
from .. import searchquery, validate
from ..events import iso
from ..keys import room_key
from ..storage import models, search as index
from ..storage.models import transaction
from .rooms import member_room

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def search(chat, user, q, room_id=None, limit=None, cursor=None):
    """{"results": [...], "next": cursor or None}, newest first.

    Only rooms the user is in now (a room left or banned from drops out);
    deleted messages never, edited ones by their current text; every
    message stored before the search (the writer indexes what waits first).
    """
    query = searchquery.parse(q)
    limit = DEFAULT_LIMIT if limit is None else validate.integer(limit, "limit", 1, MAX_LIMIT,
                                                                 text=True)
    before = searchquery.decode_cursor(cursor) if cursor is not None else None
    if chat.writer is not None:
        chat.writer.catch_up_now()
    rows = _rows(user, query, room_id, before, limit + 1)
    results = [_result(row) for row in rows[:limit]]
    following = searchquery.encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    return {"results": results, "next": following}


@transaction
def _rows(user, query, room_id, before, limit):
    room_pk = member_room(user, room_id).id if room_id is not None else None
    return index.engine().search(user.id, query, room_pk, before, limit)


def _result(row):
    _id, room_pk, room_name, seq, sender, text, created_at = row
    return {"roomId": room_key(room_pk), "roomName": room_name, "id": seq, "sender": sender,
            "message": text, "timestamp": iso(created_at)}


def rebuild():
    """Rebuild the search index from the stored messages (chat-admin history reindex)."""
    index.engine().rebuild(models.proxy.obj)
