#!/bin/sh
# Builds outpost and runs the whole test suite:
#   1. the normal build (RelWithDebInfo, -Werror), every ctest: unit, integration, fuzz;
#   2. an ASan+UBSan build running the unit tests (without the CUDA plugin: CUDA's runtime and
#      ASan's shadow memory do not mix; the normal build compiles and tests it);
#   3. kernels/ cross-built for aarch64, its tests under qemu-aarch64 (tools/cross-test.sh).
# GPU tests report "skipped" (exit 77) on machines without a GPU; they never count as passes.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
# each phase's wall time, printed at the end (CI's budget is watched phase by phase)
t0=$(date +%s) times=""
lap() {
	now=$(date +%s)
	times="$times $1 $((now - t0)) s,"
	t0=$now
}
trap 'rc=$?; [ $rc -eq 0 ] || echo "outpost: FAILED (phases:${times%,}; the failing one after $(($(date +%s) - t0)) s)" >&2' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
lap build
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 600
lap tests

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DOUTPOST_SANITIZE=ON -DOUTPOST_CUDA=OFF
cmake --build build-asan -j"$jobs"
lap "ASan build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LSAN_OPTIONS=suppressions=$(pwd)/tests/lsan.supp \
	ctest --test-dir build-asan --output-on-failure -j"$jobs" -L unit --timeout 600
lap "ASan tests"

./tools/cross-test.sh
lap aarch64

echo "outpost: all tests passed (phases:${times%,})"
