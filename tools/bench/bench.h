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
int op_bench_shapes(int argc, char **argv);
int op_bench_power(int argc, char **argv);
int op_bench_uplink(int argc, char **argv);
int op_bench_gpu(int argc, char **argv);

/* Simulated events cut to their earliest np pulses (tracks and cascades, whole events only),
 * placed in IceCube-86, with LineFit's first guesses: the model benchmarks' input. */
#include "kernels/reco.h"
typedef struct op_bench_events {
	op_reco_event *ev;
	op_reco_out *guess;
	float *buf;
	uint16_t *flags;
} op_bench_events;
int op_bench_sim_events(op_bench_events *E, int ne, int np);
void op_bench_events_free(op_bench_events *E);

#endif
