"""An atheris harness for the frame codec, for runs longer than the property tests.

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/fuzz_wscodec.py -max_total_time=600

Any exception other than CloseConnection, or a frame past the limit, is a
crash that atheris reports with the input that caused it.
"""
import sys

import atheris

with atheris.instrument_imports():
    from chatd.wscodec import Assembler, CloseConnection, parse_frame, peer_close_code

LIMIT = 4096


def one_input(data):
    assembler = Assembler(LIMIT, 16)
    start = 0
    try:
        while True:
            frame, end = parse_frame(data, start, LIMIT)
            if frame is None:
                assert end > len(data)
                return
            fin, opcode, payload = frame
            assert len(payload) <= LIMIT and end > start
            start = end
            if opcode == 0x8:
                peer_close_code(payload)
            elif opcode < 0x8:
                assembler.add(fin, opcode, payload)
    except CloseConnection:
        pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
