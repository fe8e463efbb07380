"""chat-admin: the operator's CLI. The group, its options, and the one place errors become exit codes.

Exit codes: 0 done; 1 failed (one line on stderr, never a traceback);
2 bad usage (click's own, and a bad --config or --database).
"""
import importlib.metadata
import logging
import sqlite3

import click
import peewee as pw

from chatd.errors import ChatError, Unavailable

from . import bots, db, history, rooms, users
from .context import Admin, Failed


class AdminGroup(click.Group):
    """Renders every failure below it as one line and exit 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Unavailable as exc:  # locked past the retries, or not answering: say which
            cause = " (%s)" % _first_line(exc.__cause__) if exc.__cause__ else ""
            raise Failed("the database is unavailable%s; try again" % cause)
        except ChatError as exc:
            raise Failed(exc.message)
        except (pw.PeeweeException, sqlite3.Error) as exc:  # sqlite3's own: db backup
            raise Failed("database error: %s" % _first_line(exc))
        except BrokenPipeError:
            raise  # click exits quietly when the reader of stdout has gone
        except OSError as exc:
            raise Failed(_os_error(exc))


def _first_line(exc):
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _os_error(exc):
    if exc.filename is not None:
        return "%s: %s" % (exc.filename, exc.strerror or exc)
    return exc.strerror or str(exc)


def _version():
    try:
        return importlib.metadata.version("chatd")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown"


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", prog_name="chat-admin",
                      message="%(prog)s %(version)s")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="config.ini to read (as chatd's --config).")
@click.option("--database", "database_url", metavar="URL",
              help="sqlite:///chat.db or postgresql://USER@HOST/DB; overrides the config.")
@click.pass_context
def cli(ctx, config_path, database_url):
    """Operate a chatd database, also while chatd runs.

    Settings come from --config, then CHATD_<SECTION>_<KEY> environment
    variables, then --database, exactly as for chatd. Changes reach a running
    chatd within 2 seconds: a disabled user or a new password ends that user's
    sessions, a deleted room sends room-deleted to its members.
    """
    # chatd's modules log for a server; here only an error is worth a line
    # (an unreachable Redis just means presence is not shown).
    logging.basicConfig(level=logging.ERROR, format="chat-admin: %(message)s")
    ctx.obj = Admin(config_path, database_url)


cli.add_command(users.user)
cli.add_command(rooms.room)
cli.add_command(history.history)
cli.add_command(db.db)
cli.add_command(bots.bot)


def main():
    cli(prog_name="chat-admin")
