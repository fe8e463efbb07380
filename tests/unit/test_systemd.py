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
    ({"LISTEN_PID": str(PID), "LISTEN_FDS": "0"}, 0),   # sd_listen_fds: none passed
    ({"LISTEN_PID": str(PID), "LISTEN_FDS": "1"}, 1),
    ({"LISTEN_PID": str(PID), "LISTEN_FDS": "3"}, 3),
])
def test_how_many_sockets_were_passed(environ, count):
    assert systemd.listen_fds(environ, PID) == count


@pytest.mark.parametrize("bad", ["", "-1", "two", "1.0", " 1", "99999", "\u0661"])
def test_a_count_for_us_that_is_not_one_we_can_use_is_an_error(bad):
    with pytest.raises(ValueError, match="LISTEN_FDS"):
        systemd.listen_fds({"LISTEN_PID": str(PID), "LISTEN_FDS": bad}, PID)


# Owners and counts that are often ours and often valid, so every branch is drawn.
OWNERS = st.one_of(st.just(str(PID)), st.integers(0, 99999).map(str), st.text(max_size=12))
COUNTS = st.one_of(st.integers(-5, 2000).map(str), st.text(max_size=12))


@given(OWNERS, COUNTS)
def test_any_variables_give_the_count_passed_to_us_or_one_error(owner, count):
    ours = owner.isascii() and owner.isdigit() and int(owner) == PID
    valid = count.isascii() and count.isdigit() and int(count) <= 1024
    environ = {"LISTEN_PID": owner, "LISTEN_FDS": count}
    if ours and not valid:
        with pytest.raises(ValueError, match="LISTEN_FDS"):
            systemd.listen_fds(environ, PID)
    else:
        assert systemd.listen_fds(environ, PID) == (int(count) if ours else 0)
