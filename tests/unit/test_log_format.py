"""Log lines' times, made once per second: the same text as made for each line."""
import logging
import time

from hypothesis import given, strategies as st

from chatd.logs import TEXT_FORMAT, JsonFormatter, TextFormatter

# From 2001 to 2100, in milliseconds and finer, in any order (a clock may step back).
times = st.lists(st.floats(1e9, 4.1e9, allow_nan=False), min_size=1, max_size=30)


def record(created):
    rec = logging.LogRecord("chatd.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    rec.created, rec.msecs = created, int((created - int(created)) * 1000) + 0.0
    return rec


@given(times)
def test_a_text_line_reads_as_logging_makes_it(moments):
    ours, stock = TextFormatter(), logging.Formatter(TEXT_FORMAT)
    for created in moments:
        assert ours.format(record(created)) == stock.format(record(created))


@given(times)
def test_a_json_line_has_its_own_time_in_utc(moments):
    ours = JsonFormatter()
    for created in moments:
        line = ours.format(record(created))
        expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + (
            ".%03dZ" % (int(created * 1000) % 1000))
        assert line.startswith('{"time": "%s", "level": "INFO"' % expected)


def test_lines_a_second_apart_have_their_own_seconds():
    ours = TextFormatter()
    first, second = ours.format(record(1764633599.999)), ours.format(record(1764633600.0))
    assert first != second
    assert second == logging.Formatter(TEXT_FORMAT).format(record(1764633600.0))
