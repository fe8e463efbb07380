"""Control events ride an ordered stream (issue 13): on PostgreSQL a serial id can commit
after a larger one, so a poller following `id > last` skipped an event forever. With the
stream's seq taken under a row lock, numbers commit in order: two writers where the one
that started first commits last, and the poller still sees both."""
import threading

import psycopg2
import pytest

import services
from helpers import wait_for


@pytest.fixture
def pg(tmp_path):
    with services.postgres_database() as url:
        from chatd.storage import migrations, models
        models.bind(models.open_database(url))
        migrations.migrate()
        try:
            yield url
        finally:
            models.close()


def lock_waiters(url):
    """How many sessions of this database wait for a lock right now."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'")
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_a_poller_sees_an_event_whose_writer_committed_after_a_later_one(pg):
    from chatd.storage import control, models
    db = models.proxy.obj
    appended, release, late_done = threading.Event(), threading.Event(), threading.Event()
    failures = []

    def writer(kind, hold):
        try:
            with db.connection_context(), db.atomic():
                control.append(kind)
                if hold:
                    appended.set()
                    release.wait(30)
        except Exception as exc:  # reported below
            failures.append(exc)
        finally:
            late_done.set() if not hold else None

    first = threading.Thread(target=writer, args=("first-started", True))
    first.start()
    assert appended.wait(10)
    second = threading.Thread(target=writer, args=("second-started", False))
    second.start()
    # the second either committed already (serial ids) or waits for the first's lock
    wait_for(lambda: late_done.is_set() or lock_waiters(pg) > 0, 10)

    seen, last = [], 0
    with db.connection_context():
        for last, kind, _payload in control.after(last):
            seen.append(kind)
    release.set()
    first.join(10), second.join(10)
    assert not failures, failures
    with db.connection_context():
        for last, kind, _payload in control.after(last):
            seen.append(kind)
    assert sorted(seen) == ["first-started", "second-started"]
