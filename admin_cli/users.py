"""chat-admin user ...: accounts, through the same operations as chatd's HTTP API."""
import sys

import click

from .context import Failed, confirm, echo_json, echo_table, pass_admin


@click.group()
def user():
    """Create, list, change and remove users."""


def read_password(from_stdin):
    """One line of stdin, or a prompt asked twice without echo."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise Failed("no password on stdin")
        return line.rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


password_stdin = click.option(
    "--password-stdin", is_flag=True,
    help="Read the password from the first line of stdin instead of prompting.")


@user.command()
@click.argument("name")
@password_stdin
@pass_admin
def create(admin, name, password_stdin):
    """Add the user NAME (asks for the password twice).

    Names are 3-32 of A-Z a-z 0-9 _ . - and unique ignoring case; passwords
    are 8-1024 characters.
    """
    chat = admin.chat()
    created = chat.create_user(name, read_password(password_stdin))
    click.echo("created user %s" % created["username"])


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array and nothing else.")
@pass_admin
def list_(admin, as_json):
    """Users with their created date, disabled flag, room count and bot flag."""
    users = admin.chat().list_users()
    if as_json:
        echo_json(users)
        return
    echo_table(["USERNAME", "CREATED", "DISABLED", "ROOMS", "BOT"],
               [[u["username"], u["createdAt"], "yes" if u["disabled"] else "no", u["roomCount"],
                 "yes" if u["bot"] else "no"] for u in users])


@user.command()
@click.argument("name")
@password_stdin
@pass_admin
def passwd(admin, name, password_stdin):
    """Set NAME's password; their login sessions end (access tokens stay)."""
    chat = admin.chat()
    chat.set_password(name, read_password(password_stdin))
    click.echo("password changed for %s; their login sessions have ended" % name)


@user.command()
@click.argument("name")
@pass_admin
def disable(admin, name):
    """Stop NAME from logging in; their tokens and live connections end at once."""
    admin.chat().set_disabled(name, True)
    click.echo("disabled %s; their sessions have ended" % name)


@user.command()
@click.argument("name")
@pass_admin
def enable(admin, name):
    """Let a disabled user NAME log in again."""
    admin.chat().set_disabled(name, False)
    click.echo("enabled %s" % name)


@user.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_admin
def delete(admin, name, yes):
    """Remove the user NAME; their messages stay, sender shown as [deleted]."""
    chat = admin.chat()
    confirm(yes, "Delete user %s? Their messages stay, sender shown as [deleted]." % name)
    chat.delete_user(name)
    click.echo("deleted user %s" % name)
