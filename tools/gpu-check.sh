#!/bin/bash
# The checks that need an NVIDIA GPU, in one run, for a machine that has the GPU but not
# outpost's build dependencies: the binaries are built elsewhere (tools/gpu-pack.sh puts them,
# stripped, with the shared libraries they need that a CUDA image lacks, into one folder).
#
#   tools/gpu-check.sh PACK OUTDIR [step ...]
#
# Steps (these, in this order, when none is named: info host ops backend bench power sanitize):
#   info     nvidia-smi, the driver, where libcublasLt and libnvidia-ml were found
#   host     test_gpu_host (the Blackwell path's host-side parts; also runs without a GPU)
#   ops      test_gpu_ops: every GPU op and the whole model against the CPU reference
#   backend  test_backend with the CUDA plugin: the GPU branch (agreement with the CPU)
#   bench    outpost-bench gpu: FP4-weight GEMM vs cuBLASLt BF16, bandwidth, model events/s
#   daemon   outpostd on its embedded defaults with the simulated detector (tools/demo.sh):
#            which backend the infer stage chose, status with NVML power, every event north.
#            Only when named: the daemon's NVML sensor probes what it may set (it resets locked
#            clocks and sets the power limit to its current value, and restores both on exit),
#            which changes a GPU whose clocks someone else locked; and it uses the default state
#            directory and control socket (it refuses to start beside a running outpostd)
#   power    outpost-bench power --gpu: NVML read for real (read-only), budgets of 100/75/50 %
#            of the GPU's default power limit with the model on the GPU (duty cycle only)
#   sanitize compute-sanitizer memcheck over test_gpu_ops (where the runtime allows it)
#
# Each step's output goes to OUTDIR/<step>.log; a summary line per step is printed last.
# Nothing but the daemon step touches the GPU's clocks, power limit or modes.
set -u
if [ $# -lt 2 ] || [ ! -x "$1/bin/test_gpu_ops" ]; then
	echo "usage: gpu-check.sh PACK OUTDIR [step ...]   (PACK: made by tools/gpu-pack.sh)" >&2
	exit 2
fi
pack=$(cd "$1" && pwd) || exit 2
out=$2
shift 2
steps=${*:-info host ops backend bench power sanitize}
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"

# CUDA's libraries from the machine itself: never carried (cuBLASLt alone is ~500 MB).
libdirs=$pack/libs
for f in $( (ldconfig -p 2>/dev/null | sed -n 's/.*=> \(.*\(libcublasLt\.so\.13\|libnvidia-ml\.so\.1\)\)$/\1/p';
	find /usr/local/cuda*/lib* /usr/local/nvidia /usr/lib/x86_64-linux-gnu /opt -maxdepth 8 \
		\( -name 'libcublasLt.so.13' -o -name 'libnvidia-ml.so.1' \) 2>/dev/null) | sort -u); do
	d=$(dirname "$f")
	case ":$libdirs:" in *":$d:"*) ;; *) libdirs=$libdirs:$d ;; esac
done
export LD_LIBRARY_PATH=$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OUTPOST_SOURCE_DIR=$top
bin=$pack/bin
summary=""

run_step() { # run_step NAME SECONDS COMMAND...
	local name=$1 secs=$2
	shift 2
	local t0=$(date +%s)
	timeout -k 5 "$secs" "$@" >"$out/$name.log" 2>&1
	local rc=$?
	local el=$(($(date +%s) - t0))
	summary="$summary$(printf '%-9s rc=%-3s %4ss' "$name" "$rc" "$el")\n"
	echo "=== $name rc=$rc (${el}s)"
	tail -n 25 "$out/$name.log"
}

for s in $steps; do
	case $s in
	info)
		run_step info 60 sh -c "nvidia-smi; nvidia-smi -q -d POWER,CLOCK | head -60; echo LD_LIBRARY_PATH=\$LD_LIBRARY_PATH; uname -a; nproc" ;;
	host) run_step host 120 "$bin/test_gpu_host" ;;
	ops) run_step ops 150 "$bin/test_gpu_ops" ;;
	backend) run_step backend 60 env OUTPOST_TEST_CUDA_PLUGIN="$pack/lib/outpost/liboutpost-cuda.so" "$bin/test_backend" ;;
	bench) run_step bench 240 "$bin/outpost-bench" gpu ;;
	daemon)
		if "$bin/outpostctl" ping >/dev/null 2>&1; then
			summary="${summary}daemon    (an outpostd is already running here: skipped)\n"
			continue
		fi
		run_step daemon 90 env OUTPOST_DEMO_BIN="$bin" OUTPOST_DEMO_NORTH=/tmp/outpost-gpu-north OUTPOST_DEMO_PYTHON=python3 sh -c "
			'$top/tools/demo.sh'; grep -h 'backend\|infer' /tmp/outpost-demo.*/outpostd.log | head -20;
			'$bin/outpostctl' ping >/dev/null 2>&1 && exit 0;
			'$bin/outpostd' 2>'$out/outpostd-status.log' & sleep 4; '$bin/outpostctl' status; '$bin/outpostctl' gpu;
			kill \$! 2>/dev/null; wait" ;;
	power) run_step power 240 "$bin/outpost-bench" power --gpu --seconds 12 ;;
	sanitize)
		if command -v compute-sanitizer >/dev/null; then
			run_step sanitize 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$bin/test_gpu_ops"
		else
			summary="${summary}sanitize  (compute-sanitizer not found)\n"
		fi ;;
	*) echo "gpu-check: unknown step $s" >&2 ;;
	esac
done
printf "\n%b" "$summary"
