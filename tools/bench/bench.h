/*
 * bench.h — outpost-bench subcommands. Each prints one JSON line per figure, with the
 * baseline measured in the same run where there is one (docs/benchmarks.md).
 */
#ifndef OP_TOOLS_BENCH_H
#define OP_TOOLS_BENCH_H

int op_bench_ingest(int argc, char **argv);
int op_bench_store(int argc, char **argv);
int op_bench_linefit(int argc, char **argv);
int op_bench_e2e(int argc, char **argv);
int op_bench_accuracy(int argc, char **argv);
int op_bench_kernels(int argc, char **argv);
int op_bench_power(int argc, char **argv);
int op_bench_uplink(int argc, char **argv);
int op_bench_gpu(int argc, char **argv);

#endif
