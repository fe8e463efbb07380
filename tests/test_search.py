"""Search (PROTOCOL.md section 9) on SQLite (FTS5) and PostgreSQL (GIN), against real chatd.

Only rooms the caller is in; every word, the last as a prefix; newest first;
a cursor that neither repeats nor skips while messages keep arriving; edits
by their current text, deletions never; Latin with accents, Cyrillic, CJK.
"""
import pytest

from helpers import unique
from test_unread import delete, edit, roomlog, send  # noqa: F401 (roomlog: a fixture)


def search(client, q, status=200, **params):
    r = client.get("/api/search", params=dict(q=q, **params))
    assert r.status_code == status, r.text
    return r.json()


def found(client, q, **params):
    return [hit["message"] for hit in search(client, q, **params)["results"]]


@pytest.fixture
def room(client):
    """A user, a room of theirs and a socket joined to it; every test uses its own word."""
    owner = client()
    room_id = owner.create_room()
    sock = owner.ws(join=room_id)
    yield owner, room_id, sock
    sock.close()


def test_every_word_in_any_case_the_last_as_a_prefix(room):
    owner, room_id, sock = room
    tag = unique("t")
    for text in ("%s hello world" % tag, "%s Hello there" % tag, "%s goodbye world" % tag):
        send(sock, room_id, text)
    assert found(owner, "%s HELLO" % tag) == ["%s Hello there" % tag, "%s hello world" % tag]
    assert found(owner, "%s world hel" % tag) == ["%s hello world" % tag]
    assert found(owner, "%s wor" % tag) == ["%s goodbye world" % tag, "%s hello world" % tag]
    assert found(owner, "%s wor hello" % tag) == []  # only the last word is a prefix
    assert found(owner, "%s, (world) AND \"hello*\"" % tag) == []  # punctuation is no syntax
    assert found(owner, "%s! world" % tag)[1] == "%s hello world" % tag


def test_results_carry_the_section_9_shape(room):
    owner, room_id, sock = room
    tag = unique("t")
    msg_id = send(sock, room_id, "%s shaped" % tag)
    body = search(owner, tag)
    assert body["next"] is None
    (hit,) = body["results"]
    assert hit["roomId"] == room_id and hit["id"] == msg_id and hit["sender"] == owner.username
    assert hit["message"] == "%s shaped" % tag and hit["timestamp"].endswith("Z")
    assert isinstance(hit["roomName"], str) and hit["roomName"]


def test_only_rooms_the_caller_is_in(room, client):
    owner, room_id, sock = room
    tag = unique("t")
    send(sock, room_id, "%s secret" % tag)
    other = client()
    assert found(other, tag) == []
    r = other.get("/api/search", params={"q": tag, "roomId": room_id})
    assert r.status_code in (403, 404)  # 404 once rooms can be invisible (issue 14)
    assert other.post("/api/join-room", {"roomId": room_id}).status_code == 200
    assert found(other, tag) == ["%s secret" % tag]
    assert other.post("/api/leave-room", {"roomId": room_id}).status_code == 200
    assert found(other, tag) == []  # a room left is not searched


def test_within_one_room(room):
    owner, room_id, sock = room
    tag = unique("t")
    second = owner.create_room()
    other = owner.ws(join=second)
    send(sock, room_id, "%s in the first" % tag)
    send(other, second, "%s in the second" % tag)
    other.close()
    assert found(owner, tag, roomId=second) == ["%s in the second" % tag]
    assert len(found(owner, tag)) == 2
    r = owner.get("/api/search", params={"q": tag, "roomId": "room_99999999"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_pages_neither_repeat_nor_skip_while_messages_arrive(room):
    owner, room_id, sock = room
    tag = unique("t")
    old = [send(sock, room_id, "%s page %d" % (tag, n)) for n in range(25)]
    seen, cursor = [], None
    while True:
        params = {"limit": 10} if cursor is None else {"limit": 10, "cursor": cursor}
        body = search(owner, tag, **params)
        seen += [hit["id"] for hit in body["results"]]
        send(sock, room_id, "%s arriving after page %d" % (tag, len(seen)))
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == sorted(old, reverse=True)  # newest first, each once, none skipped
    assert len(found(owner, tag, limit=100)) == 25 + 3


@pytest.mark.parametrize("params", [
    {"q": ""}, {"q": "x" * 201}, {"q": " ,.!? "}, {},
    {"q": "fine", "limit": "0"}, {"q": "fine", "limit": "101"}, {"q": "fine", "limit": "ten"},
    {"q": "fine", "cursor": "not-a-cursor"}, {"q": "fine", "cursor": ""},
])
def test_bad_queries_are_bad_requests(client, params):
    r = client().get("/api/search", params=params)
    assert r.status_code == 400 and r.json()["error"] == "bad_request"


def test_limits_at_the_edges_are_fine(client):
    user = client()
    for params in ({"q": "x" * 200}, {"q": "a", "limit": "1"}, {"q": "a", "limit": "100"}):
        assert search(user, **params)["results"] == []


def test_search_needs_a_token(client):
    r = client(register=False).get("/api/search", params={"q": "x"}, auth=False)
    assert r.status_code == 401


@pytest.mark.parametrize("text,query,hit", [
    # Latin with accents: case and accents are both folded
    ("Rendez-vous au café à %s", "CAFE", True),
    ("Rendez-vous au cafe à %s", "café", True),
    ("Crème brûlée chez %s", "creme brul", True),
    # Cyrillic
    ("Привет, мир! %s", "мир", True),
    ("Привет, мир! %s", "ПРИВ", True),
    ("Привет, мир! %s", "мирный", False),
    # CJK: words separated by spaces or punctuation are words; a run is one word,
    # found whole or by its beginning, not by a word inside it
    ("你好 世界 %s", "世界", True),
    ("東京、大阪 %s", "大阪", True),
    ("你好世界 %s", "你好世界", True),
    ("%s 你好世界", "你好", True),
    ("%s 你好世界", "世界", False),
    ("%s 日本語のテキスト", "日本", True),
])
def test_words_in_any_script(room, text, query, hit):
    owner, room_id, sock = room
    tag = unique("t")
    message = text % tag
    send(sock, room_id, message)
    # the tag first, so the word under test is the prefix when it is last
    assert found(owner, "%s %s" % (tag, query)) == ([message] if hit else [])


def test_edits_are_found_by_their_current_text_deletions_never(roomlog, room):
    owner, room_id, sock = room
    tag = unique("t")
    first = send(sock, room_id, "%s original wording" % tag)
    second = send(sock, room_id, "%s to be deleted" % tag)
    edit(owner, room_id, first, "%s corrected phrasing" % tag)
    assert found(owner, "%s original" % tag) == []
    assert found(owner, "%s phrasing" % tag) == ["%s corrected phrasing" % tag]
    delete(owner, room_id, second)
    assert found(owner, "%s deleted" % tag) == []
    assert found(owner, tag) == ["%s corrected phrasing" % tag]
