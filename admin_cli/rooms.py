"""chat-admin room ...: rooms, through the same operations as chatd's HTTP API.

A ROOM is named by its id (room_12) or by its name (ignoring case). The
operator acts above every rank; the same rules otherwise hold (no one is
added to a direct room, a banned user is not added back). Changes reach
running chatd processes as control events.
"""
import click

from .context import confirm, echo_json, echo_table, pass_admin


@click.group()
def room():
    """Create, list, inspect and remove rooms."""


@room.command()
@click.argument("name")
@click.option("--owner", required=True, metavar="USER",
              help="The user who owns the room and becomes its first member.")
@click.option("--private", is_flag=True, help="Listed only to its members, who are added.")
@pass_admin
def create(admin, name, owner, private):
    """Add a room called NAME (1-64 characters, unique ignoring case)."""
    created = admin.chat().create_room_for(owner, name, "private" if private else "public")
    kind = ", private" if private else ""
    click.echo("created %s (%s%s, owner %s)" % (created["roomId"], created["roomName"], kind,
                                               owner))


@room.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array and nothing else.")
@pass_admin
def list_(admin, as_json):
    """Rooms with their ids, member and message counts."""
    rooms = admin.chat().list_rooms(message_counts=True)
    if as_json:
        echo_json(rooms)
        return
    echo_table(["ROOM", "NAME", "MEMBERS", "MESSAGES", "CREATED", "OWNER", "KIND"],
               [[r["roomId"], r["roomName"], r["memberCount"], r["messageCount"],
                 r["createdAt"], r["createdBy"] or "-", r["kind"]] for r in rooms])


@room.command()
@click.argument("room_id", metavar="ROOM")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array and nothing else.")
@pass_admin
def members(admin, room_id, as_json):
    """Who is in ROOM (room_<n> or its name); --json adds their roles.

    Whether each member is online is shown when chatd shares presence
    through a broker (redis://); with the in-process broker it is not known here.
    """
    people = admin.chat().members_of(room_id, presence=admin.shared_presence)
    if as_json:
        echo_json(people)
        return
    if admin.shared_presence:
        echo_table(["USERNAME", "ONLINE"],
                   [[p["username"], "yes" if p["online"] else "no"] for p in people])
    else:
        echo_table(["USERNAME"], [[p["username"]] for p in people])


@room.command()
@click.argument("room_id", metavar="ROOM")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_admin
def delete(admin, room_id, yes):
    """Remove ROOM and all its history; live members get room-deleted."""
    chat = admin.chat()
    confirm(yes, "Delete %s and all its messages?" % room_id)
    click.echo("deleted %s" % chat.delete_room(room_id))


@room.command()
@click.argument("room_id", metavar="ROOM")
@click.argument("username", metavar="USER")
@pass_admin
def add(admin, room_id, username):
    """Put USER in ROOM as a member (not a direct room; not while banned)."""
    admin.chat().add_member(None, room_id, username)
    click.echo("added %s to %s" % (username, room_id))


@room.command()
@click.argument("room_id", metavar="ROOM")
@click.argument("username", metavar="USER")
@click.option("--ban", is_flag=True, help="Also keep USER out until the ban is lifted.")
@click.option("--reason", metavar="TEXT", help="Why (with --ban; up to 500 characters).")
@pass_admin
def remove(admin, room_id, username, ban, reason):
    """Take USER out of ROOM; their live connections stop receiving it."""
    if reason is not None and not ban:
        raise click.UsageError("--reason goes with --ban.")
    admin.chat().remove_member(None, room_id, username, ban=ban, reason=reason)
    click.echo("%s %s from %s" % ("banned" if ban else "removed", username, room_id))


@room.command()
@click.argument("room_id", metavar="ROOM")
@click.argument("username", metavar="USER")
@click.argument("role", type=click.Choice(["owner", "moderator", "member"]))
@pass_admin
def role(admin, room_id, username, role):
    """Give USER (a member of ROOM) the ROLE; `owner` hands the room over, the
    former owner (if any) becoming a moderator. Imported rooms get an owner so."""
    admin.chat().set_role(None, room_id, username, role)
    click.echo("%s is now %s of %s" % (username, role, room_id))
