/*
 * model.h — the event network in memory and its forward pass (docs/model-format.md).
 *
 *   pulses → features (features.h) → normalise → pulse MLP (ReLU) → mean+max pooling per event
 *   → [pooled | normalised event features] → head MLP (ReLU between) → 5 outputs:
 *   dir = normalise(u_linefit + out[0..2]); log10 E = out[3]·scale + mean; score = σ(out[4]).
 *
 * Layers are FP32 (the trained reference) or FP4 (NVFP4/MXFP4, W4A4 or W4A16 per layer).
 * Library code: never logs, never exits; errors are negative errno values.
 */
#ifndef OP_KERNELS_MODEL_H
#define OP_KERNELS_MODEL_H
#include <stdint.h>

#include "kernels/features.h"
#include "kernels/fp4_gemm.h"
#include "kernels/reco.h"

#define OP_MODEL_MAX_LAYERS 8
#define OP_MODEL_OUTPUTS 5
#define OP_MODEL_MAX_NAME 64

enum op_model_precision { OP_MODEL_FP32 = 0, OP_MODEL_FP4 = 1 };

typedef struct op_model_layer {
	char name[32];
	int precision;     /* op_model_precision */
	int mode;          /* OP_W4A4 / OP_W4A16 (FP4 layers) */
	op_fp4_linear lin; /* FP32 layers keep only lin.wdec, lin.bias (w.format = 0) */
} op_model_layer;

typedef struct op_model {
	char name[OP_MODEL_MAX_NAME];
	uint32_t id;
	int precision, format, mode, mx_mode; /* the model's overall recipe (for reports) */
	uint32_t max_pulses, n_pulse_feat, n_event_feat;
	float pulse_mean[OP_FEAT_PULSE], pulse_scale[OP_FEAT_PULSE];
	float event_mean[OP_FEAT_EVENT], event_scale[OP_FEAT_EVENT];
	float log10e_mean, log10e_scale;
	uint32_t n_pulse_layers, n_head_layers;
	op_model_layer pulse[OP_MODEL_MAX_LAYERS], head[OP_MODEL_MAX_LAYERS];
	/* provenance, kept verbatim from the file */
	char provenance[1024];
} op_model;

/* An FP32 layer from weights [n][k] row-major (copied). */
int op_model_layer_fp32(op_model_layer *l, const char *name, uint32_t n, uint32_t k, const float *w,
			const float *bias, int relu);
/* An FP4 layer quantized from FP32 weights. act_amax: calibrated activation range (NVFP4 W4A4). */
int op_model_layer_quantize(op_model_layer *l, const char *name, uint32_t n, uint32_t k, const float *w,
			    const float *bias, int relu, int format, int mode, int mx_mode, float act_amax,
			    double *rel_err);
/* Shapes chain, norms positive and finite, outputs = 5. 0 or -EINVAL with a reason in why. */
int op_model_check(const op_model *m, char *why, size_t whylen);
void op_model_free(op_model *m);

/* Per-thread working memory for the forward pass. */
typedef struct op_model_ws op_model_ws;
op_model_ws *op_model_ws_new(void);
void op_model_ws_free(op_model_ws *ws);
/* The most bytes a workspace's buffers may hold (0, the default: no limit); a batch that needs
 * more is run in smaller parts, as one that finds no memory is (op_model_run). */
void op_model_ws_set_limit(op_model_ws *ws, size_t bytes);

/*
 * Run the network on n events. guesses[i]: LineFit's result for events[i] (the first guess);
 * out[i] receives direction, zenith/azimuth, energy, score (speed NaN); status bits as reco.h.
 * threads ≥ 1 splits the events. A share that finds too little memory for its working buffers
 * is run in halves, down to one event at a time (the results are the same). 0, or -ENOMEM when
 * even one event does not fit.
 */
int op_model_run(const op_model *m, op_model_ws *const *ws, int threads, const op_reco_event *events,
		 const op_reco_out *guesses, op_reco_out *out, size_t n);

/*
 * The host's part of a batch, shared by every backend (the CPU forward pass above, the CUDA one
 * in kernels/cuda/): the pulses the network sees, as normalised features, and the outputs.
 *   op_model_batch_pulses  how many feature rows n events give (Σ min(pulses, max_pulses)).
 *   op_model_event_rows    the rows one event gives: 0 when LineFit found it too short or
 *                          degenerate, or its times or charges would overflow a feature (the
 *                          network skips it: degenerate), else min(pulses, max_pulses).
 *   op_model_inputs        feature rows from row0 on in feat [·][n_pulse_feat]; off[0..n) (event
 *                          i has rows off[i]..off[i+1], absolute; off[n] = row0 + the rows written
 *                          is the caller's to set); evf [n] rows of n_event_feat
 *                          normalised event features (leading dimension ldev). Returns the rows
 *                          written (Σ op_model_event_rows), or -ENOMEM. Disjoint chunks of a batch
 *                          may be filled in parallel, each with its own ws and row0.
 *   op_model_outputs       the network's raw [n][5] (ldraw) → results, as op_model_run gives them.
 */
size_t op_model_batch_pulses(const op_model *m, const op_reco_event *events, size_t n);
uint32_t op_model_event_rows(const op_model *m, const op_reco_event *ev, const op_reco_out *guess);
long op_model_inputs(const op_model *m, op_model_ws *ws, const op_reco_event *events, const op_reco_out *guesses,
		     size_t n, float *feat, uint32_t *off, float *evf, size_t ldev, uint32_t row0);
void op_model_outputs(const op_model *m, const op_reco_out *guesses, const uint32_t *off, const float *raw,
		      size_t ldraw, op_reco_out *out, size_t n);

#endif
