"""chatd: settings, database, app and server; signals. Run as `chatd` or `python -m chatd`."""
from gevent import monkey

monkey.patch_all()
from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()  # psycopg2 waits through gevent's hub: one slow query stalls no one else

import argparse  # noqa: E402
import logging  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.pool import Pool  # noqa: E402
from gevent.pywsgi import WSGIServer  # noqa: E402

from . import auth, broker as brokers, config, fdlimit, http_api, models, ops, ws, wsproto  # noqa: E402
from .hub import Hub  # noqa: E402
from .metrics import Metrics  # noqa: E402

log = logging.getLogger("chatd")
CONTROL_POLL = 0.5  # seconds: how soon chat-admin's changes reach live sessions
CLOSE_GRACE = 2.0  # seconds peers get to answer the 1001 close at shutdown
HOUSEKEEPING_POLLS = 1200  # every 10 minutes: drop expired tokens and old control events


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="chatd", description="The chatd chat server.")
    parser.add_argument("--config", help="path to config.ini")
    parser.add_argument("--host", help="address to listen on")
    parser.add_argument("--port", help="port to listen on (0: any free port)")
    parser.add_argument("--database", help="sqlite:///file.db or postgresql://user@host/db")
    parser.add_argument("--broker", help="memory:// or redis://host:port/db")
    return parser.parse_args(argv)


def load_settings(args):
    return config.load(args.config, overrides={
        ("server", "host"): args.host, ("server", "port"): args.port,
        ("database", "url"): args.database, ("broker", "url"): args.broker})


def build_service(settings):
    """Everything a chatd process holds, wired bottom-up."""
    models.bind(models.open_database(settings.database.url, settings.database.pool_size))
    models.migrate()
    broker = brokers.open_broker(settings.broker.url)
    chat = ops.Chat(settings, auth.Passwords(settings.auth.hash_threads), broker)
    sessions = set()
    metrics = Metrics(lambda: len(sessions), lambda: hub.room_count())
    hub = Hub(broker, chat.messages_since, chat.room_last_seq, stats=metrics)
    chat.writer.on_stored = metrics.timed(hub.message_stored)
    return SimpleNamespace(settings=settings, chat=chat, hub=hub, broker=broker,
                           sessions=sessions, metrics=metrics)


def watch_control_events(service):
    """Act on changes other processes (chat-admin, other chatd) wrote to the database."""
    chat = service.chat
    last = chat.last_control_event()
    polls = 0
    while True:
        gevent.sleep(CONTROL_POLL)
        polls += 1
        try:
            for last, kind, payload in chat.control_events_after(last):
                apply_control_event(service, kind, payload)
            if polls % HOUSEKEEPING_POLLS == 0:
                chat.housekeeping()
        except Exception:
            log.exception("control events: the database did not answer")


def apply_control_event(service, kind, payload):
    if kind == "user_sessions_end":
        name = payload["username"]
        ws.end_sessions(service.sessions, lambda s: s.username == name, "session ended")
    elif kind == "token_revoked":
        hashed = payload["token_hash"]
        ws.end_sessions(service.sessions, lambda s: s.token_hash == hashed, "logged out")
    elif kind == "room_deleted":
        for session in service.hub.close_room(payload["room"]):
            session.room_deleted(payload["room"])


def ws_gate(settings, metrics):
    def gate(environ):
        if environ.get("PATH_INFO") != "/chat":
            return refuse(environ, "404 Not Found",
                          b'{"status":"error","error":"not_found","message":"No such route."}')
        if not ws.origin_allowed(environ, settings.server.allowed_origins):
            metrics.rejected("origin")
            return refuse(environ, "403 Forbidden",
                          b'{"status":"error","error":"forbidden","message":"Origin not allowed."}')
        return None

    def refuse(environ, status, body):
        log.info("%s GET %s %s upgrade refused (Origin %s)", secrets.token_hex(6),
                 environ.get("PATH_INFO"), status[:3], environ.get("HTTP_ORIGIN"))
        return status, body
    return gate


def serve(settings):
    service = build_service(settings)
    app = http_api.RequestLog(http_api.build(service), service.metrics.http_request)
    server = WSGIServer((settings.server.host, settings.server.port), app,
                        handler_class=wsproto.Handler, log=None, error_log=None,
                        spawn=Pool(settings.server.max_connections))
    fdlimit.AcceptGuard(server, service.metrics.registry, log)
    server.ws_gate = ws_gate(settings, service.metrics)
    server.ws_app = lambda handler: ws.serve(service, handler)
    server.start()
    host, port = server.address[:2]
    # Scripts and tests wait for this line: it is logged whatever [log] level says.
    log.log(max(logging.INFO, log.getEffectiveLevel()), "listening on http://%s:%d",
            host if ":" not in host else "[%s]" % host, port)
    notify_systemd("READY=1")
    gevent.spawn(watch_control_events, service)
    ws.Sweeper(service.sessions, settings)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    stopping.wait()
    shutdown(server, service, settings)


def shutdown(server, service, settings):
    """Stop accepting, close sockets with 1001, let writes finish, then go."""
    log.info("shutting down")
    notify_systemd("STOPPING=1")
    deadline = time.monotonic() + settings.server.shutdown_timeout
    server.close()
    wsproto.close_idle(server)
    for session in tuple(service.sessions):
        session.conn.close(wsproto.CLOSE_GOING_AWAY, "server shutting down")
    # Peers answer the close at once; one that does not (or does not read)
    # must not hold the exit past the timeout: drop it after a grace.
    grace_end = time.monotonic() + min(CLOSE_GRACE, settings.server.shutdown_timeout / 2)
    while service.sessions and time.monotonic() < grace_end:
        gevent.sleep(0.05)
    for session in tuple(service.sessions):
        session.conn.abort()
    server.stop(timeout=max(0.1, deadline - time.monotonic()))
    service.broker.stop()
    service.chat.writer.close()
    models.close()
    log.info("stopped")


def notify_systemd(state):
    """sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET."""
    import os
    import socket
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(state.encode(), path)
        except OSError as exc:
            log.warning("cannot notify systemd: %s", exc)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args)
    except ValueError as exc:
        print("chatd: %s" % exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log.level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fdlimit.raise_nofile(log)
    try:
        serve(settings)
    except (OSError, ValueError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
