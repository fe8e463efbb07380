"""Control events: changes one process writes that every chatd must act on.

They ride one ordered stream: each takes the next number from control_stream's
one row, bumped in the writing transaction. The row lock holds until commit,
so numbers commit in order and a reader following `seq > last` never skips one
(a serial id may commit after a larger one on PostgreSQL).
"""
import json

from .models import ControlEvent, ControlStream, now_ms, proxy

_BUMP = 'UPDATE "%s" SET "last" = "last" + 1 RETURNING "last"' % ControlStream._meta.table_name


def append(kind, **payload):
    """One control event; inside the transaction that makes the change."""
    seq = proxy.obj.execute_sql(_BUMP).fetchone()[0]
    ControlEvent.create(kind=kind, payload=json.dumps(payload), created_at=now_ms(), seq=seq)


def after(last_seq, limit=1000):
    """(seq, kind, payload) of the events after last_seq, in order."""
    rows = (ControlEvent.select(ControlEvent.seq, ControlEvent.kind, ControlEvent.payload)
            .where(ControlEvent.seq > last_seq).order_by(ControlEvent.seq).limit(limit).tuples())
    return [(seq, kind, json.loads(payload)) for seq, kind, payload in rows]


def last_seq():
    return ControlStream.select(ControlStream.last).scalar() or 0


def delete_before(created_at):
    ControlEvent.delete().where(ControlEvent.created_at < created_at).execute()
