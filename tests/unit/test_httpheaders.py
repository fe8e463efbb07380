"""chatd's header parser against the one pywsgi would use, on arbitrary heads."""
import io
from http import client

import pytest
from gevent.pywsgi import OldMessage
from hypothesis import given, settings, strategies as st

from chatd import httpheaders

# Pieces that exercise every rule: names, colons, folding, bare CR and LF,
# envelope lines, bytes outside ASCII, lines that end the headers early.
PIECES = st.sampled_from([b"Host", b"X-A", b"a_b", b"From ", b"From", b":", b": ", b" ", b"\t",
                          b"\r\n", b"\n", b"\r", b"value", b"\x80\xff", b"\x00", b"(", b"=",
                          b"Upgrade: websocket\r\n", b" folded\r\n", b"bad line\r\n"])


def stdlib(data):
    """What http.client.parse_headers makes of `data` (pywsgi's own path)."""
    return client.parse_headers(io.BytesIO(data), _class=OldMessage)


@settings(max_examples=2000, deadline=None)
@given(st.lists(PIECES, max_size=40))
def test_the_same_headers_as_the_email_parser(pieces):
    data = b"".join(pieces) + b"\r\n\r\n"
    ours, theirs = httpheaders.parse(io.BytesIO(data)), stdlib(data)
    assert ours._headers == theirs._headers
    assert ours.get("host") == theirs.get("host")


@given(st.binary(max_size=200))
def test_any_bytes_give_the_same_headers(data):
    data += b"\r\n\r\n"
    assert httpheaders.parse(io.BytesIO(data))._headers == stdlib(data)._headers


def test_a_browser_head():
    data = (b"Host: chat.example:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Cookie: a=1\r\n\tb=2\r\n\r\nbody")
    headers = httpheaders.parse(io.BytesIO(data))
    assert headers.status == ""
    assert headers.get("upgrade") == "websocket"
    assert headers.get("cookie") == "a=1\r\n\tb=2"
    assert list(headers.headers) == list(stdlib(data).headers)


def test_a_line_over_the_limit_is_a_status_not_an_exception():
    data = b"X: " + b"a" * httpheaders.MAX_LINE + b"\r\n\r\n"
    assert httpheaders.parse(io.BytesIO(data)).status == "Line too long"


def test_too_many_lines_raise_as_http_client_does():
    data = b"X: 1\r\n" * (httpheaders.MAX_LINES + 1) + b"\r\n"
    with pytest.raises(client.HTTPException):
        stdlib(data)
    with pytest.raises(client.HTTPException):
        httpheaders.parse(io.BytesIO(data))
