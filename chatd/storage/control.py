"""Control events: changes one process writes that every chatd must act on."""
import json

import peewee as pw

from .models import ControlEvent, now_ms


def append(kind, **payload):
    ControlEvent.create(kind=kind, payload=json.dumps(payload), created_at=now_ms())


def after(last_id, limit=1000):
    """(id, kind, payload) of the events after last_id, oldest first."""
    rows = (ControlEvent.select().where(ControlEvent.id > last_id)
            .order_by(ControlEvent.id).limit(limit))
    return [(row.id, row.kind, json.loads(row.payload)) for row in rows]


def last_id():
    return ControlEvent.select(pw.fn.MAX(ControlEvent.id)).scalar() or 0


def delete_before(created_at):
    ControlEvent.delete().where(ControlEvent.created_at < created_at).execute()
