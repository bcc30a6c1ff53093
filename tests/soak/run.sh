#!/bin/sh
# A long fault-injection soak on demand (CI runs a 45 s one as soak_short):
#   tests/soak/run.sh [SECONDS] [SEED]     (default 600 s, seed 1; build first)
# Prints the soak's JSON summary; copy the figures into docs/reliability.md.
set -eu
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 tests/integration/test_soak.py build/bin "${1:-600}" "${2:-1}"
