#!/bin/sh
# Cross-builds kernels/ for aarch64 (GB10's CPU) and runs its tests under qemu-aarch64:
# the NEON rung against the scalar reference, bit for bit, and the conversions against the
# CUDA headers' oracle when they are installed. Needs gcc-aarch64-linux-gnu, qemu-user.
set -eu
cd "$(dirname "$0")/.."
cmake -S . -B build-aarch64 -DOUTPOST_KERNELS_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
cmake --build build-aarch64 -j"$(nproc 2>/dev/null || echo 2)"
# qemu-user cannot fork a process that already runs threads; the one test that does skips it
OUTPOST_UNDER_QEMU=1 ctest --test-dir build-aarch64 --output-on-failure --timeout 900
