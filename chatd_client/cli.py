"""chatctl: chatd from shell scripts.

    chatctl [--url URL] [--token TOKEN | --username NAME --password-stdin] COMMAND

The server and token come from the flags or from CHATD_URL and CHATD_TOKEN.
ROOM is a room id (room_12) or a room's exact name. Every output line is one
JSON object; nothing else goes to stdout. Exit codes: 0 done, 1 failed (one
line on stderr, never a traceback), 2 bad usage.

    chatctl rooms                      one line per room the server lists
    chatctl history ROOM [--limit N] [--before ID] [--after ID]
                                       one line per message, oldest first
    chatctl send ROOM TEXT             TEXT '-' reads stdin; prints the new-message event
    chatctl tail ROOM [-n N] [--since SEQ] [--follow]
                                       the last N messages (default 10), or every event
                                       after SEQ, as new-message events; --follow then
                                       prints the room's events as they happen (through
                                       restarts of chatd, each once) until interrupted
"""
import json
import sys

import click

from . import errors
from .client import Client
from .live import sequence_number


class Failed(click.ClickException):
    """One line on stderr, exit 1."""

    def show(self, file=None):
        click.echo("chatctl: %s" % self.format_message(), err=True)


class ChatctlGroup(click.Group):
    """Every ChatError below it becomes one line and exit 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except errors.ChatError as exc:
            raise Failed(exc.message)


class Session:
    """The flags, and the Client made from them when a command first needs it."""

    def __init__(self, url, token, username, password_stdin):
        self.url, self.token = url, token
        self.username, self.password_stdin = username, password_stdin
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self):
        if not self.url:
            raise click.UsageError("give the server with --url or CHATD_URL")
        if self.username:
            if not self.password_stdin:
                raise click.UsageError("--username needs --password-stdin")
            password = sys.stdin.readline().rstrip("\r\n")
            return Client.login(self.url, self.username, password)
        if not self.token:
            raise click.UsageError("give a token with --token or CHATD_TOKEN "
                                   "(or --username NAME --password-stdin)")
        return Client(self.url, self.token)

    def room_id(self, room):
        """A room id for ROOM: an id the server lists, else an exact name, else itself."""
        listed = self.client.rooms()
        if any(item.get("roomId") == room for item in listed):
            return room
        named = [item["roomId"] for item in listed if item.get("roomName") == room]
        if len(named) > 1:
            raise Failed("several rooms are named %r; give its id" % room)
        if named:
            return named[0]
        if room.startswith("room_"):
            return room  # perhaps a room not listed to us: the server will say
        raise Failed("no room named %r" % room)


pass_session = click.make_pass_decorator(Session)


def emit(item):
    sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@click.group(cls=ChatctlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="CHATD_URL", metavar="URL", help="chatd's base URL (CHATD_URL).")
@click.option("--token", envvar="CHATD_TOKEN", metavar="TOKEN",
              help="A login or access token (CHATD_TOKEN).")
@click.option("--username", metavar="NAME", help="Log in as NAME instead of using a token.")
@click.option("--password-stdin", is_flag=True,
              help="Read --username's password from stdin's first line.")
@click.pass_context
def cli(ctx, url, token, username, password_stdin):
    """chatd from shell scripts: one JSON object per output line."""
    ctx.obj = Session(url, token, username, password_stdin)


@cli.command()
@pass_session
def rooms(session):
    """List the rooms the server shows you."""
    for item in session.client.rooms():
        emit(item)


@cli.command()
@click.argument("room")
@click.option("--limit", type=click.IntRange(1, 500), help="How many messages (server default 50).")
@click.option("--before", type=int, metavar="ID", help="The page older than message ID.")
@click.option("--after", type=int, metavar="ID", help="The page newer than message ID.")
@pass_session
def history(session, room, limit, before, after):
    """Print a page of ROOM's messages, oldest first (default: the latest)."""
    page = session.client.history(session.room_id(room), limit, before, after)
    for message in page["messages"]:
        emit(message)


@cli.command()
@click.argument("room")
@click.argument("text")
@click.option("--reply-to", type=int, metavar="ID", help="The message this answers.")
@pass_session
def send(session, room, text, reply_to):
    """Send TEXT to ROOM ('-': read it from stdin); print the stored message's event."""
    if text == "-":
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text
    emit(session.client.send(session.room_id(room), text, reply_to=reply_to))


@cli.command()
@click.argument("room")
@click.option("-n", "--lines", type=click.IntRange(0, 500), default=10, show_default=True,
              help="How many of the latest messages to print first (without --since).")
@click.option("--since", type=click.IntRange(0), metavar="SEQ",
              help="Print every event after SEQ instead.")
@click.option("-f", "--follow", is_flag=True, help="Then print new events until interrupted.")
@pass_session
def tail(session, room, lines, since, follow):
    """Print ROOM's latest messages or those after --since, one event a line."""
    room_id = session.room_id(room)
    client = session.client
    if since is None:
        last = print_messages(room_id, client.history(room_id, limit=lines)["messages"]
                              if lines else [])
        start = {} if last is None else {room_id: last}
    elif follow:
        start = {room_id: since}  # the live session replays everything after it
    else:
        print_all_after(client, room_id, since)
        return
    if follow:
        try:
            follow_room(client, room_id, start)
        except KeyboardInterrupt:
            sys.exit(130)


def print_messages(room_id, messages):
    """Print history items as the new-message events they were; the last id (or None)."""
    for message in messages:
        emit(dict({"action": "new-message", "roomId": room_id}, **message))
    return messages[-1]["id"] if messages else None


def print_all_after(client, room_id, after):
    while True:
        page = client.history(room_id, limit=500, after=after)
        last = print_messages(room_id, page["messages"])
        if last is None or not page["hasMore"]:
            return
        after = last


def follow_room(client, room_id, since):
    with client.live(rooms=[room_id], since=since) as session:
        for event in session:
            action = event.get("action")
            if action == "error":
                raise Failed("%s: %s" % (room_id, event.get("message")))
            if sequence_number(event) is not None or action in ("room-deleted", "room-removed"):
                emit(event)
            if action in ("room-deleted", "room-removed"):
                return


def main():
    cli(prog_name="chatctl")
