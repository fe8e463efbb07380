"""The socket-activation variables, read as sd_listen_fds(3) reads them."""
import pytest
from hypothesis import given, strategies as st

from chatd import systemd

PID = 4242


@pytest.mark.parametrize("environ, count", [
    ({}, 0),
    ({"LISTEN_FDS": "1"}, 0),                        # no owner: not for us
    ({"LISTEN_PID": str(PID)}, 0),                   # no count: nothing passed
    ({"LISTEN_PID": "1", "LISTEN_FDS": "1"}, 0),     # another process's (inherited)
    ({"LISTEN_PID": "x", "LISTEN_FDS": "1"}, 0),
    ({"LISTEN_PID": "\u0664\u0662\u0664\u0662", "LISTEN_FDS": "1"}, 0),  # 4242 in Arabic digits
    ({"LISTEN_PID": str(PID), "LISTEN_FDS": "1"}, 1),
    ({"LISTEN_PID": str(PID), "LISTEN_FDS": "3"}, 3),
])
def test_how_many_sockets_were_passed(environ, count):
    assert systemd.listen_fds(environ, PID) == count


@pytest.mark.parametrize("bad", ["", "0", "-1", "two", "1.0", " 1", "99999", "\u0661"])
def test_a_count_for_us_that_is_not_one_we_can_use_is_an_error(bad):
    with pytest.raises(ValueError, match="LISTEN_FDS"):
        systemd.listen_fds({"LISTEN_PID": str(PID), "LISTEN_FDS": bad}, PID)


@given(st.text(max_size=12), st.text(max_size=12))
def test_any_variables_give_a_count_or_one_error(owner, count):
    try:
        found = systemd.listen_fds({"LISTEN_PID": owner, "LISTEN_FDS": count}, PID)
    except ValueError as exc:
        assert owner.isascii() and int(owner) == PID and "LISTEN_FDS" in str(exc)
    else:
        assert found == 0 or (owner.isascii() and int(owner) == PID and found == int(count))
