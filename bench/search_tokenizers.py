"""FTS5 tokenizers for CJK (issue 15): unicode61 (chatd's) against trigram.

unicode61 does not segment CJK (a run without spaces is one token); trigram
indexes every 3-character substring, so it finds words inside a run, but
not a query word shorter than 3 characters (most Chinese words are 2) and it
neither folds accents (before SQLite 3.45) nor matches whole words. This
measures what trigram would cost: index size, build time per message and
query time, on N generated messages (a tenth holding CJK text).

    .venv/bin/python bench/search_tokenizers.py --messages 200000
"""
import argparse
import os
import random
import sqlite3
import tempfile
import time

import search_dataset as ds

CJK = "的一是不了人我在有他这中大来上个国到说们为子和你地出会也时要就可下"


def messages(n, rng):
    for i, text in enumerate(ds.texts(rng, n)):
        if i % 10 == 0:
            text += " " + "".join(rng.choice(CJK) for _ in range(rng.randint(4, 20)))
        yield i + 1, text


def build(path, tokenizer, rows):
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(text, content='', tokenize='%s')" % tokenizer)
    started = time.perf_counter()
    with conn:
        conn.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)", rows)
    return conn, time.perf_counter() - started


def query_ms(conn, match, count=50):
    times = []
    for _ in range(count):
        started = time.perf_counter()
        conn.execute("SELECT rowid FROM f WHERE f MATCH ? ORDER BY rowid DESC LIMIT 21",
                     (match,)).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200000)
    args = parser.parse_args()
    rows = list(messages(args.messages, random.Random(15)))
    print("%-28s %9s %9s  %s" % ("tokenizer", "build s", "size MB", "query p50/p99 ms"))
    with tempfile.TemporaryDirectory() as tmp:
        for tokenizer in ("unicode61 remove_diacritics 2", "trigram"):
            path = os.path.join(tmp, tokenizer.split()[0] + ".db")
            conn, seconds = build(path, tokenizer, rows)
            size = os.path.getsize(path) / 1e6
            figures = []
            for match in ('"hello"', '"hel"*' if tokenizer != "trigram" else '"hel"',
                          '"%s"' % CJK[3:6]):
                figures.append("%s %.1f/%.1f" % ((match,) + query_ms(conn, match)))
            print("%-28s %9.1f %9.1f  %s" % (tokenizer, seconds, size, "; ".join(figures)))
            conn.close()


if __name__ == "__main__":
    main()
