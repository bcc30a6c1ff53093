#!/usr/bin/python3
"""make_wire_corpus.py DIR — writes the wire decoder's seed corpus (valid and damaged
messages) using tools/pub_events.py's independent encoder."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pub_events  # noqa: E402

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
good = [
    pub_events.encode_event(1, 0, 0, []),
    pub_events.encode_event(7, 42, 256, [(5, 0.0, 1.0, 1), (5183, 10.0, 1.5, 0)]),
    pub_events.encode_event(3, 2**63, 2**64 - 1, [(i, i * 3.5, 0.25 * (i % 9 + 1), i & 1) for i in range(100)]),
]
for i, m in enumerate(good):
    open(os.path.join(out, "valid-%d" % i), "wb").write(m)
m = bytearray(good[1])
m[60] ^= 4
open(os.path.join(out, "payload-crc"), "wb").write(bytes(m))
open(os.path.join(out, "truncated"), "wb").write(good[1][:50])
open(os.path.join(out, "header-only"), "wb").write(good[1][:48])
m = bytearray(good[1])
m[4] = 9
open(os.path.join(out, "version-9"), "wb").write(bytes(m))
open(os.path.join(out, "empty"), "wb").write(b"")
