"""Issue 11's fragment attack: what unfinished fragmented messages cost chatd's memory.

Starts chatd (pinned to core 0) or uses --url/--pid, then opens --connections
WebSockets that each send a text frame without FIN and --fragments one-byte
continuation frames, never the last one, then a ping. It prints chatd's
resident memory (VmRSS) before, once every connection's ping has been
answered (or the server closed it), and after the connections are gone.

    bench/.venv/bin/python bench/fragments_rss.py               # 100 x 65,000 fragments
    bench/.venv/bin/python bench/fragments_rss.py --connections 20 --fragments 10000
    bench/.venv/bin/python bench/fragments_rss.py --url http://127.0.0.1:8080 --pid 1234

Before issue 11 the parts were kept in a list: 100 x 65,000 took chatd from
64 to 424 MB and 218 MB stayed after they closed. A message now has at most
[websocket] max_fragments frames (closed 1009 past it), joined as they come.
"""
import argparse
import os
import sys
import tempfile
import threading
import time

from rss_idle import raise_nofile, vm_rss_kib
from run_fanout import CHATD_ENV, CHATD_PY, start_server, stop_server
from wsclient import (OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, chat_path, connect, login_user,
                      mask_frame, split_frames)

PASSWORD = "bench-password-1"
OP_CONT = 0x0


def unfinished(opcode, payload):
    frame = bytearray(mask_frame(opcode, payload))
    frame[0] &= 0x7F  # FIN off
    return bytes(frame)


def attack(conn, blob):
    """Send the fragments and a ping; return how it ended: pong, close CODE or eof."""
    conn.sock.settimeout(120)
    try:
        conn.sock.sendall(blob)
        conn.sock.sendall(mask_frame(OP_PING, b"done?"))
    except OSError:
        pass  # closed while we wrote: read why
    buf = conn.buf
    try:
        while True:
            end, control = split_frames(buf)
            for opcode, payload in control or ():
                if opcode == OP_PONG:
                    return "pong"
                if opcode == OP_CLOSE:
                    return "close %d" % int.from_bytes(payload[:2], "big")
            buf = buf[end:]
            chunk = conn.sock.recv(65536)
            if not chunk:
                return "eof"
            buf += chunk
    except OSError:
        return "eof"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--fragments", type=int, default=65000)
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--url", help="a chatd already running (http://HOST:PORT)")
    ap.add_argument("--pid", type=int, help="its pid, to read its memory")
    ap.add_argument("--server-core", type=int, default=0)
    args = ap.parse_args()
    raise_nofile(args.connections)
    proc = None
    if args.url:
        if not args.pid:
            sys.exit("--url needs --pid")
        base, pid = args.url.rstrip("/"), args.pid
        host, port = base.split("//")[1].split(":")
        port = int(port)
    else:
        tmpdir = tempfile.mkdtemp(prefix="fragments-rss-")
        db = "sqlite:///" + os.path.join(tmpdir, "rss.db")
        proc, (host, port) = start_server([CHATD_PY, "-m", "chatd", "--port", "0",
                                           "--database", db], CHATD_ENV,
                                          os.path.join(tmpdir, "chatd.log"), args.server_core)
        base, pid = "http://%s:%d" % (host, port), proc.pid
    try:
        token = login_user(base, "frag%x" % int(time.time() * 1000), PASSWORD)
        conns = [connect(host, port, chat_path(token)) for _ in range(args.connections)]
        time.sleep(1)
        before = vm_rss_kib(pid)
        blob = unfinished(OP_TEXT, b"[") + unfinished(OP_CONT, b" ") * args.fragments
        endings = [None] * len(conns)

        def worker(k):
            for i in range(k, len(conns), args.threads):
                endings[i] = attack(conns[i], blob)

        started = time.monotonic()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        during = vm_rss_kib(pid)
        took = time.monotonic() - started
        for conn in conns:
            conn.sock.close()
        time.sleep(2)
        after = vm_rss_kib(pid)
    finally:
        if proc is not None:
            stop_server(proc)
    counts = {}
    for ending in endings:
        counts[ending] = counts.get(ending, 0) + 1
    print("%d connections x %d one-byte fragments, never finished (%.1f s)"
          % (args.connections, args.fragments, took))
    print("connections ended: %s" % ", ".join("%s: %d" % kv for kv in sorted(counts.items())))
    print("chatd VmRSS  before %7.1f MB   during %7.1f MB   after %7.1f MB"
          % (before / 1024, during / 1024, after / 1024))


if __name__ == "__main__":
    main()
