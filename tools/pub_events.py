#!/usr/bin/python3
"""
pub_events.py — an independent producer of outpost's event wire format (version 1,
docs/wire-format.md), written from the document with no outpost code: Python's standard
library and Debian's python3-zmq only. Tests use it to prove the format is what the document
says, not just what outpost's own encoder does.

  pub_events.py --endpoint tcp://127.0.0.1:5555 --count 1000 [--stream 7] [--first-seq 0]
                [--pulses 20] [--pub] [--seed 1]

PUSH connects (default); --pub binds a PUB socket instead.
"""
import argparse
import random
import struct
import sys
import time

MAGIC = 0x5645504F  # "OPEV"
VERSION = 1
HEADER_BYTES = 48


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def encode_event(stream_id, sequence, detector_time_ns, pulses, flags=0):
    """pulses: list of (sensor_id, time_ns, charge_pe, pulse_flags)."""
    n = len(pulses)
    payload = b"".join([
        struct.pack("<%dI" % n, *[p[0] for p in pulses]),
        struct.pack("<%df" % n, *[p[1] for p in pulses]),
        struct.pack("<%df" % n, *[p[2] for p in pulses]),
        struct.pack("<%dH" % n, *[p[3] for p in pulses]),
    ])
    head = struct.pack("<IBBHIIQQII", MAGIC, VERSION, HEADER_BYTES, flags, stream_id, n,
                       sequence, detector_time_ns, len(payload), crc32c(payload))
    assert len(head) == 40
    return head + struct.pack("<II", crc32c(head), 0) + payload


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--stream", type=int, default=7)
    ap.add_argument("--first-seq", type=int, default=0)
    ap.add_argument("--pulses", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pub", action="store_true")
    a = ap.parse_args()
    import zmq

    rng = random.Random(a.seed)
    ctx = zmq.Context()
    if a.pub:
        sock = ctx.socket(zmq.PUB)
        sock.bind(a.endpoint)
        time.sleep(0.3)  # PUB drops what nobody hears yet
    else:
        sock = ctx.socket(zmq.PUSH)
        sock.connect(a.endpoint)
    t0 = time.time_ns()
    for i in range(a.count):
        pulses = [(rng.randrange(5160), rng.uniform(0, 4000.0), rng.uniform(0.25, 8.0), rng.randrange(2))
                  for _ in range(a.pulses)]
        sock.send(encode_event(a.stream, a.first_seq + i, t0 + i * 370_000, pulses))
    sock.close(linger=10000)
    ctx.term()
    print('{"events_sent":%d}' % a.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
