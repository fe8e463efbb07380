"""chat-admin db ...: the schema and backups."""
import click

from chatd import archive

from .context import pass_admin


@click.group()
def db():
    """Upgrade the schema, take backups."""


@db.command()
@pass_admin
def migrate(admin):
    """Create or upgrade the schema in place (chatd also does this on start)."""
    admin.database(create=True)
    click.echo("schema at version %d" % archive.schema_version())


@db.command()
@click.argument("file", type=click.Path(dir_okay=False), metavar="FILE")
@pass_admin
def backup(admin, file):
    """Write a consistent copy of the live SQLite database to FILE.

    Uses SQLite's online backup API: chatd keeps running and writing. On
    PostgreSQL use pg_dump instead.
    """
    admin.database(migrate=False)  # a backup copies, it changes nothing
    archive.backup(file)
    click.echo("backed up to %s" % file)
