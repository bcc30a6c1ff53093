/*
 * outpost-bench — benchmarks that print figures and ratios against a baseline measured in the
 * same run (never pass/fail: timings on shared machines belong in docs/benchmarks.md, not in
 * tests).
 *
 *   outpost-bench ingest   [--seconds S]   decode+validate+queue vs plain libzmq PUSH→PULL
 *   outpost-bench store                    HDF5 segment append and seal
 *   outpost-bench linefit  [--events N]    LineFit angular error and speed on simulated tracks
 *   outpost-bench e2e      [--events N]    simulator → sealed segments through the real daemon
 *   outpost-bench accuracy --model F ...    angular error of LineFit, the seed and model files
 *   outpost-bench kernels  [--threads T] [--model F ...] [--quick]
 *                                          FP4 GEMM/GEMV/model throughput vs OpenBLAS and bandwidth
 *   outpost-bench power    [--seconds S]   the governor at 100/75/50% budgets vs unthrottled
 *   outpost-bench uplink   [--seconds S]   goodput at 1 and 100 Mbit/s, 600 ms round trip; bytes wasted per cut
 *   outpost-bench gpu      [--quick]       the CUDA backend: FP4-weight GEMM vs cuBLASLt BF16, bandwidth, model events/s
 */
#include <stdio.h>
#include <string.h>

#include "tools/bench/bench.h"

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: outpost-bench ingest|store|linefit|e2e|accuracy|kernels|shapes|power|uplink|gpu [options]\n");
		return 2;
	}
	if (!strcmp(argv[1], "ingest"))
		return op_bench_ingest(argc - 1, argv + 1);
	if (!strcmp(argv[1], "store"))
		return op_bench_store(argc - 1, argv + 1);
	if (!strcmp(argv[1], "linefit"))
		return op_bench_linefit(argc - 1, argv + 1);
	if (!strcmp(argv[1], "accuracy"))
		return op_bench_accuracy(argc - 1, argv + 1);
	if (!strcmp(argv[1], "kernels"))
		return op_bench_kernels(argc - 1, argv + 1);
	if (!strcmp(argv[1], "shapes"))
		return op_bench_shapes(argc - 1, argv + 1);
	if (!strcmp(argv[1], "power"))
		return op_bench_power(argc - 1, argv + 1);
	if (!strcmp(argv[1], "uplink"))
		return op_bench_uplink(argc - 1, argv + 1);
	if (!strcmp(argv[1], "gpu"))
		return op_bench_gpu(argc - 1, argv + 1);
	if (!strcmp(argv[1], "e2e"))
		return op_bench_e2e(argc - 1, argv + 1);
	fprintf(stderr, "outpost-bench: unknown benchmark '%s'\n", argv[1]);
	return 2;
}
