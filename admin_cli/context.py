"""What every chat-admin command shares: settings, the database, output helpers.

The context is built lazily, when a command first needs the database, so
`--help` and usage errors never touch it.
"""
import io
import json
import os
import sys
from urllib.parse import unquote

import click

from chatd import auth, brokers, config, ops
from chatd.storage import migrations, models


class Failed(click.ClickException):
    """A command that could not be done: one line on stderr, exit 1."""

    def show(self, file=None):
        click.echo("chat-admin: %s" % self.format_message(), err=True)


class Admin:
    """Settings and, once asked for, the database and the domain operations."""

    def __init__(self, config_path, database_url):
        try:
            self.settings = config.load(config_path, overrides={("database", "url"): database_url})
        except ValueError as exc:
            raise click.UsageError(str(exc))
        self._database = None
        self._chat = None

    def database(self, create=False, migrate=True):
        """Bind the database; bring its schema up to date as chatd does on start.

        Unless `create`, a SQLite file that does not exist is an error, not a new database.
        """
        if self._database is None:
            url = self.settings.database.url
            _check_exists(url, create)
            try:
                self._database = models.bind(models.open_database(url, pool_size=1,
                                                                 busy_ms=int(models.LOCK_WAIT * 1000)))
            except ValueError as exc:
                raise click.UsageError(str(exc))
            if migrate:
                try:
                    migrations.migrate()
                except RuntimeError as exc:  # a schema newer than this release
                    raise Failed(str(exc))
        return self._database

    def chat(self, create=False):
        """The domain operations (chatd.ops) on the database."""
        if self._chat is None:
            self.database(create)
            try:
                broker = brokers.open_broker(self.settings.broker.url)
            except ValueError as exc:
                raise click.UsageError(str(exc))
            # Connects (Redis) as chatd does. Its background greenlets never run
            # here: nothing in chat-admin yields to gevent's hub, and stop() drops them.
            broker.start(on_event=None)
            click.get_current_context().call_on_close(broker.stop)
            # Hashing inline: no gevent here, and one password at a time.
            self._chat = ops.Chat(self.settings, auth.Passwords(threads=0), broker)
        return self._chat

    @property
    def shared_presence(self):
        """Whether chatd's connections can be seen from here: a shared broker that answers."""
        broker = self.chat().broker
        return broker.name != "memory" and broker.status() == "ok"


def _check_exists(url, create):
    if url.startswith("sqlite:///") and not create:
        path = unquote(url[len("sqlite:///"):])
        if not os.path.exists(path):
            raise Failed("no database at %s (`chat-admin db migrate` creates one)" % path)


pass_admin = click.make_pass_decorator(Admin)


def stdout():
    """UTF-8 text on stdout whatever the locale; newlines written as given."""
    return io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="",
                            write_through=False)


def echo_json(value):
    out = stdout()
    out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    out.flush()
    out.detach()


def echo_table(headers, rows):
    """Left-aligned columns, one row a line."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in [headers] + rows) for i in range(len(headers))]
    for row in [headers] + rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def confirm(yes, question):
    """Go on with --yes, else ask on the terminal (no: aborted, exit 1).

    Without a terminal on stdin nobody can answer, and a "y" piped in by a
    script is too easy to get by accident: refuse, and say how to go on.
    """
    if yes:
        return
    if not sys.stdin.isatty():
        raise Failed("Aborted: stdin is not a terminal to confirm on; add --yes to go ahead")
    click.confirm(question, abort=True, err=True)
