"""chat-admin room ...: rooms, through the same operations as chatd's HTTP API."""
import click

from .context import confirm, echo_json, echo_table, pass_admin


@click.group()
def room():
    """Create, list, inspect and remove rooms."""


@room.command()
@click.argument("name")
@click.option("--owner", required=True, metavar="USER",
              help="The user who owns the room and becomes its first member.")
@pass_admin
def create(admin, name, owner):
    """Add a room called NAME (1-64 characters, unique ignoring case)."""
    created = admin.chat().create_room_for(owner, name)
    click.echo("created %s (%s, owner %s)" % (created["roomId"], created["roomName"], owner))


@room.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array and nothing else.")
@pass_admin
def list_(admin, as_json):
    """Rooms with their ids, member and message counts."""
    rooms = admin.chat().list_rooms(message_counts=True)
    if as_json:
        echo_json(rooms)
        return
    echo_table(["ROOM", "NAME", "MEMBERS", "MESSAGES", "CREATED", "OWNER"],
               [[r["roomId"], r["roomName"], r["memberCount"], r["messageCount"],
                 r["createdAt"], r["createdBy"] or "-"] for r in rooms])


@room.command()
@click.argument("room_id")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array and nothing else.")
@pass_admin
def members(admin, room_id, as_json):
    """Who is in ROOM_ID (room_<n>).

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
@click.argument("room_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_admin
def delete(admin, room_id, yes):
    """Remove ROOM_ID and all its history; live members get room-deleted."""
    chat = admin.chat()
    confirm(yes, "Delete %s and all its messages?" % room_id)
    chat.delete_room(room_id)
    click.echo("deleted %s" % room_id)
