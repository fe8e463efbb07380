"""Does search indexing stall chat? (issue 15) Message p99 at 20,000 deliveries/s,
indexing on vs off, in the same run, alternating.

Each round starts chatd (pinned to core 0) on a fresh database, with the
search index as chatd makes it (on), or with its schema objects dropped
before chatd starts (off: on SQLite the FTS5 table becomes a plain table, so
the writer's catch-up copies rows without tokenizing them; on PostgreSQL the
GIN index is dropped; an up-to-date schema is not touched again by chatd's
start), and
runs bench/loadgen.py (pinned to core 1) at one step: 10 rooms x 20 members,
2 senders a room at 50 messages/s each = 1,000 messages/s = 20,000 deliveries/s.

    .venv/bin/python bench/search_indexing.py                 # SQLite
    .venv/bin/python bench/search_indexing.py --postgresql    # and PostgreSQL
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import run_fanout as rf

sys.path.insert(0, rf.REPO)
from chatd.storage import migrations, models  # noqa: E402
import search_dataset as ds  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/"


def fresh_database(engine, tmpdir, name, indexed):
    if engine == "sqlite":
        url = "sqlite:///" + os.path.join(tmpdir, name + ".db")
    else:
        subprocess.run(["psql", PG_ADMIN + "postgres", "-qc", "DROP DATABASE IF EXISTS %s" % name],
                       check=True)
        subprocess.run(["psql", PG_ADMIN + "postgres", "-qc", "CREATE DATABASE %s" % name],
                       check=True)
        url = PG_ADMIN + name
    database = models.bind(models.open_database(url, pool_size=1))
    migrations.migrate()
    if not indexed:
        index_off(database, engine == "sqlite")
    models.close()
    return url


def index_off(database, sqlite):
    if sqlite:
        # The writer's catch-up still runs and moves senders' markers, but the
        # rows it copies go to a plain table: nothing is tokenized or merged.
        ds._drop_index(database, sqlite)
        database.execute_sql("DROP TABLE message_fts")
        database.execute_sql("CREATE TABLE message_fts (text TEXT, room TEXT)")
    else:
        ds._drop_index(database, sqlite)


def one_round(url, tmpdir, label, args):
    argv = [rf.CHATD_PY, "-m", "chatd", "--port", "0", "--database", url]
    log = os.path.join(tmpdir, label + ".log")
    proc, addr = rf.start_server(argv, rf.CHATD_ENV, log, args.server_core)
    out = os.path.join(tmpdir, label + ".json")
    try:
        subprocess.run(["taskset", "-c", str(args.loadgen_core), sys.executable,
                        os.path.join(rf.BENCH, "loadgen.py"), "--url", "ws://%s:%d" % addr,
                        "--target", "chatd", "--server-pid", str(proc.pid), "--json", out,
                        "--rates", "50", "--warmup", "2", "--measure", str(args.measure),
                        "--tail", "1", "--max-others", "1", "--retries", "0",
                        "--run-id", label[-6:]],
                       check=True, stdout=subprocess.DEVNULL)
    finally:
        rf.stop_server(proc)
    with open(out) as f:
        step = json.load(f)["steps"][0]
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgresql", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", type=float, default=5.0)
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--loadgen-core", type=int, default=1)
    args = parser.parse_args()
    engines = ["sqlite"] + (["postgresql"] if args.postgresql else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for engine in engines:
            for n in range(args.rounds):
                for indexed in (True, False):
                    label = "idx_%s_%s_%d" % (engine[:2], "on" if indexed else "off", n)
                    url = fresh_database(engine, tmpdir, label, indexed)
                    step = one_round(url, tmpdir, label, args)
                    rows.append((engine, "on" if indexed else "off", n, step))
    print("\nmessage latency at 20,000 deliveries/s, indexing on vs off (%s)" % ds.load())
    print("%-10s %-5s %5s %12s %10s %8s %8s %8s" % ("engine", "index", "round", "delivered/s",
                                                     "fraction", "p50 ms", "p99 ms", "others"))
    for engine, mode, n, s in rows:
        others = max(s.get("server_core_others") or 0, s.get("loadgen_core_others") or 0)
        print("%-10s %-5s %5d %12.0f %10.3f %8s %8s %7.0f%%" % (
            engine, mode, n, s["delivered_per_s"], s["fraction"], ms(s["p50_ms"]),
            ms(s["p99_ms"]), others * 100))
    print("(p50/p99: send to receipt; '-': deliveries missing, counted as infinitely late;"
          " others: the largest share of a pinned core other processes took)")


def ms(value):
    return "-" if value is None else "%.2f" % value


if __name__ == "__main__":
    main()
