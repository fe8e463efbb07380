"""The frame codec on byte strings: no sockets, no gevent, milliseconds."""
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

from chatd import wscodec
from chatd.wscodec import Assembler, CloseConnection, parse_frame, peer_close_code

MAX = 1 << 16


def client_frame(payload, opcode=wscodec.OP_TEXT, fin=True, mask=b"\x01\x02\x03\x04"):
    """A masked frame as a client sends it."""
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    return head + mask + wscodec.unmask(payload, mask)


@given(st.binary(max_size=300), st.integers(0, 8))
def test_any_bytes_are_a_frame_a_close_or_a_need_for_more(data, start):
    start = min(start, len(data))
    try:
        frame, end = parse_frame(data, start, 200)
    except CloseConnection as exc:
        assert exc.code in (wscodec.CLOSE_PROTOCOL, wscodec.CLOSE_TOO_BIG)
        return
    if frame is None:
        assert end > len(data)  # needs more bytes than there are
    else:
        fin, opcode, payload = frame
        assert start < end <= len(data) and len(payload) <= 200


@given(st.binary(max_size=70000), st.sampled_from([wscodec.OP_TEXT, wscodec.OP_BINARY,
                                                   wscodec.OP_CONT]),
       st.booleans(), st.binary(min_size=4, max_size=4))
@settings(max_examples=60)
def test_a_frame_round_trips_and_every_prefix_needs_more(payload, opcode, fin, mask):
    data = b"xx" + client_frame(payload, opcode, fin, mask)
    frame, end = parse_frame(data, 2, 1 << 17)
    assert frame == (fin, opcode, payload) and end == len(data)
    for cut in {2, 3, len(data) // 2, len(data) - 1}:
        if cut < len(data):
            assert parse_frame(data[:cut], 2, 1 << 17)[0] is None


def test_the_limit_is_checked_from_the_header_alone():
    header = struct.pack("!BBQ", 0x81, 0x80 | 127, 1 << 40)  # no mask, no payload yet
    with pytest.raises(CloseConnection) as exc:
        parse_frame(header, 0, MAX)
    assert exc.value.code == wscodec.CLOSE_TOO_BIG


@pytest.mark.parametrize("data, code", [
    (struct.pack("!BB", 0x81, 5) + b"hello", wscodec.CLOSE_PROTOCOL),  # unmasked
    (struct.pack("!BB", 0xC1, 0x80) + b"mask", wscodec.CLOSE_PROTOCOL),  # reserved bit
    (struct.pack("!BB", 0x83, 0x80) + b"mask", wscodec.CLOSE_PROTOCOL),  # unknown opcode
    (struct.pack("!BB", 0x09, 0x80) + b"mask", wscodec.CLOSE_PROTOCOL),  # fragmented ping
    (struct.pack("!BB", 0x89, 0x80 | 126) + b"\x00\x7e", wscodec.CLOSE_PROTOCOL),  # long ping
])
def test_protocol_violations_close_with_1002(data, code):
    with pytest.raises(CloseConnection) as exc:
        parse_frame(data, 0, MAX)
    assert exc.value.code == code


@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0, 1, 2]), st.binary(max_size=40)),
                max_size=40))
def test_assembling_any_frames_gives_messages_or_a_close_within_the_caps(frames):
    assembler = Assembler(max_bytes=100, max_fragments=5)
    try:
        for fin, opcode, payload in frames:
            whole = assembler.add(fin, opcode, payload)
            if whole is not None:
                assert whole[0] in (wscodec.OP_TEXT, wscodec.OP_BINARY) and len(whole[1]) <= 100
            assert assembler.partial is None or len(assembler.partial) <= 100
    except CloseConnection as exc:
        assert exc.code in (wscodec.CLOSE_PROTOCOL, wscodec.CLOSE_TOO_BIG, wscodec.CLOSE_BAD_DATA)


def test_fragments_join_and_the_fragment_cap_holds():
    assembler = Assembler(max_bytes=100, max_fragments=3)
    assert assembler.add(False, wscodec.OP_TEXT, b"he") is None
    assert assembler.add(False, wscodec.OP_CONT, b"ll") is None
    assert assembler.add(True, wscodec.OP_CONT, b"o") == (wscodec.OP_TEXT, b"hello")
    assembler.add(False, wscodec.OP_TEXT, b"")
    assembler.add(False, wscodec.OP_CONT, b"")
    assembler.add(False, wscodec.OP_CONT, b"")
    with pytest.raises(CloseConnection) as exc:
        assembler.add(False, wscodec.OP_CONT, b"")
    assert (exc.value.code, exc.value.reason) == (wscodec.CLOSE_TOO_BIG, "too many fragments")


def test_invalid_utf8_text_closes_with_1007():
    with pytest.raises(CloseConnection) as exc:
        Assembler(100, 4).add(True, wscodec.OP_TEXT, b"\xff")
    assert exc.value.code == wscodec.CLOSE_BAD_DATA


@given(st.binary(max_size=125))
def test_a_peer_close_payload_is_a_code_or_a_close(payload):
    try:
        code = peer_close_code(payload)
    except CloseConnection as exc:
        assert exc.code in (wscodec.CLOSE_PROTOCOL, wscodec.CLOSE_BAD_DATA)
    else:
        assert code == 1000 or 1000 <= code <= 4999


def test_server_frames_are_unmasked_and_sized_by_length():
    for n in (0, 125, 126, 65535, 65536):
        frame = wscodec.encode_frame(os.urandom(n))
        assert frame[0] == 0x81 and not frame[1] & 0x80 and frame.endswith(frame[-n:] if n else b"")
        assert len(frame) == n + {0: 2, 125: 2, 126: 4, 65535: 4, 65536: 10}[n]
