"""The field rules (chatd.validate), the own-username rule among them, table-driven."""
import pytest

from chatd import validate
from chatd.errors import BadRequest, Forbidden, PayloadTooLarge

OK = object()  # the value comes back as given

CASES = [
    # (rule, value, expected: OK, a returned value, or the error class)
    (validate.username, "alice", OK),
    (validate.username, "a.b-c_9", OK),
    (validate.username, "x" * 32, OK),
    (validate.username, "ab", BadRequest),
    (validate.username, "x" * 33, BadRequest),
    (validate.username, "al ice", BadRequest),
    (validate.username, "alicé", BadRequest),
    (validate.username, "alice\n", BadRequest),
    (validate.username, 42, BadRequest),
    (validate.password, "12345678", OK),
    (validate.password, "x" * 1024, OK),
    (validate.password, "1234567", BadRequest),
    (validate.password, "x" * 1025, BadRequest),
    (validate.password, "pass\x00word", BadRequest),
    (validate.password, None, BadRequest),
    (validate.room_name, "  General  ", "General"),
    (validate.room_name, "x" * 64, OK),
    (validate.room_name, "   ", BadRequest),
    (validate.room_name, "x" * 65, BadRequest),
    (validate.room_name, "a\tb", BadRequest),
    (validate.room_name, ["General"], BadRequest),
    (validate.room_id, "room_12", 12),
    (validate.room_id, "room_" + "9" * 18, 10 ** 18 - 1),
    (validate.room_id, "room_0", BadRequest),
    (validate.room_id, "room_012", BadRequest),
    (validate.room_id, "room_" + "1" * 19, BadRequest),
    (validate.room_id, "room_12\n", BadRequest),
    (validate.room_id, 12, BadRequest),
    (validate.client_msg_id, None, None),
    (validate.client_msg_id, "c-1", OK),
    (validate.client_msg_id, "x" * 64, OK),
    (validate.client_msg_id, "", BadRequest),
    (validate.client_msg_id, "x" * 65, BadRequest),
    (validate.client_msg_id, "a\x01", BadRequest),
    (validate.client_msg_id, 7, BadRequest),
]


@pytest.mark.parametrize("rule, value, expected", CASES)
def test_field_rules(rule, value, expected):
    check(lambda: rule(value), value, expected)


MESSAGES = [
    ("hello", OK),
    ("two\nlines\tand a tab", OK),
    ("x" * 30, OK),
    ("x" * 31, PayloadTooLarge),
    ("   ", BadRequest),
    ("", BadRequest),
    ("bell\x07", BadRequest),
    ("lone \ud800 surrogate", BadRequest),
    (None, BadRequest),
]


@pytest.mark.parametrize("value, expected", MESSAGES)
def test_message_text(value, expected):
    check(lambda: validate.message_text(value, 30), value, expected)


INTEGERS = [
    ("50", (1, 500), 50),
    (0, (0, 10), 0),
    ("-5", (-10, 10), -5),
    ("0", (1, 500), BadRequest),
    ("501", (1, 500), BadRequest),
    ("1e3", (1, 5000), BadRequest),
    ("5.0", (1, 500), BadRequest),
    ("9" * 19, (0, 10 ** 30), BadRequest),
    (True, (0, 10), BadRequest),
    (1.0, (0, 10), BadRequest),
]


@pytest.mark.parametrize("value, bounds, expected", INTEGERS)
def test_integers_in_a_url(value, bounds, expected):
    check(lambda: validate.integer(value, "limit", *bounds, text=True), value, expected)


@pytest.mark.parametrize("value", ["5", "0", ""])
def test_a_json_string_of_digits_is_not_an_integer(value):
    with pytest.raises(BadRequest, match="'since' must be an integer"):
        validate.integer(value, "since", 0)


JSON = [
    ('{"a": 1}', {"a": 1}),
    ("[1]", BadRequest),
    ("not json", BadRequest),
    ("[" * 30000, BadRequest),
]


@pytest.mark.parametrize("text, expected", JSON)
def test_json_object(text, expected):
    check(lambda: validate.json_object(text, "body"), text, expected)


OWN_NAME = [
    (None, OK),
    ("alice", OK),
    ("ALICE", OK),
    ("bob", Forbidden),
    (42, Forbidden),
]


@pytest.mark.parametrize("value, expected", OWN_NAME)
def test_a_field_naming_the_user_must_name_them(value, expected):
    check(lambda: validate.own_username(value, "creator", "Alice"), None, expected)


def check(call, value, expected):
    if isinstance(expected, type) and issubclass(expected, Exception):
        with pytest.raises(expected):
            call()
    else:
        assert call() == (value if expected is OK else expected)
