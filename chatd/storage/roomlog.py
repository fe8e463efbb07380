"""The room log: every sequenced change to a room takes the room's next seq.

A new message's row in `message` is its own log entry (the hot path writes
nothing more); every other change (edit, deletion, reaction, membership,
role, name or topic) appends one `room_event` row here, in the transaction
that makes the change. The UPDATE ... RETURNING of the room's counter
row-locks the room on PostgreSQL until commit, so seqs commit in order on
every engine and a reader that follows `seq > last` never skips one.
"""
import json

from .models import RoomEvent, execute, now_ms

_BUMP = 'UPDATE "room" SET "last_seq" = "last_seq" + 1 WHERE "id" = ? RETURNING "last_seq"'


def append(room_pk, kind, actor_pk, data, message_seq=None, text=None):
    """Append one change to the room's log; (seq, created_at ms). Inside a transaction."""
    seq = execute(_BUMP, (room_pk,)).fetchone()[0]
    created_at = now_ms()
    RoomEvent.insert(room=room_pk, seq=seq, kind=kind, actor=actor_pk, message_seq=message_seq,
                     text=text, data=json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                     created_at=created_at).execute()
    return seq, created_at
