"""Settings: defaults here, then config.ini, then CHATD_<SECTION>_<KEY>, then flags.

SETTINGS is the one list of every setting; config.ini in the repository
documents the same list (a test keeps the two equal).
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


def _list(text):
    return tuple(item.strip() for item in str(text).split(",") if item.strip())


# (section, key, default as written in config.ini, parser, comment)
SETTINGS = [
    ("server", "host", "127.0.0.1", str, "address to listen on"),
    ("server", "port", "8080", int, "TCP port to listen on; 0 takes a free port"),
    ("server", "allowed_origins", "", _list,
     "WebSocket origins allowed: comma-separated list, * for any, empty for same origin only"),
    ("server", "trusted_proxies", "", _list,
     "peers (IPs or CIDR networks) whose X-Forwarded-For is believed"),
    ("server", "max_connections", "10000", int,
     "concurrent connections (HTTP and WebSocket) served at once"),
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
    ("limits", "messages_per_minute", "120", int, "sustained messages per user per minute"),
    ("limits", "message_burst", "30", int, "messages a user may send at once above the rate"),
    ("limits", "flood_strikes", "20", int,
     "rate-limited messages in a row after which the connection is closed (1008)"),
    ("metrics", "allowed_networks", "127.0.0.0/8,::1/128", _list,
     "client networks allowed to read GET /metrics"),
    ("log", "level", "info", str, "debug, info, warning or error"),
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
        setattr(sections.setdefault(section, SimpleNamespace()), key, value)
    return SimpleNamespace(**sections)


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
