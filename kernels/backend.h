/*
 * backend.h — where the event network runs: the CPU (kernels/model.c) or a CUDA GPU
 * (kernels/cuda/, loaded at run time from liboutpost-cuda.so; see kernels/cuda/plugin.h).
 *
 *   "auto"  the GPU when one is usable, else the CPU — and the reason is kept for the log;
 *   "cpu"   the CPU;
 *   "cuda"  the GPU, or an error that says why not.
 *
 * A GPU that fails in the middle of a batch (an Xid, a lost device) is not retried: that batch
 * and every later one run on the CPU, nothing is lost, and op_backend_fault() says what happened
 * so the caller can log it and ask for a restart when it suits it. Library code: never logs.
 */
#ifndef OP_KERNELS_BACKEND_H
#define OP_KERNELS_BACKEND_H
#include <stddef.h>
#include <stdint.h>

#include "kernels/cuda/plugin.h"
#include "kernels/model.h"

enum op_backend_kind { OP_BACKEND_CPU = 1, OP_BACKEND_CUDA = 2 };

typedef struct op_backend op_backend;

/*
 * want: "auto", "cpu" or "cuda". m stays the caller's and must outlive the backend. threads:
 * CPU threads (the forward pass on the CPU; feature extraction for the GPU). max_events: the
 * largest batch op_backend_run will get. On success *why says what was chosen and why; on
 * failure (-EINVAL for an unknown want, -ENODEV when "cuda" cannot be had, -ENOMEM) the reason.
 */
int op_backend_open(const char *want, const op_model *m, int threads, uint32_t max_events, op_backend **ret,
		    char *why, size_t whylen);
void op_backend_close(op_backend *b);

/* The network on n events (guesses: their LineFit first guesses). 0 or -ENOMEM. */
int op_backend_run(op_backend *b, const op_reco_event *events, const op_reco_out *guesses, op_reco_out *out,
		   size_t n);

int op_backend_kind(const op_backend *b);
/* One line: "cpu/avx2, 2 threads" or "cuda: <device>; <layer>: <path> …". */
const char *op_backend_describe(op_backend *b);
/* Why a GPU backend went over to the CPU; NULL while it has not. */
const char *op_backend_fault(const op_backend *b);

/*
 * Load the CUDA plugin and ask it about device 0, without opening anything. 0 with *info filled,
 * or <0 with the reason in info->why (no plugin, no driver, no device, unsupported device).
 * The plugin comes from $OUTPOST_CUDA_PLUGIN when set, else from ../lib/outpost/ beside the
 * running executable (build tree and installed layout alike).
 */
int op_backend_probe_cuda(op_gpu_info *info);

/*
 * For programs linked with kernels/cuda/ themselves (outpost-bench gpu): use this plugin table
 * instead of loading liboutpost-cuda.so, so that one process holds one CUDA runtime.
 */
void op_backend_use_plugin(const op_cuda_plugin *pl);

#endif
