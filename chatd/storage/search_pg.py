"""Search on PostgreSQL: a stored tsvector column with a GIN index.

`search_vector` is a generated column, to_tsvector('simple', chatd_fold(text)):
PostgreSQL computes it in the inserting or updating statement itself (an
edit re-indexes the current text; a deletion erases the text, so its vector
is empty, and the index skips deleted rows anyway), and adding it to an
upgraded database computes it for every message already stored.
Stored rather than an expression index: a query may also walk the
messages newest first and test each one's vector (a common word: the
first 20 matches are near), and a stored vector costs a comparison there
where an expression costs re-parsing the text (~90 us a row); ANALYZE also
keeps word statistics on a column, which lets the planner choose between
that walk and the GIN index (a rare word).

fastupdate is on with a small pending list (256 kB, not the default
4 MB): inserts add to the list, and the insert that finds it full merges it
into the index. Off, every message updated the posting tree of each of its
words in its own statement: at 20,000 deliveries/s the message p99 was
570-860 ms against 52-123 ms without the index. With the default 4 MB
list, the one message that merges it waits for the whole merge (the stall
Synapse met); at 256 kB the merges are small and the p99 is the same with
the index as without (bench/search_indexing.py, docs/performance.md). A
search reads the pending list too, which at this size costs little.

'simple' config: lower-cased words, no stemming, no stop words (any
language alike). chatd_fold also removes accents when the unaccent
extension can be had (`é` = `e`); without it accents count. The default
parser does not segment CJK: a run of Han, kana or Hangul is one word,
found whole or by its beginning (prefix). Newest first is message id
descending (within one room, seq: the same order); the cursor is the last
id of a page.
"""
from . import models

_AVAILABLE = "SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'"
_FOLD = ("CREATE OR REPLACE FUNCTION chatd_fold(text) RETURNS text LANGUAGE sql IMMUTABLE "
         "PARALLEL SAFE AS $$ SELECT lower(%s) $$")
_HAS_FOLD = "SELECT 1 FROM pg_proc WHERE proname = 'chatd_fold'"
_HAS_COLUMN = ("SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
               "AND table_name = 'message' AND column_name = 'search_vector'")
_COLUMN = ('ALTER TABLE "message" ADD COLUMN search_vector tsvector GENERATED ALWAYS AS '
           "(to_tsvector('simple'::regconfig, chatd_fold(\"text\"))) STORED")
_STORAGE = "fastupdate = on, gin_pending_list_limit = 256"
_INDEX = ('CREATE INDEX IF NOT EXISTS message_search ON "message" USING gin (search_vector) '
          'WITH (' + _STORAGE + ') WHERE NOT "deleted"')

_SEARCH = (
    'SELECT m."id", m."room_id", r."name", m."seq", u."username", m."text", m."created_at" '
    'FROM "message" m JOIN "room" r ON r."id" = m."room_id" '
    'LEFT OUTER JOIN "user" u ON u."id" = m."sender_id" '
    "WHERE m.search_vector @@ to_tsquery('simple'::regconfig, chatd_fold(%(q)s)) "
    'AND NOT m."deleted" AND m."id" < %(before)s AND {rooms} LIMIT %(limit)s')
_ALL_ROOMS = ('m."room_id" IN (SELECT "room_id" FROM "membership" WHERE "user_id" = %(user)s) '
              'ORDER BY m."id" DESC')
# Within a room seq order is id order (a room's messages are numbered under
# its row lock): the (room, seq) index then walks just that room.
_ONE_ROOM = 'm."room_id" = %(room)s ORDER BY m."seq" DESC'
NO_CURSOR = 2 ** 62


def ensure(database):
    """chatd_fold (with unaccent if it can be had), the vector column and its GIN index."""
    if not database.execute_sql(_HAS_FOLD).fetchone():
        database.execute_sql(_FOLD % _fold_body(database))
    if not database.execute_sql(_HAS_COLUMN).fetchone():
        database.execute_sql(_COLUMN)
    database.execute_sql(_INDEX)


def _fold_body(database):
    """unaccent's call if the extension is there or can be made here, else the text as is."""
    if not database.execute_sql(_AVAILABLE).fetchone():
        return "$1"
    try:
        with database.atomic():  # a savepoint: a refusal must not end the migration
            database.execute_sql("CREATE EXTENSION IF NOT EXISTS unaccent")
            schema = database.execute_sql(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n "
                "ON n.oid = e.extnamespace WHERE e.extname = 'unaccent'").fetchone()[0]
    except Exception:  # no privilege to create it: accents then count
        return "$1"
    # Schema-qualified with its dictionary named: IMMUTABLE functions in an
    # index must not depend on search_path.
    return "%s.unaccent('%s.unaccent'::regdictionary, $1)" % (schema, schema)


def tune(database):
    """An index made by 0.2.0's development (fastupdate off) takes today's storage
    parameters; new pending entries follow them at once."""
    database.execute_sql("ALTER INDEX IF EXISTS message_search SET (%s)" % _STORAGE)


def rebuild(database):
    """Make the index afresh, without blocking writers (REINDEX CONCURRENTLY needs autocommit)."""
    with database.atomic():
        ensure(database)
    database.execute_sql("REINDEX INDEX CONCURRENTLY message_search")


def tsquery(query):
    """to_tsquery's text: every word, the last as a prefix. Words are letters and
    digits only (searchquery), so quoting each keeps tsquery syntax out of it."""
    terms = ["'%s'" % word for word in query.words] + ["'%s':*" % query.prefix]
    return " & ".join(terms)


def search(user_pk, query, room_pk, before, limit):
    """As search_sqlite.search."""
    rooms = _ONE_ROOM if room_pk is not None else _ALL_ROOMS
    params = {"q": tsquery(query), "before": NO_CURSOR if before is None else before,
              "user": user_pk, "room": room_pk, "limit": limit}
    return models.proxy.obj.execute_sql(_SEARCH.format(rooms=rooms), params).fetchall()
