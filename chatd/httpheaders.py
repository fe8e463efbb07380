"""A request's header lines, parsed as pywsgi parses them, without the email package.

pywsgi reads a request's headers with http.client.parse_headers, which
reads the lines and hands them to the email package's feed parser: a
generator, a line buffer and a policy object per request, 8% of chatd's
CPU in a reconnect storm (bench/storm.py --profile). This reads the same
lines with the same limits and builds the same header list, rule for rule
(tests/unit/test_httpheaders.py compares the two on arbitrary input): the
lines are split at CR, LF or CRLF; the first line that is neither a header
("name:" in printable ASCII), a continuation (leading space or tab) nor
"From " ends the headers; a continuation joins the header before it.
"""
import io
import re
from http import client

from gevent.pywsgi import OldMessage

MAX_LINE = 65536   # http.client's limits, which pywsgi's parser has
MAX_LINES = 100

_HEADER_LINE = re.compile(r"From |[\041-\071\073-\176]*:|[\t ]")


def parse(fp):
    """The headers after the request line, as the message pywsgi expects.

    A line over MAX_LINE gives a message whose status says so (pywsgi then
    answers 400); more than MAX_LINES lines raise client.HTTPException.
    """
    try:
        raw = read_lines(fp)
    except client.LineTooLong:
        message = OldMessage()
        message.status = "Line too long"
        return message
    message = OldMessage()
    lines = []
    for line in io.StringIO(b"".join(raw).decode("iso-8859-1"), newline="").readlines():
        if not _HEADER_LINE.match(line):
            break
        lines.append(line)
    add = message._headers.append
    current = None  # the source lines of the header being read
    for line in lines:
        if line[0] in " \t":
            if current:
                current.append(line)
            continue
        if current:
            add(_header(current))
            current = None
        if line.startswith("From "):
            continue  # an envelope line, not a header
        if line.find(":") > 0:
            current = [line]
    if current:
        add(_header(current))
    return message


def read_lines(fp):
    """The raw lines up to and including the blank one, as http.client reads them."""
    lines = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_LINES:
            raise client.HTTPException("got more than %d headers" % MAX_LINES)
        if line in (b"\r\n", b"\n", b""):
            return lines


def _header(source):
    """(name, value) of one header's source lines (the email package's compat32 rule)."""
    name, value = source[0].split(":", 1)
    return name, (value.lstrip(" \t") + "".join(source[1:])).rstrip("\r\n")
