"""events.iso runs on the event loop and on the SQLite writer thread at once."""
import datetime
import sys

from chatd import events

FIRST, OTHER = 1_000_000_000_123, 1_500_000_000_456


def expected(ms):
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def test_iso_formats_milliseconds_in_utc():
    assert events.iso(0) == "1970-01-01T00:00:00.000Z"
    assert events.iso(1733832000123) == "2024-12-10T12:00:00.123Z"


def test_another_thread_formatting_between_any_two_lines_changes_nothing():
    """The other thread is simulated at every line boundary of iso (deterministic,
    where real threads hit the window only by chance): each time iso is about to
    run a line for FIRST, a call for another second runs in between."""
    interleaving = []

    def tracer(frame, event, arg):
        if frame.f_code is not events.iso.__code__ or interleaving:
            return None
        def on_line(frame, event, arg):
            if event == "line" and not interleaving:
                interleaving.append(True)
                events.iso(OTHER)  # what the writer thread does meanwhile
                interleaving.clear()
            return on_line
        return on_line

    for warm in (FIRST, OTHER):  # the cache holding our second, then another one
        events.iso(warm)
        sys.settrace(tracer)
        try:
            got = events.iso(FIRST)
        finally:
            sys.settrace(None)
        assert got == expected(FIRST)
