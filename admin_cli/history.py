"""chat-admin history ...: export, import and purge messages (chatd.archive does the work)."""
import contextlib
import os
import re
import sys

import click

from chatd import archive
from chatd.errors import BadRequest
from chatd.events import iso

from .context import confirm, pass_admin, stdout

PROGRESS_STEP = 1000  # records between progress bar updates: a redraw per message is slow


class Timestamp(click.ParamType):
    """A date (midnight UTC) or an RFC 3339 time, as milliseconds since the epoch."""
    name = "TIME"

    def convert(self, value, param, ctx):
        text = value + "T00:00:00Z" if re.fullmatch(r"\d{4}-\d\d-\d\d", value) else value
        try:
            return archive.parse_timestamp(text, param.name if param else "time")
        except BadRequest:
            self.fail("%r is neither a date like 2024-12-10 (midnight UTC) nor an RFC 3339 "
                      "time like 2024-12-10T12:00:00Z" % value, param, ctx)


TIMESTAMP = Timestamp()


@click.group()
def history():
    """Export, import and purge messages."""


@history.command()
@click.argument("room_ids", nargs=-1, metavar="[ROOM_ID]...")
@click.option("--all", "all_rooms", is_flag=True, help="Every room.")
@click.option("--format", "fmt", type=click.Choice(sorted(archive.WRITERS)), default="jsonl",
              show_default=True, help="jsonl: one object a line; json: one array; csv: RFC 4180.")
@click.option("--output", "-o", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write to FILE (complete, or not at all) instead of stdout.")
@click.option("--since", type=TIMESTAMP, help="Only messages at or after this date or time.")
@click.option("--until", type=TIMESTAMP, help="Only messages before this date or time.")
@pass_admin
def export(admin, room_ids, all_rooms, fmt, output, since, until):
    """Stream the history of ROOM_ID... (or --all) out, oldest first in each room.

    Each record has roomId, roomName, id, sender, message, timestamp,
    clientMsgId, editedAt, replyTo, mentions and reactions (csv columns in
    that order; mentions and reactions as JSON text there). A message is
    exported as it now is (edited text, reactions); deleted ones are left
    out. Memory stays flat whatever the size; a progress bar shows on stderr
    when it is a terminal.
    """
    if bool(room_ids) == all_rooms:
        raise click.UsageError("Give one or more ROOM_IDs, or --all (not both).")
    admin.database()
    rooms = archive.rooms_for_export(None if all_rooms else room_ids)
    records = archive.export_records(rooms, since, until)
    with _destination(output) as out:
        if sys.stderr.isatty():
            total = archive.count_messages(None if all_rooms else [pk for pk, _ in rooms],
                                           since, until)
            with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
                archive.WRITERS[fmt](_counted(records, bar), out)
        else:
            archive.WRITERS[fmt](records, out)
    if output:
        click.echo("exported to %s" % output)


def _counted(records, bar):
    done = 0
    for record in records:
        yield record
        done += 1
        if done % PROGRESS_STEP == 0:
            bar.update(PROGRESS_STEP)
    bar.update(done % PROGRESS_STEP)


@contextlib.contextmanager
def _destination(path):
    """stdout, or a temporary file beside `path` renamed to it only when complete."""
    if path is None:
        out = stdout()
        yield out
        out.flush()
        out.detach()
        return
    fd, partial = archive.private_file_beside(path)
    try:
        with open(fd, "w", encoding="utf-8", newline="") as out:
            yield out
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


@history.command("import")
@click.argument("file", metavar="FILE")
@pass_admin
def import_(admin, file):
    """Restore a jsonl export FILE into this database.

    Keeps room ids, message ids, senders, texts, timestamps, clientMsgIds,
    edits (editedAt), replies, mentions and reactions; creates missing rooms
    and users, reacting users too (disabled, no password). A message already
    here (same room and id) is skipped, so importing twice adds nothing. Every
    line is checked first and the file goes in as one transaction: a bad line
    is reported with its number and nothing is imported.
    """
    admin.database(create=True)
    counts = archive.import_jsonl(file)
    click.echo("imported %(messages)d messages (%(skipped)d already present); "
               "created %(rooms)d rooms and %(users)d users" % counts)


@history.command()
@click.argument("room_id")
@click.option("--before", type=TIMESTAMP, required=True,
              help="Delete messages older than this date (midnight UTC) or RFC 3339 time.")
@click.option("--dry-run", is_flag=True, help="Only say how many messages would go.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_admin
def purge(admin, room_id, before, dry_run, yes):
    """Delete ROOM_ID's messages older than --before (retention).

    Deletes in small batches so a running chatd keeps writing; later messages
    keep their ids and new ones continue the sequence.
    """
    admin.database()
    if dry_run or not yes:
        count = archive.purge_count(room_id, before)
        if dry_run:
            click.echo("would purge %d messages from %s" % (count, room_id))
            return
        confirm(yes, "Delete %d messages of %s older than %s?" % (count, room_id, iso(before)))
    deleted = archive.purge(room_id, before)
    click.echo("purged %d messages from %s" % (deleted, room_id))


@history.command()
@pass_admin
def reindex(admin):
    """Rebuild the search index from the stored messages.

    For a database whose index is missing or suspect. On SQLite it is one
    transaction (messages wait for it: about a minute per few million
    messages); on PostgreSQL REINDEX CONCURRENTLY, which writers do not wait for.
    """
    admin.chat().rebuild_search()
    click.echo("search index rebuilt")
