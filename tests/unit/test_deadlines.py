"""The sweeper's timing wheel: an item comes out once, never before its time,
at most one tick after it, and never once forgotten."""
import pytest
from hypothesis import given, strategies as st

from chatd.deadlines import Deadlines


def test_an_item_comes_out_after_its_time_and_once():
    wheel = Deadlines(1.0, now=100.0)
    wheel.schedule("a", 102.5)
    assert wheel.due(102.9) == []       # its tick has not ended
    assert wheel.due(103.0) == ["a"]
    assert wheel.due(110.0) == []
    assert len(wheel) == 0


def test_scheduling_again_moves_the_item():
    wheel = Deadlines(1.0, now=0.0)
    wheel.schedule("a", 5.0)
    wheel.schedule("a", 2.0)
    assert wheel.due(3.0) == ["a"]
    wheel.schedule("b", 4.0)
    wheel.schedule("b", 8.0)            # later: the earlier place is emptied
    assert wheel.due(5.0) == []
    assert wheel.due(9.0) == ["b"]
    assert wheel.due(20.0) == []


def test_next_tick_is_when_the_next_due_can_hand_anything_out():
    wheel = Deadlines(0.5, now=10.2)
    assert wheel.next_tick == 10.0      # nothing handed out yet: due() may run at once
    wheel.schedule("a", 10.3)
    wheel.due(10.2)
    assert wheel.next_tick == 10.5
    assert wheel.due(wheel.next_tick) == ["a"]


def test_a_forgotten_item_never_comes_out():
    wheel = Deadlines(0.5, now=0.0)
    wheel.schedule("a", 1.0)
    wheel.forget("a")
    wheel.forget("never scheduled")
    assert len(wheel) == 0
    assert wheel.due(100.0) == []


def test_a_time_already_past_comes_out_at_the_next_due():
    wheel = Deadlines(1.0, now=50.0)
    assert wheel.due(50.0) == []
    wheel.schedule("late", 10.0)
    assert wheel.due(51.0) == ["late"]


def test_every_due_item_comes_out_in_one_call():
    wheel = Deadlines(0.25, now=0.0)
    for i in range(1000):
        wheel.schedule(i, i / 100)
    assert sorted(wheel.due(11.0)) == list(range(1000))


@pytest.mark.parametrize("tick", [0, -1])
def test_the_tick_must_be_positive(tick):
    with pytest.raises(ValueError):
        Deadlines(tick, now=0.0)


# A run of operations against a plain dict of item -> time, the oracle.
ops = st.lists(st.one_of(
    st.tuples(st.just("schedule"), st.integers(0, 5), st.floats(0, 40, allow_nan=False)),
    st.tuples(st.just("forget"), st.integers(0, 5), st.just(0.0)),
    st.tuples(st.just("advance"), st.just(0), st.floats(0, 5, allow_nan=False)),
), max_size=60)


@given(st.sampled_from([0.1, 0.5, 1.0, 3.0]), ops)
def test_the_wheel_agrees_with_a_dict_of_times(tick, operations):
    now = 0.0
    wheel = Deadlines(tick, now)
    pending = {}     # item -> (time, earliest now it may come out at: when due() was last called)
    last_due = now
    for op, item, value in operations:
        if op == "schedule":
            pending[item] = (value, last_due)
            wheel.schedule(item, value)
        elif op == "forget":
            pending.pop(item, None)
            wheel.forget(item)
        else:
            now += value
            out = wheel.due(now)
            assert len(out) == len(set(out))
            for item in out:
                when, _ = pending.pop(item)
                assert now > when                        # never early
            for item, (when, scheduled_at) in pending.items():
                # still waiting: only while its tick (or, for a time already past
                # when scheduled, the tick after the last due) has not ended
                assert now // tick < max(when // tick, scheduled_at // tick) + 1
            last_due = now
        assert len(wheel) == len(pending)
