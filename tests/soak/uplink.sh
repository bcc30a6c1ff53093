#!/bin/sh
# The uplink's long soaks on demand (CI runs 100 cuts as uplink_cuts and 200 kills as
# uplink_kills):
#   tests/soak/uplink.sh [CUTS] [KILLS]     (default 1000 cuts, 1000 SIGKILLs; build first)
# Each prints its summary line; copy the figures into docs/uplink-protocol.md.
set -eu
cd "$(dirname "$0")/../.."
/usr/bin/python3 tests/integration/test_cuts.py build/bin "${1:-1000}"
/usr/bin/python3 tests/integration/test_kills.py build/bin "${2:-1000}"
