"""Unread listing latency (issue 15): GET /api/rooms for a user in 200 rooms.

On the generated dataset (bench/search_dataset.py: 1,000,000 messages in
1,000 rooms; `reader` in 200 of them with 15 unread in each, 3,000 in all,
~10% mentioning them), times --requests GET /api/rooms client-side over one
keep-alive connection, and beside it the counting query alone
(storage.markers.counts, in this process) to show its share.

Counts are counted, not kept: per room, the (room, seq) index range after
the marker, minus own and deleted messages; mentions from Mention rows.

    .venv/bin/python bench/unread_latency.py \\
        --database sqlite:////tmp/search.db \\
        --database postgresql://postgres@127.0.0.1:5432/chatd_bench_search
"""
import argparse
import os

import requests

import search_dataset as ds
from chatd.storage import markers, models


def counts_alone(url, count):
    database = models.bind(models.open_database(url, pool_size=1))
    reader = models.User.get(models.User.username_key == "reader").id
    with models.session(database), database.atomic():
        found = markers.counts(reader)
        times = ds.timed(lambda: markers.counts(reader), count)
    unread = sum(row[2] for row in found.values())
    mentions = sum(row[3] for row in found.values())
    models.close()
    return len(found), unread, mentions, times


def endpoint(url, count):
    proc, base = ds.serve(url)
    try:
        session = requests.Session()
        ds.login(session, base)
        listed = session.get(base + "/api/rooms").json()
        times = ds.timed(lambda: session.get(base + "/api/rooms"), count)
        # the same listing for a user in no room: what the counts add is the difference
        idle = requests.Session()
        name = "idle%d" % os.getpid()
        idle.post(base + "/api/register", json={"username": name, "password": ds.PASSWORD})
        token = idle.post(base + "/api/login", json={"username": name,
                                                     "password": ds.PASSWORD}).json()["token"]
        idle.headers["Authorization"] = "Bearer " + token
        baseline = ds.timed(lambda: idle.get(base + "/api/rooms"), count)
    finally:
        proc.terminate()
        proc.wait()
    return len(listed), times, baseline


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", action="append", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    for url in args.database:
        ds.build(url, args.messages)
        rooms, unread, mentions, query = counts_alone(url, args.requests)
        items, answer, baseline = endpoint(url, args.requests)
        rows.append((ds.engine_name(url), rooms, unread, mentions, items,
                     ds.pct(query, 0.5), ds.pct(query, 0.99),
                     ds.pct(answer, 0.5), ds.pct(answer, 0.99),
                     ds.pct(baseline, 0.5), ds.pct(baseline, 0.99)))
    print("\nunread counts, %d messages, %d requests (%s)"
          % (args.messages, args.requests, ds.load()))
    print("%-10s %6s %7s %8s %6s | %-20s | %-22s | %s" % (
        "engine", "rooms", "unread", "mentions", "items", "counts query p50/p99",
        "GET /api/rooms p50/p99", "same, user in no room"))
    for row in rows:
        print("%-10s %6d %7d %8d %6d | %7.1f %7.1f ms %3s | %7.1f %7.1f ms %5s | %7.1f %7.1f ms"
              % (row[:7] + ("",) + row[7:9] + ("",) + row[9:]))


if __name__ == "__main__":
    main()
