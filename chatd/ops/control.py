"""Control events for other processes, housekeeping, and the database's health."""
from ..storage import control, models, users
from ..storage.models import now_ms, transaction

CONTROL_EVENT_TTL = 3600 * 1000  # ms every process has long seen a control event after


@transaction
def control_events_after(last_seq):
    """(seq, kind, payload) of the control events after last_seq, in order."""
    return control.after(last_seq)


@transaction
def last_control_event():
    return control.last_seq()


@transaction
def housekeeping():
    """Drop expired tokens, and control events every process has long seen."""
    now = now_ms()
    users.delete_expired_tokens(now)
    control.delete_before(now - CONTROL_EVENT_TTL)


def ping():
    """Whether the database answers (see models.probe)."""
    try:
        models.probe()
        return True
    except Exception:
        return False
