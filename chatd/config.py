"""Settings: defaults here, then config.ini, then CHATD_<SECTION>_<KEY>, then flags.

SETTINGS is the one list of every setting; config.ini in the repository
documents the same list (a test keeps the two equal). The loaded settings
are read-only: code that wants other values loads new ones.
"""
import configparser
import os
from types import SimpleNamespace


def _bool(text):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean: %r" % text)


class Frozen(SimpleNamespace):
    """A SimpleNamespace that refuses changes once built."""
    __slots__ = ()

    def __setattr__(self, name, value):
        raise AttributeError("settings are read-only; load new ones instead")

    def __delattr__(self, name):
        raise AttributeError("settings are read-only; load new ones instead")


def _list(text):
    return tuple(item.strip() for item in str(text).split(",") if item.strip())


def _choice(*allowed):
    def parse(text):
        value = str(text).strip().lower()
        if value not in allowed:
            raise ValueError("not one of %s: %r" % (", ".join(allowed), text))
        return value
    return parse


# (section, key, default as written in config.ini, parser, comment)
SETTINGS = [
    ("server", "host", "127.0.0.1", str,
     "address to listen on (not used when systemd passes the socket: chatd.socket)"),
    ("server", "port", "8080", int,
     "TCP port to listen on; 0 takes a free port (not used when systemd passes the socket)"),
    ("server", "allowed_origins", "", _list,
     "WebSocket origins allowed: comma-separated list, * for any, empty for same origin only"),
    ("server", "trusted_proxies", "", _list,
     "peers (IPs or CIDR networks) whose X-Forwarded-For is believed"),
    ("server", "max_connections", "10000", int,
     "concurrent connections (HTTP and WebSocket) served at once"),
    ("server", "listen_backlog", "65535", int,
     "connections the kernel queues before chatd accepts them (capped by "
     "net.core.somaxconn, 4096 by default): room for a reconnect storm; "
     "with chatd.socket, its Backlog= instead"),
    ("server", "max_connections_per_address", "256", int,
     "concurrent connections from one socket peer address; peers in trusted_proxies "
     "are not capped (0: no cap)"),
    ("server", "header_timeout", "10", float,
     "seconds a client has to send a request line and headers, also between "
     "keep-alive requests; then the connection is closed"),
    ("server", "shutdown_timeout", "10", float,
     "seconds SIGTERM waits for connections to finish"),
    ("database", "url", "sqlite:///chat.db", str,
     "sqlite:///relative.db, sqlite:////absolute.db or postgresql://USER[:PASSWORD]@HOST[:PORT]/DB"),
    ("database", "pool_size", "10", int, "PostgreSQL connections per process"),
    ("broker", "url", "memory://", str,
     "memory:// (one process) or redis://HOST[:PORT]/DB (several processes)"),
    ("auth", "token_ttl", "604800", int, "seconds a login token lives (7 days)"),
    ("auth", "open_registration", "true", _bool,
     "whether POST /api/register creates accounts"),
    ("auth", "login_failures_per_user", "10", int,
     "failed logins for one username within the window before 429"),
    ("auth", "login_failures_per_address", "50", int,
     "failed logins from one client address within the window before 429"),
    ("auth", "login_failure_window", "900", int,
     "seconds over which failed logins are counted (15 minutes)"),
    ("auth", "registrations_per_hour", "10", int,
     "accounts POST /api/register creates per client address per hour (429 beyond)"),
    ("auth", "hash_threads", "2", int,
     "threads that hash passwords, off the event loop"),
    ("websocket", "max_frame_bytes", "65536", int,
     "largest frame or message a client may send; larger closes with 1009"),
    ("websocket", "max_fragments", "128", int,
     "frames one message may be cut into; more closes with 1009"),
    ("websocket", "max_rooms_per_connection", "1000", int,
     "rooms one connection may be joined to at once; a join past it is an error event"),
    ("websocket", "auth_timeout", "10", float,
     "seconds a new connection has to authenticate"),
    ("websocket", "ping_interval", "25", float, "seconds between server pings"),
    ("websocket", "idle_timeout", "60", float,
     "seconds of silence after which a peer is dropped"),
    ("websocket", "send_queue", "1024", int,
     "events queued for one connection before it is cut off as too slow (1013)"),
    ("websocket", "socket_send_buffer", "65536", int,
     "kernel send buffer per WebSocket in bytes (0: the kernel's own, up to MiBs); "
     "with send_queue it bounds what a peer that stops reading holds before the cut"),
    ("websocket", "write_timeout", "10", float,
     "seconds one write may wait on a peer that does not read"),
    ("limits", "max_body_bytes", "65536", int, "largest HTTP request body (413 beyond)"),
    ("limits", "max_message_chars", "4000", int, "longest chat message in characters"),
    ("limits", "rooms_per_hour", "20", int,
     "rooms one user may create per hour (429 beyond; chat-admin's are not counted)"),
    ("limits", "messages_per_minute", "120", int, "sustained messages per user per minute"),
    ("limits", "message_burst", "30", int, "messages a user may send at once above the rate"),
    ("limits", "flood_strikes", "20", int,
     "rate-limited messages in a row after which the connection is closed (1008)"),
    ("metrics", "allowed_networks", "127.0.0.0/8,::1/128", _list,
     "client networks allowed to read GET /metrics"),
    ("log", "level", "info", str, "debug, info, warning or error"),
    ("log", "format", "text", _choice("text", "json"),
     "text, or json: one JSON object per line with time, level, logger and message"),
]


def load(path=None, environ=None, overrides=None):
    """Build the settings object; overrides is {(section, key): raw value or None}."""
    environ = os.environ if environ is None else environ
    parser = configparser.ConfigParser(interpolation=None)
    if path:
        if not parser.read(path, encoding="utf-8"):
            raise ValueError("cannot read config file %s" % path)
    sections = {}
    for section, key, default, parse, _comment in SETTINGS:
        raw = parser.get(section, key, fallback=default)
        raw = environ.get("CHATD_%s_%s" % (section.upper(), key.upper()), raw)
        override = (overrides or {}).get((section, key))
        if override is not None:
            raw = override
        try:
            value = parse(raw)
        except ValueError:
            raise ValueError("setting [%s] %s: invalid value %r" % (section, key, raw))
        sections.setdefault(section, {})[key] = value
    return Frozen(**{name: Frozen(**values) for name, values in sections.items()})


def render_ini():
    """config.ini's text: every setting with its default and comment."""
    lines, current = ["# chatd settings. Each can be overridden by CHATD_<SECTION>_<KEY>,",
                      "# and the command-line flags override both."], None
    for section, key, default, _parse, comment in SETTINGS:
        if section != current:
            lines += ["", "[%s]" % section]
            current = section
        lines += ["# " + comment, "%s = %s" % (key, default)]
    return "\n".join(lines) + "\n"
