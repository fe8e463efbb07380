"""A generated chat database for the search and unread benches (issue 15).

N messages (default 1,000,000) in 1,000 rooms, interleaved (message i is in
room i % 1000, so ids mix rooms as a busy server's do), written straight
into the tables in bulk; then the search index is built once from them (the
triggers/index are made after the rows: far faster than per row).

One reader, `reader` / password `correct horse`, is in 200 rooms (public; the
other 800 are private), with 15
messages unread in each (3,000 in all) of which about 1 in 10 mentions them.
Texts are 6-14 words from a 20,000-word vocabulary drawn by a Zipf-like law,
plus marked words at known rates for the queries:

  common   "hello"      in 10% of messages
  two      "hello world" ("world" in 5%: both in about 0.5%)
  rare     "zephyrine"  in about 0.005% (~50 messages)
  prefix   "hel"        (hello and every vocabulary word starting hel...)

    .venv/bin/python bench/search_dataset.py --database sqlite:////tmp/search.db
    .venv/bin/python bench/search_dataset.py --database postgresql://postgres@127.0.0.1/chatd_bench_search

A database that already holds a dataset (the reader exists) is kept as is.
"""
import argparse
import io
import itertools
import os
import random
import string
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from chatd import auth  # noqa: E402
from chatd.storage import migrations, models, search_pg, search_sqlite  # noqa: E402

ROOMS = 1000
READER_ROOMS = 200
UNREAD_PER_ROOM = 15
SENDERS = 100
PASSWORD = "correct horse"
BASE_MS = 1_700_000_000_000


def vocabulary(rng, size=20000):
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9))))
    words -= {"hello", "world", "zephyrine"}
    return sorted(words)


def texts(rng, n):
    vocab = vocabulary(rng)
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))
    for _ in range(n):
        words = rng.choices(vocab, cum_weights=cumulative, k=rng.randint(6, 14))
        if rng.random() < 0.10:
            words.insert(rng.randrange(len(words)), "hello")
        if rng.random() < 0.05:
            words.insert(rng.randrange(len(words)), "world")
        if rng.random() < 0.00005:
            words.insert(rng.randrange(len(words)), "zephyrine")
        yield " ".join(words)


def message_rows(n, sender_pks, reader_pk, rng):
    """(room_id, seq, sender_id, text, created_at) in id order."""
    for i, text in enumerate(texts(rng, n)):
        room = i % ROOMS + 1
        sender = reader_pk if rng.random() < 0.01 else rng.choice(sender_pks)
        yield room, i // ROOMS + 1, sender, text, BASE_MS + i


def reader_exists():
    return models.User.select().where(models.User.username_key == "reader").exists()


def build(url, n, seed=15):
    database = models.bind(models.open_database(url, pool_size=2))
    migrations.migrate()
    if reader_exists():
        print("dataset present in %s" % models.describe(url))
        return
    started = time.monotonic()
    rng = random.Random(seed)
    now = BASE_MS
    password_hash = auth.Passwords(threads=0).hash(PASSWORD)
    with database.atomic():
        reader = models.User.create(username="reader", username_key="reader",
                                    password_hash=password_hash, created_at=now)
        senders = [models.User.create(username="s%d" % k, username_key="s%d" % k,
                                      created_at=now).id for k in range(SENDERS)]
        per_room = n // ROOMS
        models.Room.insert_many(
            [{"id": r, "name": "room %d" % r, "name_key": "room %d" % r, "created_at": now,
              "last_seq": per_room + (1 if r <= n % ROOMS else 0),
              # the reader's rooms public, the others private: GET /api/rooms then
              # lists the reader's 200 (once rooms have kinds, issue 14), not 1,000
              "kind": "public" if r <= READER_ROOMS else "private"}
             for r in range(1, ROOMS + 1)]
        ).execute()
    sqlite = url.startswith("sqlite")
    _drop_index(database, sqlite)
    rows = message_rows(n, senders, reader.id, rng)
    if sqlite:
        with database.atomic():
            database.cursor().executemany(
                'INSERT INTO "message" ("room_id", "seq", "sender_id", "text", "created_at") '
                "VALUES (?, ?, ?, ?, ?)", rows)
    else:
        _copy_pg(database, rows)
    print("messages written: %.0f s" % (time.monotonic() - started))
    _reader_state(database, reader.id, rng)
    started = time.monotonic()
    if sqlite:
        search_sqlite.rebuild(database)
        database.execute_sql("ANALYZE")
    else:
        database.execute_sql("SET maintenance_work_mem = '256MB'")
        search_pg.ensure(database)
        database.execute_sql("VACUUM ANALYZE")
    print("search index built: %.0f s" % (time.monotonic() - started))


def _drop_index(database, sqlite):
    if sqlite:
        for name in ("insert", "delete", "update"):
            database.execute_sql("DROP TRIGGER IF EXISTS message_fts_%s" % name)
    else:
        database.execute_sql("DROP INDEX IF EXISTS message_search")


def _copy_pg(database, rows):
    cursor = database.connection().cursor()
    while True:
        chunk = list(itertools.islice(rows, 100000))
        if not chunk:
            break
        buf = io.StringIO("".join("%d\t%d\t%d\t%s\t%d\n" % row for row in chunk))
        cursor.copy_expert('COPY "message" ("room_id", "seq", "sender_id", "text", "created_at") '
                           "FROM STDIN", buf)
    database.connection().commit()


def _reader_state(database, reader_pk, rng):
    """Memberships in rooms 1..200, 15 unread in each; Mention rows for some of those."""
    with database.atomic():
        last = dict(models.Room.select(models.Room.id, models.Room.last_seq).tuples())
        models.Membership.insert_many(
            [{"user": reader_pk, "room": r, "joined_at": BASE_MS,
              "read_upto": last[r] - UNREAD_PER_ROOM} for r in range(1, READER_ROOMS + 1)]
        ).execute()
        mentions = [{"user": reader_pk, "room": r, "message_seq": seq}
                    for r in range(1, READER_ROOMS + 1)
                    for seq in range(last[r] - UNREAD_PER_ROOM + 1, last[r] + 1)
                    if rng.random() < 0.1]
        models.Mention.insert_many(mentions).execute()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    args = parser.parse_args()
    build(args.database, args.messages)


if __name__ == "__main__":
    main()


# -- running chatd on a dataset, timing its answers ----------------------------------
def serve(url):
    """A chatd process on the dataset (subprocess.Popen, its base URL)."""
    import re
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "chatd", "--port", "0", "--database", url],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, CHATD_LOG_LEVEL="warning"))
    for line in proc.stderr:
        found = re.search(r"listening on (http://[^\s\"]+)", line)
        if found:
            return proc, found.group(1)
    raise RuntimeError("chatd did not start")


def login(session, base):
    r = session.post(base + "/api/login", json={"username": "reader", "password": PASSWORD})
    r.raise_for_status()
    session.headers["Authorization"] = "Bearer " + r.json()["token"]


def timed(call, count, warmup=5):
    """Milliseconds of `count` calls (after a few untimed ones), sorted."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return sorted(times)


def pct(times, q):
    return times[min(len(times) - 1, int(len(times) * q))]


def engine_name(url):
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def load():
    """The load averages, to note beside the figures: the machine is shared."""
    return "load %.2f %.2f %.2f on %d cores" % (os.getloadavg() + (os.cpu_count(),))
