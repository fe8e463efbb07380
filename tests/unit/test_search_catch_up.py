"""SQLite's search index kept behind the message writer (storage.search_sqlite.catch_up,
GroupCommit's indexing) and the senders' markers that follow with it, on a temporary
SQLite file, in-process."""
import gevent
import pytest

from chatd import searchquery
from chatd.storage import commit, markers, messages, models, search_sqlite
from chatd.storage.commit import Post
from helpers import wait_for
from unit.test_group_commit import database, member_of_a_room  # noqa: F401 (fixture)


@pytest.fixture
def writer(database):  # noqa: F811 (the fixture)
    writer = commit.GroupCommit(on_stored=lambda row: None)
    yield writer
    writer.close()


@models.transaction
def found(user, text):
    rows = search_sqlite.search(user.id, searchquery.parse(text), None, None, 100)
    return sorted(row[5] for row in rows)


def post(writer, user, room_pk, text):
    row, _ = writer.submit(Post(user.id, user.username, room_pk, text, None))
    return row.seq


def test_a_message_is_found_once_the_writer_has_caught_up(writer):
    user, room_pk = member_of_a_room()
    post(writer, user, room_pk, "pending words")
    writer.catch_up_now()
    assert found(user, "pending") == ["pending words"]


def test_an_edit_or_deletion_before_the_catch_up_is_indexed_as_it_is_then(writer):
    user, room_pk = member_of_a_room()
    edited = post(writer, user, room_pk, "draft text")
    erased = post(writer, user, room_pk, "regretted text")
    models.transaction(messages.set_text)(room_pk, edited, "final text", None, 1)
    models.transaction(messages.erase)(room_pk, erased, user.id)
    writer.catch_up_now()
    assert found(user, "text") == ["final text"]
    assert found(user, "draft") == [] and found(user, "regretted") == []


def test_an_edit_or_deletion_after_the_catch_up_changes_the_index(writer):
    user, room_pk = member_of_a_room()
    edited = post(writer, user, room_pk, "draft text")
    erased = post(writer, user, room_pk, "regretted text")
    writer.catch_up_now()
    models.transaction(messages.set_text)(room_pk, edited, "final text", None, 1)
    models.transaction(messages.erase)(room_pk, erased, user.id)
    assert found(user, "text") == ["final text"]
    assert found(user, "draft") == [] and found(user, "regretted") == []


def test_the_newest_message_deleted_leaves_its_id_free_for_one_that_is_indexed(writer):
    user, room_pk = member_of_a_room()
    post(writer, user, room_pk, "first words")
    post(writer, user, room_pk, "second words")
    writer.catch_up_now()
    newest = models.proxy.obj.execute_sql("SELECT max(id) FROM message").fetchone()[0]
    models.proxy.obj.execute_sql("DELETE FROM message WHERE id = ?", (newest,))
    post(writer, user, room_pk, "third words")  # SQLite hands it the freed id
    assert models.proxy.obj.execute_sql("SELECT max(id) FROM message").fetchone()[0] == newest
    writer.catch_up_now()
    assert found(user, "words") == ["first words", "third words"]


def test_the_writer_indexes_a_full_batch_without_being_asked(writer, monkeypatch):
    monkeypatch.setattr(commit, "INDEX_BATCH", 5)
    monkeypatch.setattr(commit, "CATCH_UP_EVERY", 3600.0)  # only the batch size can start it
    user, room_pk = member_of_a_room()
    posters = [gevent.spawn(post, writer, user, room_pk, "batch %d" % i) for i in range(5)]
    gevent.joinall(posters, raise_error=True)
    assert wait_for(lambda: len(found(user, "batch")) == 5, 10,
                    "the writer to index a full batch", sleep=gevent.sleep)


def test_the_writer_indexes_what_waits_after_index_every(writer, monkeypatch):
    monkeypatch.setattr(commit, "CATCH_UP_EVERY", 0.05)
    user, room_pk = member_of_a_room()
    post(writer, user, room_pk, "alone")
    assert found(user, "alone") == []
    assert wait_for(lambda: found(user, "alone") == ["alone"], 10,
                    "the writer to index a message after CATCH_UP_EVERY", sleep=gevent.sleep)


def test_the_catch_up_moves_each_senders_marker_to_their_last_message(writer):
    user, room_pk = member_of_a_room()
    last = [post(writer, user, room_pk, "note %d" % i) for i in range(3)][-1]
    assert models.transaction(markers.marker)(user.id, room_pk) == 0
    writer.catch_up_now(index=False)  # what a read of markers asks for
    assert models.transaction(markers.marker)(user.id, room_pk) == last
