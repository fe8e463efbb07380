"""chat-admin bot ...: users that are scripts, let in by access tokens only (PROTOCOL section 10).

`bot create` and `bot token` print the token alone on stdout, so a script
can take it with $(...): it is shown this once, and only its hash is kept.
"""
import click

from chatd.ops.tokens import MAX_DAYS, MAX_RATE

from .context import confirm, echo_json, echo_table, pass_admin


@click.group()
def bot():
    """Create bots, give them access tokens, list and remove them."""


def echo_token(created, as_json):
    if as_json:
        echo_json(created)
    else:
        click.echo(created["token"])


json_flag = click.option("--json", "as_json", is_flag=True,
                         help="Print a JSON object and nothing else.")


@bot.command()
@click.argument("name")
@click.option("--rate", type=click.IntRange(1, MAX_RATE), metavar="N",
              help="Messages a minute it may send (default: the users' [limits] rate).")
@json_flag
@pass_admin
def create(admin, name, rate, as_json):
    """Add the bot NAME (no password) and print its first access token.

    The token never expires; `bot token` makes more, `bot delete` ends them all.
    """
    echo_token(admin.chat().create_bot(name, rate), as_json)


@bot.command()
@click.argument("name")
@click.option("--name", "label", required=True, metavar="LABEL",
              help="What the token is for (1-64 characters), as GET /api/tokens lists it.")
@click.option("--expires-in-days", type=click.IntRange(1, MAX_DAYS), metavar="N",
              help="Days it lives (default: never expires).")
@json_flag
@pass_admin
def token(admin, name, label, expires_in_days, as_json):
    """Make another access token for the bot NAME and print it."""
    echo_token(admin.chat().bot_token(name, label, expires_in_days), as_json)


@bot.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array and nothing else.")
@pass_admin
def list_(admin, as_json):
    """Bots with their created date, message rate and live access tokens."""
    bots = admin.chat().list_bots()
    if as_json:
        echo_json(bots)
        return
    echo_table(["USERNAME", "CREATED", "RATE", "TOKENS"],
               [[b["username"], b["createdAt"], "%d/min" % b["rate"], b["tokens"]] for b in bots])


@bot.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_admin
def delete(admin, name, yes):
    """Remove the bot NAME: its tokens and connections end; its messages stay."""
    chat = admin.chat()
    confirm(yes, "Delete bot %s? Its tokens end; its messages stay." % name)
    chat.delete_bot(name)
    click.echo("deleted bot %s" % name)
