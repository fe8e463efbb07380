"""The WebSocket frame codec (RFC 6455), pure: bytes in, frames and messages out.

No sockets and no gevent here, so every rule is tested in-process on byte
strings (tests/unit/test_wscodec.py, with hypothesis). Limits are checked
from the header, before any payload is buffered: a frame over `max_bytes`
is refused from its first 10 bytes. wsconn reads sockets with it.
"""
import struct

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
_OPCODES = (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG)

CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL = 1000, 1001, 1002
CLOSE_UNSUPPORTED, CLOSE_BAD_DATA, CLOSE_POLICY = 1003, 1007, 1008
CLOSE_TOO_BIG, CLOSE_TRY_LATER = 1009, 1013
_PEER_CLOSE_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)


class CloseConnection(Exception):
    """The peer broke the protocol: close with this code."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def encode_frame(payload, opcode=OP_TEXT):
    """A whole unmasked server frame; the same bytes are valid on every socket."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def close_frame(code, reason=""):
    return encode_frame(struct.pack("!H", code) + reason.encode("utf-8")[:120], OP_CLOSE)


PING_FRAME = encode_frame(b"", OP_PING)


def unmask(data, mask):
    """XOR with the 4-byte mask, done on one big integer instead of per byte."""
    n = len(data)
    if not n:
        return data
    key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


def parse_frame(buf, start, max_bytes):
    """The client frame at buf[start:]: ((fin, opcode, payload), end), or (None, n)
    when the frame is not all there yet and needs at least n bytes of buf in all.

    Raises CloseConnection for anything RFC 6455 refuses or over max_bytes.
    """
    have = len(buf) - start
    if have < 2:
        return None, start + 2
    b1, b2 = buf[start], buf[start + 1]
    fin, opcode, length = bool(b1 & 0x80), b1 & 0x0F, b2 & 0x7F
    if b1 & 0x70:
        raise CloseConnection(CLOSE_PROTOCOL, "reserved bits set")
    if opcode not in _OPCODES:
        raise CloseConnection(CLOSE_PROTOCOL, "unknown opcode")
    if not b2 & 0x80:
        raise CloseConnection(CLOSE_PROTOCOL, "client frames must be masked")
    if opcode >= OP_CLOSE and (not fin or length > 125):
        raise CloseConnection(CLOSE_PROTOCOL, "bad control frame")
    head = 2
    if length >= 126:
        extra = 2 if length == 126 else 8
        if have < 2 + extra:
            return None, start + 2 + extra
        length = int.from_bytes(buf[start + 2:start + 2 + extra], "big")
        head += extra
    if length > max_bytes:
        raise CloseConnection(CLOSE_TOO_BIG, "frame too large")
    end = start + head + 4 + length
    if len(buf) < end:
        return None, end
    mask = bytes(buf[start + head:start + head + 4])
    return (fin, opcode, unmask(bytes(buf[start + head + 4:end]), mask)), end


def peer_close_code(payload):
    """The code of a peer's close frame (1000 when it gave none); CloseConnection if invalid."""
    if not payload:
        return CLOSE_NORMAL
    if len(payload) == 1:
        raise CloseConnection(CLOSE_PROTOCOL, "bad close payload")
    code = struct.unpack("!H", payload[:2])[0]
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise CloseConnection(CLOSE_BAD_DATA, "invalid UTF-8 in close reason")
    if code not in _PEER_CLOSE_CODES and not 3000 <= code <= 4999:
        raise CloseConnection(CLOSE_PROTOCOL, "invalid close code")
    return code


class Assembler:
    """Data frames in, whole messages out, with caps on bytes and fragments.

    A fragmented message is joined as it comes into one buffer, so an
    unfinished one costs its bytes (at most max_bytes), not its frames.
    """

    __slots__ = ("max_bytes", "max_fragments", "partial", "_opcode", "_fragments")

    def __init__(self, max_bytes, max_fragments):
        self.max_bytes = max_bytes
        self.max_fragments = max_fragments
        self.partial = None  # the unfinished message's bytes so far
        self._opcode = None
        self._fragments = 0

    def add(self, fin, opcode, payload):
        """A data frame; (opcode, message bytes) once a message is whole, else None."""
        if self.partial is None:
            if opcode == OP_CONT:
                raise CloseConnection(CLOSE_PROTOCOL, "continuation without a start")
            if fin:
                return opcode, _checked(opcode, payload)
            self.partial, self._opcode, self._fragments = bytearray(payload), opcode, 1
            return None
        if opcode != OP_CONT:
            raise CloseConnection(CLOSE_PROTOCOL, "expected a continuation frame")
        self._fragments += 1
        if self._fragments > self.max_fragments:
            raise CloseConnection(CLOSE_TOO_BIG, "too many fragments")
        if len(self.partial) + len(payload) > self.max_bytes:
            raise CloseConnection(CLOSE_TOO_BIG, "message too large")
        self.partial += payload
        if not fin:
            return None
        data, self.partial = bytes(self.partial), None
        return self._opcode, _checked(self._opcode, data)


def _checked(opcode, data):
    if opcode == OP_TEXT:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise CloseConnection(CLOSE_BAD_DATA, "invalid UTF-8")
    return data
