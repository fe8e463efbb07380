"""Logging: stderr in text or JSON lines, and a throttle for failures that repeat.

A database that is away fails every request and every poll: a traceback for
each would bury everything else (a full disk logged 1,020 in 25 s). Where
such failures are logged, `Throttle` logs the first with its traceback,
then one line with a count per interval, then one line when it recovers.
"""
import json
import logging
import sys
import time

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _PerSecond:
    """The text of a time's second, made once per second, not per line: every
    connection's end is a line, 19,000 of them when a busy chatd stops.

    Read and replaced as one pair (one reference swap): other threads log too.
    """

    def __init__(self, make):
        self.make = make
        self.last = (None, "")

    def __call__(self, created):
        second = int(created)
        last = self.last
        if last[0] != second:
            last = self.last = (second, self.make(second))
        return last[1]


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, its time local as logging's default: 2026-12-01 23:56:29,317."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)
        self._second = _PerSecond(lambda s: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s)))

    def formatTime(self, record, datefmt=None):
        return "%s,%03d" % (self._second(record.created), record.msecs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339, UTC), level, logger, message."""

    def __init__(self):
        super().__init__()
        self._second = _PerSecond(lambda s: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)))

    def format(self, record):
        created = record.created
        entry = {"time": "%s.%03dZ" % (self._second(created), int(created * 1000) % 1000),
                 "level": record.levelname,
                 "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level, form):
    """Log to stderr at `level` in `form` ("text" or "json")."""
    # What no line of ours shows, logging would still find out for each: the
    # thread (under gevent a dummy Thread made for every greenlet that logs),
    # the process, and the caller's file and line. With them, the lines of a
    # stopping chatd's 19,000 connections were 39% of its CPU (py-spy). The
    # logging HOWTO ("Optimization") names these switches.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Throttle:
    """Log a run of like failures as: the first (with traceback), a count per `every` s, the end."""

    def __init__(self, log, what, every=60.0, clock=time.monotonic):
        self.log, self.what, self.every, self.clock = log, what, every, clock
        self.failures = 0  # in the current run
        self.unlogged = 0  # since the last line
        self.last_line = 0.0

    def failed(self, exc=None):
        """One more failure; call from an except block (the first keeps its traceback)."""
        self.failures += 1
        now = self.clock()
        if self.failures == 1:
            self.log.error("%s: %s", self.what, _one_line(exc), exc_info=exc is not None)
            self.last_line = now
        elif now - self.last_line >= self.every:
            self.log.error("%s: %d more failures in the last %.0f s (%s)",
                           self.what, self.unlogged + 1, now - self.last_line, _one_line(exc))
            self.unlogged, self.last_line = 0, now
        else:
            self.unlogged += 1

    def succeeded(self):
        """The run is over (if there was one): say so once."""
        if self.failures:
            self.log.warning("%s: working again after %d failures", self.what, self.failures)
        self.failures = self.unlogged = 0


def _one_line(exc):
    if exc is None:
        return "failed"
    text = str(exc).strip().splitlines()
    return "%s: %s" % (type(exc).__name__, text[0]) if text else type(exc).__name__
