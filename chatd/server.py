"""chatd: settings, database, app and server; signals. Run as `chatd` or `python -m chatd`."""
from gevent import monkey

monkey.patch_all()
from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()  # psycopg2 waits through gevent's hub: one slow query stalls no one else

import argparse  # noqa: E402
import errno  # noqa: E402
import gc  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402

import peewee as pw  # noqa: E402

from . import __version__, auth, brokers, config, errors, fdlimit, http_api, logs, logsafe, ops, systemd, ws, wscodec, wsproto  # noqa: E402,E501
from .storage import migrations, models  # noqa: E402
from .storage.commit import GroupCommit  # noqa: E402
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
    parser.add_argument("--version", action="version", version="chatd " + __version__)
    return parser.parse_args(argv)


class StartupError(Exception):
    """chatd cannot start; the message says what and where, in one line."""


def load_settings(args):
    return config.load(args.config, overrides={
        ("server", "host"): args.host, ("server", "port"): args.port,
        ("database", "url"): args.database, ("broker", "url"): args.broker})


def build_service(settings):
    """Everything a chatd process holds, wired bottom-up; the broker starts last."""
    open_storage(settings.database)
    broker = brokers.open_broker(settings.broker.url)
    log.info("chatd %s: database %s, broker %s", __version__,
             models.describe(settings.database.url), models.describe(settings.broker.url))
    sessions = set()
    metrics = Metrics(lambda: len(sessions), lambda: hub.room_count())
    hub = Hub(broker, ops.messages.events_since, ops.messages.room_last_seq, stats=metrics)
    writer = GroupCommit(on_stored=hub.message_stored)
    chat = ops.Chat(settings, auth.Passwords(settings.auth.hash_threads), broker, writer,
                    announce=hub.event_stored, to_user=hub.to_user, take_out=hub.take_out)
    broker.start(hub.on_remote)
    return SimpleNamespace(settings=settings, chat=chat, hub=hub, broker=broker,
                           sessions=sessions, metrics=metrics)


def open_storage(database):
    """Bind and migrate the database, or a StartupError naming it and why."""
    try:
        models.bind(models.open_database(database.url, database.pool_size))
        before, now = migrations.migrate()
    except (pw.DatabaseError, pw.InterfaceError, errors.Unavailable) as exc:
        exc = exc.__cause__ or exc  # Unavailable: the driver's error says why
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise StartupError("cannot open the database %s: %s%s" % (
            models.describe(database.url), reason, _missing_folder(database.url)))
    except RuntimeError as exc:  # a schema newer than this chatd
        raise StartupError("cannot use the database %s: %s" % (models.describe(database.url), exc))
    if before is not None and before != now:
        log.info("database schema upgraded from version %d to %d", before, now)


def _missing_folder(url):
    path = models.sqlite_path(url)
    folder = os.path.dirname(os.path.abspath(path)) if path else None
    return " (folder %s does not exist)" % folder if folder and not os.path.isdir(folder) else ""


def watch_control_events(service):
    """Act on changes other processes (chat-admin, other chatd) wrote to the database,
    following the control stream's seq (which commits in order: nothing is skipped)."""
    chat = service.chat
    last = chat.last_control_event()
    polls = 0
    failures = logs.Throttle(log, "control events: the database did not answer")
    while True:
        gevent.sleep(CONTROL_POLL)
        polls += 1
        try:
            for last, kind, payload in chat.control_events_after(last):
                apply_control_event(service, kind, payload)
            if polls % HOUSEKEEPING_POLLS == 0:
                chat.housekeeping()
        except Exception as exc:
            failures.failed(exc)
        else:
            failures.succeeded()


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
    elif kind == "room_change":  # chat-admin changed members or roles (ops.rooms.Changes)
        apply_room_change(service.hub, payload)


def apply_room_change(hub, payload):
    """Each process delivers to its own sessions: every chatd reads the control event."""
    room = payload["room"]
    if payload["events"]:
        hub.catch_up(room)  # the sequenced events, from the room's log
    for username, event in payload["taken_out"]:
        hub.take_out_local(username, room, event)
    for username, event in payload["told"]:
        hub.to_local_user(username, event)


def ws_gate(settings, metrics):
    trusted = http_api.networks(settings.server.trusted_proxies)

    def gate(environ):
        if environ.get("PATH_INFO") != "/chat":
            return refuse(environ, errors.NotFound("No such route."))
        if not ws.origin_allowed(environ, settings.server.allowed_origins):
            metrics.rejected("origin")
            return refuse(environ, errors.Forbidden("Origin not allowed."))
        return None

    def refuse(environ, error):
        log.info("%s %s GET %s %d upgrade refused (Origin %s)", secrets.token_hex(6),
                 logsafe.text(http_api.client_address(environ, trusted)),
                 logsafe.target(environ.get("PATH_INFO", ""), environ.get("QUERY_STRING")),
                 error.status, logsafe.text(environ.get("HTTP_ORIGIN")))
        return error
    return gate


def peer_limit(settings, metrics):
    """[server] max_connections_per_address, on the socket peer; trusted proxies are exempt."""
    trusted = http_api.networks(settings.server.trusted_proxies)

    def refused(address):
        metrics.rejected("connections_per_address")
        log.info("- %s - connection refused: over %d connections from this address",
                 logsafe.text(address), settings.server.max_connections_per_address)
    return wsproto.PeerLimit(settings.server.max_connections_per_address,
                             lambda address: http_api.in_networks(address, trusted), refused)


def serve(settings):
    inherited = systemd.inherited_listener()  # socket activation: chatd.socket listens for us
    service = build_service(settings)
    service.sweeper = ws.Sweeper(settings)  # before the first connection can arrive
    app = http_api.RequestLog(http_api.build(service), settings.server.trusted_proxies,
                              service.metrics.http_request)
    fdlimit.raise_nofile(log)  # after the database opened: a failure there is one line
    server = wsproto.ChatServer(
        inherited or (settings.server.host, settings.server.port), app,
        ws_app=lambda handler: ws.serve(service, handler),
        ws_gate=ws_gate(settings, service.metrics),
        peer_limit=peer_limit(settings, service.metrics),
        header_timeout=settings.server.header_timeout,
        max_connections=settings.server.max_connections,
        # systemd's socket has the listen queue its unit asked for (Backlog=)
        backlog=None if inherited else settings.server.listen_backlog)
    fdlimit.AcceptGuard(server, service.metrics.registry, log)
    server.start()
    tune_gc()
    host, port = server.address[:2]
    # Scripts and tests wait for this line: it is logged whatever [log] level says.
    log.log(max(logging.INFO, log.getEffectiveLevel()), "listening on http://%s:%d%s",
            host if ":" not in host else "[%s]" % host, port,
            " (socket from systemd)" if inherited else "")
    systemd.notify("READY=1")
    gevent.spawn(watch_control_events, service)
    stopping = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stopping.set)
    gevent.signal_handler(signal.SIGINT, stopping.set)
    stopping.wait()
    shutdown(server, service, settings)


# Python collects its youngest generation every 700 new objects by default.
# In a reconnect storm of 19,000 clients the collector took 7% of the
# restarted process's CPU (perf record -p on it), 2% with start-up frozen
# and this threshold. Cycles are rare here; memory waits a little longer for them.
GC_THRESHOLDS = (20000, 10, 10)


def tune_gc():
    """Fewer collections, and none that walk what start-up built: it lives as long as chatd."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def shutdown(server, service, settings):
    """Stop accepting, close sockets with 1001, let writes finish, then go."""
    log.info("shutting down")
    systemd.notify("STOPPING=1")
    deadline = time.monotonic() + settings.server.shutdown_timeout
    server.close()
    server.close_idle()
    for session in tuple(service.sessions):
        session.conn.close(wscodec.CLOSE_GOING_AWAY, "server shutting down")
    service.hub.stopping = True
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


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings(args)
    except ValueError as exc:
        print("chatd: %s" % exc, file=sys.stderr)
        return 2
    logs.configure(settings.log.level, settings.log.format)
    try:
        serve(settings)
    except StartupError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:
        log.error("%s", _os_failure(exc, settings.server))
        return 1
    except (ValueError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


def _os_failure(exc, server):
    """An OSError before serving is almost always the listening socket: say where."""
    if exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
        return "cannot listen on %s:%s: %s" % (server.host, server.port,
                                                os.strerror(exc.errno).lower())
    return "cannot start: %s" % exc
