"""Search latency (issue 15): GET /api/search on the generated dataset, both engines.

For each database given: builds the dataset if missing (bench/search_dataset.py),
starts chatd on it, logs in as `reader` (in 200 of the 1,000 rooms) and times
--requests searches of each kind over one keep-alive connection, client-side
(request written to answer parsed), over all the reader's rooms and within one:

  common  hello           (10% of messages)
  rare    zephyrine       (~0.005%)
  two     hello world     (both: ~0.5%)
  prefix  hel             (hello, and every word starting hel...)

    .venv/bin/python bench/search_latency.py \\
        --database sqlite:////tmp/search.db \\
        --database postgresql://postgres@127.0.0.1:5432/chatd_bench_search
"""
import argparse

import requests

import search_dataset as ds

QUERIES = [("common", "hello"), ("rare", "zephyrine"), ("two words", "hello world"),
           ("prefix", "hel")]
SCOPES = [("200 rooms", None), ("one room", "room_1")]


def measure(url, count):
    proc, base = ds.serve(url)
    rows = []
    try:
        session = requests.Session()
        ds.login(session, base)
        for scope, room in SCOPES:
            for kind, q in QUERIES:
                params = {"q": q, "limit": 20}
                if room:
                    params["roomId"] = room
                answer = session.get(base + "/api/search", params=params)
                answer.raise_for_status()
                hits = len(answer.json()["results"])
                times = ds.timed(lambda: session.get(base + "/api/search", params=params), count)
                rows.append((ds.engine_name(url), scope, kind, q, hits,
                             ds.pct(times, 0.5), ds.pct(times, 0.99)))
    finally:
        proc.terminate()
        proc.wait()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", action="append", required=True)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rows = []
    for url in args.database:
        ds.build(url, args.messages)
        rows += measure(url, args.requests)
    print("\nGET /api/search, %d messages, %d requests each, limit 20 (%s)"
          % (args.messages, args.requests, ds.load()))
    print("%-10s %-9s %-9s %-12s %4s %8s %8s" % ("engine", "scope", "query", "q", "hits",
                                                 "p50 ms", "p99 ms"))
    for row in rows:
        print("%-10s %-9s %-9s %-12s %4d %8.1f %8.1f" % row)


if __name__ == "__main__":
    main()
