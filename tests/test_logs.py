"""chatd.logs.Throttle: a run of like failures logs the first, then a count, then the end."""
import logging

from chatd.logs import Throttle


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


def test_a_run_of_failures_is_three_lines_not_one_per_failure():
    log = logging.getLogger("chatd.test-throttle")
    log.propagate = False
    records = Records()
    log.addHandler(records)
    now = [0.0]
    throttle = Throttle(log, "control events", every=60.0, clock=lambda: now[0])
    for _ in range(120):  # a minute of polls every 0.5 s against a database that is away
        try:
            raise OSError("connection refused")
        except OSError as exc:
            throttle.failed(exc)
        now[0] += 0.5
    throttle.failed(OSError("connection refused"))
    throttle.succeeded()
    throttle.succeeded()  # nothing more to say
    lines = [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in records.records]
    assert lines == [
        ("ERROR", "control events: OSError: connection refused", True),
        ("ERROR", "control events: 120 more failures in the last 60 s (OSError: connection refused)",
         False),
        ("WARNING", "control events: working again after 121 failures", False)]
