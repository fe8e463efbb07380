"""The group commit (chatd.storage.commit) on a temporary SQLite file, in-process."""
import gevent
import pytest

from chatd.storage import commit, messages, migrations, models, rooms, users
from chatd.storage.commit import GroupCommit, Post


class Recording(GroupCommit):
    """Counts the posts each transaction wrote."""

    def __init__(self, on_stored):
        super().__init__(on_stored)
        self.batches = []

    def _write(self, posts):
        self.batches.append(len(posts))
        super()._write(posts)


@pytest.fixture
def database(tmp_path):
    models.bind(models.open_database("sqlite:///%s" % (tmp_path / "chat.db")))
    migrations.migrate()
    yield
    models.close()


@models.transaction
def member_of_a_room(name="alice"):
    user = users.create(name, None, False)
    room = rooms.create("room of " + name, user)
    rooms.add_member(user, room.id, room.created_at)
    return user, room.id


@models.transaction
def stored(room_pk):
    return messages.history_page(room_pk, 1000, after=0)[0]


@pytest.fixture
def writer(database):
    announced = []
    writer = Recording(on_stored=announced.append)
    writer.announced = announced
    yield writer
    writer.close()


def test_posts_from_several_greenlets_share_one_transaction(writer):
    user, room_pk = member_of_a_room()
    posters = [gevent.spawn(writer.submit, Post(user.id, user.username, room_pk, "m%d" % i, None))
               for i in range(5)]
    gevent.joinall(posters, raise_error=True)
    assert writer.batches == [5]
    results = [poster.value for poster in posters]
    assert all(is_new for _, is_new in results)
    assert sorted(row.seq for row, _ in results) == [1, 2, 3, 4, 5]
    assert [(r[1], r[3]) for r in stored(room_pk)] == [(row.seq, row.text) for row, _ in
                                                       sorted(results, key=lambda r: r[0].seq)]


def test_on_stored_hears_each_new_message_in_commit_order(writer):
    user, room_pk = member_of_a_room()
    posters = [gevent.spawn(writer.submit, Post(user.id, user.username, room_pk, "m%d" % i, None))
               for i in range(4)]
    gevent.joinall(posters, raise_error=True)
    writer.submit(Post(user.id, user.username, room_pk, "later", None))
    assert [row.seq for row in writer.announced] == [1, 2, 3, 4, 5]
    assert writer.announced[-1].text == "later"
    assert all(row.created_at > 0 and row.room_pk == room_pk for row in writer.announced)


def test_a_client_msg_id_retry_returns_the_original(writer):
    user, room_pk = member_of_a_room()
    first, new = writer.submit(Post(user.id, user.username, room_pk, "hello", "c-1"))
    again, again_new = writer.submit(Post(user.id, user.username, room_pk, "changed", "c-1"))
    assert (new, again_new) == (True, False)
    assert again == first  # same id, text and time
    assert writer.announced == [first]  # a retry is not news
    assert len(stored(room_pk)) == 1


def test_a_post_to_a_room_one_is_not_in_is_not_allowed(writer):
    alice, room_pk = member_of_a_room("alice")
    bob, _ = member_of_a_room("bob")
    assert writer.submit(Post(bob.id, bob.username, room_pk, "hi", None)) is commit.NOT_ALLOWED
    assert writer.announced == [] and stored(room_pk) == []
