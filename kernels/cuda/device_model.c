/*
 * kernels/cuda/device_model.c — the event network on a CUDA device: liboutpost-cuda.so's side
 * of plugin.h.
 *
 * Weights go up once at open. A batch travels as one host-to-device copy of the slot's pinned
 * input (event offsets, event features, pulse features), the pulse MLP over every row, masked
 * mean+max pooling per event, the head MLP, and one device-to-host copy of the raw outputs, all
 * on the slot's stream and captured in a CUDA graph per size class (rows and events rounded up
 * to powers of two), so a batch costs one graph launch. Two slots: the host prepares the next
 * batch while the device runs this one.
 *
 * Each layer runs on the fastest of its candidates, measured once per size class:
 *   ours      op_cuda_linear: FP4 weights stay 4-bit in memory, expanded in registers; W4A4 as
 *             the CPU emulates it (bit-exact with the scalar reference), W4A16 in FP32.
 *   lt-fp4    W4A4 layers on FP4 tensor cores: activations quantized by our kernel into codes
 *             and tiled scales, cuBLASLt block-scaled FP4 with gx·gw in alpha, then bias+ReLU.
 *             Offered only where the heuristic finds an algorithm (Blackwell); elsewhere the
 *             reason is kept for the description.
 *   lt-bf16   W4A16 layers: weights dequantized exactly to BF16 at open, activations rounded
 *             to BF16, cuBLASLt BF16 with FP32 accumulation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/lt.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/plugin.h"

#define MAX_BUCKETS 32
#define MIN_ROWS 1024u
#define MIN_EVENTS 64u

enum path { PATH_OURS = 0, PATH_LT_FP4 = 1, PATH_LT_BF16 = 2 };
static const char *const path_name[] = {"ours", "lt-fp4", "lt-bf16"};

typedef struct dlayer {
	op_dev_linear L; /* device pointers */
	uint8_t *codes, *scales_lin, *scales_tiled;
	float *wscale, *wf32, *bias;
	uint16_t *wbf16;
	int lt_kind;   /* the cuBLASLt product this layer could use (0: none) */
	int path;      /* chosen at the first size class and kept (-1: not yet), so that an event's
			  result does not depend on the size of the batch it came in */
	char note[200]; /* why cuBLASLt is not used, when it is not */
} dlayer;

typedef struct bucket {
	uint32_t Tb, nb;
	int used;      /* in the table */
	uint64_t last; /* last use, for eviction */
	int path[2][OP_MODEL_MAX_LAYERS];
	op_lt_plan plan[2][OP_MODEL_MAX_LAYERS];
	cudaGraphExec_t exec[OP_CUDA_SLOTS];
} bucket;

typedef struct slot {
	cudaStream_t stream;
	unsigned char *h_in, *d_in;
	float *h_out;
	float *act[2], *g, *ga, *gb;
	void *scratch;
	uint8_t *xcodes, *xscales;
	uint16_t *xbf16;
	void *lt_ws;
	uint32_t T, n;
	int bucket, busy;
} slot;

typedef struct dmodel {
	const op_model *m;
	op_gpu_info info;
	cublasLtHandle_t lt;
	dlayer layer[2][OP_MODEL_MAX_LAYERS]; /* [0] pulse, [1] head */
	uint32_t nl[2];
	uint32_t max_events, max_rows, Tcap, ncap, wp, wh, gw, kmax;
	size_t in_bytes;
	slot s[OP_CUDA_SLOTS];
	bucket b[MAX_BUCKETS]; /* size classes; the least recently used one goes when full */
	uint64_t clock;
} dmodel;

static int cuda_fail(char *why, size_t whylen, const char *what, cudaError_t e)
{
	snprintf(why, whylen, "%s: %s", what, cudaGetErrorString(e));
	return -EIO;
}

#define CK(call, what)                                                                                         \
	do {                                                                                                   \
		cudaError_t e_ = (call);                                                                       \
		if (e_ != cudaSuccess)                                                                         \
			return cuda_fail(why, whylen, what, e_);                                               \
	} while (0)

/* The smallest power of two ≥ x and ≥ floor; 0 when that is beyond 2³¹ (refused by callers). */
static uint32_t pow2_at_least(uint32_t x, uint32_t floor)
{
	uint32_t p = floor;
	while (p < x) {
		if (p >= 0x80000000u)
			return 0;
		p *= 2;
	}
	return p;
}

static size_t up256(size_t x)
{
	return (x + 255) / 256 * 256;
}

/* ---- probe ----------------------------------------------------------------------------- */

static int probe(op_gpu_info *info)
{
	memset(info, 0, sizeof(*info));
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n == 0) {
		snprintf(info->why, sizeof(info->why), "no CUDA device (%s)",
			 e == cudaErrorInsufficientDriver ? "no NVIDIA driver, or one older than this CUDA runtime needs"
			 : e == cudaErrorNoDevice || n == 0 ? "the driver sees no GPU"
							    : cudaGetErrorString(e));
		return -ENODEV;
	}
	struct cudaDeviceProp p;
	if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess) {
		snprintf(info->why, sizeof(info->why), "CUDA device 0 unreadable (%s)", cudaGetErrorString(e));
		return -ENODEV;
	}
	snprintf(info->name, sizeof(info->name), "%.127s", p.name);
	info->cc_major = p.major, info->cc_minor = p.minor;
	info->sm_count = p.multiProcessorCount;
	info->mem_bytes = p.totalGlobalMem;
	if (p.major < 9) {
		snprintf(info->why, sizeof(info->why),
			 "%.120s has compute capability %d.%d; outpost's CUDA code is built for 9.0, 10.0 and 12.1", p.name,
			 p.major, p.minor);
		return -ENODEV;
	}
	if (p.major >= 10) {
		info->fp4_path = OP_FP4_PATH_BLOCK_SCALED;
		snprintf(info->why, sizeof(info->why),
			 "compute capability %d.%d has FP4 tensor cores: cuBLASLt block-scaled FP4 for W4A4 layers "
			 "where its heuristic offers an algorithm and it is faster",
			 p.major, p.minor);
	} else {
		info->fp4_path = OP_FP4_PATH_WEIGHT_ONLY;
		snprintf(info->why, sizeof(info->why),
			 "compute capability %d.%d has no FP4 tensor cores: FP4 weights expanded in registers by "
			 "outpost's kernels, or dequantized exactly to BF16 for cuBLASLt",
			 p.major, p.minor);
	}
	return 0;
}

/* ---- open ------------------------------------------------------------------------------- */

static int upload(void **dst, const void *src, size_t bytes, char *why, size_t whylen)
{
	CK(cudaMalloc(dst, bytes ? bytes : 16), "cudaMalloc (weights)");
	if (bytes)
		CK(cudaMemcpy(*dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (weights)");
	return 0;
}

static int layer_up(dmodel *d, dlayer *dl, const op_model_layer *ml, char *why, size_t whylen)
{
	const op_fp4_linear *L = &ml->lin;
	op_dev_linear *D = &dl->L;
	memset(D, 0, sizeof(*D));
	dl->path = -1;
	D->n = L->n, D->k = L->k, D->relu = L->relu, D->mx_mode = L->mx_mode;
	D->tensor_scale = L->w.tensor_scale, D->act_scale = L->act_scale;
	int rc = upload((void **)&dl->bias, L->bias, (size_t)L->n * sizeof(float), why, whylen);
	if (rc < 0)
		return rc;
	D->bias = dl->bias;
	if (ml->precision == OP_MODEL_FP32) {
		D->weights = OP_DEV_W_FP32, D->mode = OP_W4A16, D->kp = L->w.cols;
		rc = upload((void **)&dl->wf32, L->wdec, (size_t)L->n * L->w.cols * sizeof(float), why, whylen);
		D->wf32 = dl->wf32;
		snprintf(dl->note, sizeof(dl->note), "FP32 layer");
		return rc;
	}
	/* FP4: pad K to whole 32-column groups (zero codes, zero scales) so that cuBLASLt may take it */
	const uint32_t bl = op_fp4_block(L->w.format), kp = L->w.cols, kpd = (kp + 31u) / 32u * 32u;
	const uint32_t nb = kp / bl, nbd = kpd / bl;
	D->weights = OP_DEV_W_FP4, D->format = L->w.format, D->mode = ml->mode, D->kp = kpd;
	uint8_t *codes = calloc((size_t)L->n * kpd / 2, 1), *sc = calloc((size_t)L->n * nbd, 1);
	uint8_t *tiled = calloc(op_fp4_scale_tiled_size(L->n, nbd), 1);
	float *ws = calloc((size_t)L->n * nbd, sizeof(float));
	if (!codes || !sc || !tiled || !ws) {
		free(codes), free(sc), free(tiled), free(ws);
		snprintf(why, whylen, "out of host memory preparing layer %s", ml->name);
		return -ENOMEM;
	}
	for (uint32_t r = 0; r < L->n; r++) {
		memcpy(codes + (size_t)r * kpd / 2, L->w.codes + (size_t)r * kp / 2, kp / 2);
		memcpy(sc + (size_t)r * nbd, L->w.scales + (size_t)r * nb, nb);
		for (uint32_t b = 0; b < nbd; b++) {
			ws[(size_t)r * nbd + b] = b < nb ? L->wscale[(size_t)r * nb + b] : 0.0f;
			tiled[op_fp4_scale_tiled_offset(r, b, nbd)] = sc[(size_t)r * nbd + b];
		}
	}
	rc = upload((void **)&dl->codes, codes, (size_t)L->n * kpd / 2, why, whylen);
	if (!rc)
		rc = upload((void **)&dl->scales_lin, sc, (size_t)L->n * nbd, why, whylen);
	if (!rc)
		rc = upload((void **)&dl->scales_tiled, tiled, op_fp4_scale_tiled_size(L->n, nbd), why, whylen);
	if (!rc)
		rc = upload((void **)&dl->wscale, ws, (size_t)L->n * nbd * sizeof(float), why, whylen);
	free(codes), free(sc), free(tiled), free(ws);
	if (rc < 0)
		return rc;
	D->codes = dl->codes, D->wscale = dl->wscale, D->scodes = dl->scales_lin;
	if (ml->mode == OP_W4A16) {
		CK(cudaMalloc((void **)&dl->wbf16, (size_t)L->n * kpd * sizeof(uint16_t)), "cudaMalloc (bf16 weights)");
		CK(op_cuda_dequant_bf16(dl->codes, dl->scales_lin, L->n, kpd, L->w.format, dl->wbf16, 0),
		   "dequantizing to BF16");
		dl->lt_kind = OP_LT_BF16;
	} else if (d->info.fp4_path == OP_FP4_PATH_BLOCK_SCALED) {
		dl->lt_kind = L->w.format == OP_FP4_NVFP4 ? OP_LT_NVFP4 : OP_LT_MXFP4;
	} else {
		snprintf(dl->note, sizeof(dl->note), "W4A4 on %s: no FP4 tensor cores (compute capability %d.%d)",
			 d->info.name, d->info.cc_major, d->info.cc_minor);
	}
	return 0;
}

static int slot_alloc(dmodel *d, slot *s, char *why, size_t whylen)
{
	const size_t rows = d->Tcap > d->ncap ? d->Tcap : d->ncap;
	size_t scratch = 0;
	for (int w = 0; w < 2; w++)
		for (uint32_t l = 0; l < d->nl[w]; l++) {
			size_t need = op_cuda_linear_scratch(&d->layer[w][l].L, (uint32_t)rows);
			scratch = need > scratch ? need : scratch;
		}
	CK(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate");
	CK(cudaHostAlloc((void **)&s->h_in, d->in_bytes, cudaHostAllocDefault), "cudaHostAlloc (inputs)");
	CK(cudaHostAlloc((void **)&s->h_out, (size_t)d->ncap * OP_MODEL_OUTPUTS * sizeof(float), cudaHostAllocDefault),
	   "cudaHostAlloc (outputs)");
	CK(cudaMalloc((void **)&s->d_in, d->in_bytes), "cudaMalloc (inputs)");
	for (int i = 0; i < 2; i++) {
		CK(cudaMalloc((void **)&s->act[i], (size_t)d->Tcap * d->wp * sizeof(float)), "cudaMalloc (activations)");
		CK(cudaMemset(s->act[i], 0, (size_t)d->Tcap * d->wp * sizeof(float)), "cudaMemset");
	}
	size_t hw = d->gw > d->wh ? d->gw : d->wh;
	CK(cudaMalloc((void **)&s->g, (size_t)d->ncap * hw * sizeof(float)), "cudaMalloc (head)");
	CK(cudaMalloc((void **)&s->ga, (size_t)d->ncap * hw * sizeof(float)), "cudaMalloc (head)");
	CK(cudaMalloc((void **)&s->gb, (size_t)d->ncap * hw * sizeof(float)), "cudaMalloc (head)");
	CK(cudaMemset(s->g, 0, (size_t)d->ncap * hw * sizeof(float)), "cudaMemset");
	CK(cudaMalloc(&s->scratch, scratch ? scratch : 16), "cudaMalloc (quantized activations)");
	CK(cudaMalloc((void **)&s->xcodes, rows * d->kmax / 2 + 16), "cudaMalloc (activation codes)");
	CK(cudaMalloc((void **)&s->xscales, op_fp4_scale_tiled_size((uint32_t)rows, d->kmax / 16u) + 16),
	   "cudaMalloc (activation scales)");
	CK(cudaMalloc((void **)&s->xbf16, rows * d->kmax * sizeof(uint16_t) + 16), "cudaMalloc (bf16 activations)");
	CK(cudaMalloc(&s->lt_ws, OP_LT_WORKSPACE), "cudaMalloc (cuBLASLt workspace)");
	s->bucket = -1;
	return 0;
}

static void dm_close(void *h);

static void *dm_open(const op_model *m, uint32_t max_events, uint32_t max_rows, char *why, size_t whylen)
{
	dmodel *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	d->m = m;
	if (probe(&d->info) < 0) {
		snprintf(why, whylen, "%s", d->info.why);
		free(d);
		return NULL;
	}
	cudaError_t e = cudaSetDevice(0);
	cublasStatus_t st = e == cudaSuccess ? cublasLtCreate(&d->lt) : CUBLAS_STATUS_NOT_INITIALIZED;
	if (e != cudaSuccess || st != CUBLAS_STATUS_SUCCESS) {
		snprintf(why, whylen, "cannot start CUDA on %s (%s, cublasLtCreate status %d)", d->info.name,
			 cudaGetErrorString(e), (int)st);
		free(d);
		return NULL;
	}
	d->nl[0] = m->n_pulse_layers, d->nl[1] = m->n_head_layers;
	d->max_events = max_events ? max_events : 1;
	d->max_rows = max_rows ? max_rows : 1;
	d->Tcap = pow2_at_least(d->max_rows, MIN_ROWS);
	d->ncap = pow2_at_least(d->max_events, MIN_EVENTS);
	if (!d->Tcap || !d->ncap) {
		snprintf(why, whylen, "batches of %u events, %u rows are beyond what the GPU path sizes", max_events,
			 max_rows);
		goto fail;
	}
	for (int w = 0; w < 2; w++)
		for (uint32_t l = 0; l < d->nl[w]; l++) {
			const op_model_layer *ml = w ? &m->head[l] : &m->pulse[l];
			if (layer_up(d, &d->layer[w][l], ml, why, whylen) < 0)
				goto fail;
			const op_dev_linear *L = &d->layer[w][l].L;
			uint32_t *wmax = w ? &d->wh : &d->wp;
			*wmax = L->n > *wmax ? L->n : *wmax;
			d->kmax = L->kp > d->kmax ? L->kp : d->kmax;
		}
	d->kmax = (d->kmax + 31u) / 32u * 32u;
	d->gw = 2 * m->pulse[m->n_pulse_layers - 1].lin.n + m->n_event_feat;
	d->in_bytes = up256(((size_t)d->ncap + 1) * sizeof(uint32_t)) +
		      up256((size_t)d->ncap * m->n_event_feat * sizeof(float)) +
		      (size_t)d->Tcap * m->n_pulse_feat * sizeof(float);
	for (int i = 0; i < OP_CUDA_SLOTS; i++)
		if (slot_alloc(d, &d->s[i], why, whylen) < 0)
			goto fail;
	if (cudaDeviceSynchronize() != cudaSuccess) {
		snprintf(why, whylen, "uploading the model: %s", cudaGetErrorString(cudaGetLastError()));
		goto fail;
	}
	return d;
fail:
	dm_close(d);
	return NULL;
}

/* ---- one batch -------------------------------------------------------------------------- */

typedef struct in_layout {
	size_t off, evf, feat;
} in_layout;

static in_layout layout_for(const dmodel *d, uint32_t Tb, uint32_t nb)
{
	in_layout l;
	l.off = 0;
	l.evf = up256(((size_t)nb + 1) * sizeof(uint32_t));
	l.feat = l.evf + up256((size_t)nb * d->m->n_event_feat * sizeof(float));
	(void)Tb;
	return l;
}

static size_t layout_bytes(const dmodel *d, uint32_t Tb, uint32_t nb)
{
	return layout_for(d, Tb, nb).feat + (size_t)Tb * d->m->n_pulse_feat * sizeof(float);
}

static int dm_inputs(void *h, int si, uint32_t T, uint32_t n, float **feat, uint32_t **off, float **evf,
		     size_t *ldev)
{
	dmodel *d = h;
	if (si < 0 || si >= OP_CUDA_SLOTS || T > d->Tcap || n > d->ncap || n == 0)
		return -EINVAL;
	slot *s = &d->s[si];
	uint32_t Tb = pow2_at_least(T, MIN_ROWS), nb = pow2_at_least(n, MIN_EVENTS);
	in_layout l = layout_for(d, Tb, nb);
	*off = (uint32_t *)(s->h_in + l.off);
	*evf = (float *)(s->h_in + l.evf);
	*feat = (float *)(s->h_in + l.feat);
	*ldev = d->m->n_event_feat;
	return 0;
}

/* One layer, on the path chosen for this size class. */
static int layer_go(dmodel *d, slot *s, bucket *bk, int w, uint32_t l, const float *X, size_t ldx, uint32_t M,
		    float *Y)
{
	dlayer *dl = &d->layer[w][l];
	const op_dev_linear *L = &dl->L;
	op_lt_plan *p = &bk->plan[w][l];
	char lwhy[160];
	switch (bk->path[w][l]) {
	case PATH_LT_FP4: {
		float gx = L->format == OP_FP4_NVFP4 ? L->act_scale : 1.0f;
		/* the plan is shared by the slots; the activation scales are this slot's (the value
		 * is read now, and a graph being captured keeps it) */
		if (op_lt_plan_scales(p, dl->scales_tiled, s->xscales, lwhy, sizeof(lwhy)) < 0 ||
		    op_cuda_quantize_act(X, ldx, M, L->k, L->kp, L->format, 1.0f / L->act_scale, L->mx_mode, s->xcodes,
					 NULL, s->xscales, (M + 127u) / 128u * 128u, NULL, NULL,
					 s->stream) != cudaSuccess ||
		    op_lt_plan_run(p, d->lt, dl->codes, s->xcodes, Y, gx * L->tensor_scale, s->lt_ws, OP_LT_WORKSPACE,
				   s->stream) < 0)
			return -EIO;
		return op_cuda_bias_act(Y, L->n, M, L->n, 1.0f, L->bias, L->relu, s->stream) == cudaSuccess ? 0 : -EIO;
	}
	case PATH_LT_BF16:
		if (op_cuda_f32_to_bf16(X, ldx, M, L->k, L->kp, s->xbf16, s->stream) != cudaSuccess ||
		    op_lt_plan_run(p, d->lt, dl->wbf16, s->xbf16, Y, L->tensor_scale, s->lt_ws, OP_LT_WORKSPACE,
				   s->stream) < 0)
			return -EIO;
		return op_cuda_bias_act(Y, L->n, M, L->n, 1.0f, L->bias, L->relu, s->stream) == cudaSuccess ? 0 : -EIO;
	default:
		return op_cuda_linear(L, X, ldx, M, Y, L->n, s->scratch, s->stream) == cudaSuccess ? 0 : -EIO;
	}
}

/* The whole forward pass for a size class, on the slot's stream (captured into its graph). */
static int forward(dmodel *d, slot *s, bucket *bk)
{
	const op_model *m = d->m;
	in_layout il = layout_for(d, bk->Tb, bk->nb);
	const uint32_t C = m->pulse[m->n_pulse_layers - 1].lin.n, FE = m->n_event_feat;
	if (cudaMemcpyAsync(s->d_in, s->h_in, layout_bytes(d, bk->Tb, bk->nb), cudaMemcpyHostToDevice, s->stream) !=
	    cudaSuccess)
		return -EIO;
	const float *cur = (const float *)(s->d_in + il.feat);
	size_t ld = m->n_pulse_feat;
	for (uint32_t l = 0; l < d->nl[0]; l++) {
		float *dst = s->act[l % 2];
		if (layer_go(d, s, bk, 0, l, cur, ld, bk->Tb, dst) < 0)
			return -EIO;
		cur = dst, ld = d->layer[0][l].L.n;
	}
	if (op_cuda_pool(cur, ld, C, (const uint32_t *)(s->d_in + il.off), bk->nb, s->g, d->gw, s->stream) !=
		    cudaSuccess ||
	    cudaMemcpy2DAsync(s->g + 2 * C, d->gw * sizeof(float), s->d_in + il.evf, FE * sizeof(float),
			      FE * sizeof(float), bk->nb, cudaMemcpyDeviceToDevice, s->stream) != cudaSuccess)
		return -EIO;
	cur = s->g, ld = d->gw;
	for (uint32_t l = 0; l < d->nl[1]; l++) {
		float *dst = l % 2 ? s->gb : s->ga;
		if (layer_go(d, s, bk, 1, l, cur, ld, bk->nb, dst) < 0)
			return -EIO;
		cur = dst, ld = d->layer[1][l].L.n;
	}
	if (cudaMemcpyAsync(s->h_out, cur, (size_t)bk->nb * OP_MODEL_OUTPUTS * sizeof(float), cudaMemcpyDeviceToHost,
			    s->stream) != cudaSuccess)
		return -EIO;
	return 0;
}

/* Where layer (w, l) reads and writes in forward(): the same buffers here, for timing. */
static void layer_io(dmodel *d, slot *s, bucket *bk, int w, uint32_t l, const float **X, size_t *ldx, float **Y)
{
	if (!w) {
		*X = l ? s->act[(l - 1) % 2] : (const float *)(s->d_in + layout_for(d, bk->Tb, bk->nb).feat);
		*ldx = l ? d->layer[0][l - 1].L.n : d->m->n_pulse_feat;
		*Y = s->act[l % 2];
	} else {
		*X = l ? ((l - 1) % 2 ? s->gb : s->ga) : s->g;
		*ldx = l ? d->layer[1][l - 1].L.n : d->gw;
		*Y = l % 2 ? s->gb : s->ga;
	}
}

/* Time one layer on one path as forward() runs it (every kernel it takes): µs per run, or −1. */
static float time_path(dmodel *d, slot *s, bucket *bk, int w, uint32_t l, int path)
{
	const float *X;
	size_t ldx;
	float *Y;
	layer_io(d, s, bk, w, l, &X, &ldx, &Y);
	uint32_t M = w ? bk->nb : bk->Tb;
	int keep = bk->path[w][l];
	bk->path[w][l] = path;
	cudaEvent_t a = NULL, b = NULL;
	float ms = -1;
	int ok = cudaEventCreate(&a) == cudaSuccess && cudaEventCreate(&b) == cudaSuccess &&
		 layer_go(d, s, bk, w, l, X, ldx, M, Y) == 0 && cudaEventRecord(a, s->stream) == cudaSuccess;
	for (int i = 0; ok && i < 3; i++)
		ok = layer_go(d, s, bk, w, l, X, ldx, M, Y) == 0;
	if (ok && cudaEventRecord(b, s->stream) == cudaSuccess && cudaEventSynchronize(b) == cudaSuccess &&
	    cudaEventElapsedTime(&ms, a, b) == cudaSuccess)
		ms = ms * 1000.0f / 3.0f;
	else
		ms = -1;
	if (a)
		cudaEventDestroy(a);
	if (b)
		cudaEventDestroy(b);
	bk->path[w][l] = keep;
	return ms;
}

static void bucket_drop(dmodel *d, bucket *bk)
{
	for (int j = 0; j < OP_CUDA_SLOTS; j++)
		if (bk->exec[j])
			cudaGraphExecDestroy(bk->exec[j]);
	for (int w = 0; w < 2; w++)
		for (int l = 0; l < OP_MODEL_MAX_LAYERS; l++)
			op_lt_plan_free(&bk->plan[w][l]);
	memset(bk, 0, sizeof(*bk));
	(void)d;
}

/*
 * Set up a size class: each layer's path — chosen at the first class by timing the candidates
 * end to end (ours; cuBLASLt where it is offered), then kept — and the cuBLASLt algorithm for
 * this class's shape. The device is idle meanwhile (the other slot's batch finished first), so
 * the timings are the layer's own.
 */
static int choose(dmodel *d, slot *s, bucket *bk, char *why, size_t whylen)
{
	/* OUTPOST_CUDA_PATH=ours|lt pins the choice (tests: bit-exact runs; benchmarks) */
	const char *pin = getenv("OUTPOST_CUDA_PATH");
	int pin_ours = pin && !strcmp(pin, "ours"), pin_lt = pin && !strcmp(pin, "lt");
	CK(cudaDeviceSynchronize(), "waiting for the device before timing");
	for (int w = 0; w < 2; w++)
		for (uint32_t l = 0; l < d->nl[w]; l++) {
			dlayer *dl = &d->layer[w][l];
			const op_dev_linear *L = &dl->L;
			uint32_t M = w ? bk->nb : bk->Tb;
			bk->path[w][l] = PATH_OURS;
			if (!dl->lt_kind || pin_ours || dl->path == PATH_OURS)
				continue;
			char lwhy[256];
			op_lt_plan *p = &bk->plan[w][l];
			const float *X;
			size_t ldx;
			float *Y;
			layer_io(d, s, bk, w, l, &X, &ldx, &Y);
			int rc = op_lt_plan_init(p, dl->lt_kind, M, L->n, L->kp, lwhy, sizeof(lwhy));
			if (!rc && dl->lt_kind != OP_LT_BF16)
				rc = op_lt_plan_scales(p, dl->scales_tiled, s->xscales, lwhy, sizeof(lwhy));
			const void *A = dl->lt_kind == OP_LT_BF16 ? (const void *)dl->wbf16 : (const void *)dl->codes;
			const void *B = dl->lt_kind == OP_LT_BF16 ? (const void *)s->xbf16 : (const void *)s->xcodes;
			if (!rc)
				rc = op_lt_plan_choose(p, d->lt, A, B, Y, 1.0f, s->lt_ws, OP_LT_WORKSPACE, s->stream, lwhy,
						       sizeof(lwhy));
			int lt_path = dl->lt_kind == OP_LT_BF16 ? PATH_LT_BF16 : PATH_LT_FP4;
			if (rc < 0) {
				/* this shape cannot go to cuBLASLt: ours, for this class (the layer's choice,
				 * if made, stays for the others) */
				snprintf(dl->note, sizeof(dl->note), "%.199s", lwhy);
				op_lt_plan_free(p);
				continue;
			}
			if (dl->path == lt_path || pin_lt) {
				bk->path[w][l] = lt_path;
				continue;
			}
			float ours = time_path(d, s, bk, w, l, PATH_OURS), lt = time_path(d, s, bk, w, l, lt_path);
			if (ours < 0 || lt < 0)
				return cuda_fail(why, whylen, "timing a layer", cudaGetLastError());
			dl->path = lt < ours ? lt_path : PATH_OURS;
			snprintf(dl->note, sizeof(dl->note), "ours %.1f µs, cuBLASLt %s %.1f µs at M=%u", ours,
				 op_lt_kind_name(dl->lt_kind), lt, M);
			bk->path[w][l] = dl->path;
			if (dl->path == PATH_OURS)
				op_lt_plan_free(p);
		}
	for (int w = 0; w < 2; w++) /* a layer never timed (pinned, or no cuBLASLt) keeps ours */
		for (uint32_t l = 0; l < d->nl[w]; l++)
			if (d->layer[w][l].path < 0 && (!d->layer[w][l].lt_kind || pin_ours))
				d->layer[w][l].path = PATH_OURS;
	return 0;
}

/* The table entry for a size class, set up on first use; the least recently used class that no
 * slot is running is dropped when the table is full. */
static int bucket_get(dmodel *d, slot *s, uint32_t Tb, uint32_t nb, char *why, size_t whylen)
{
	int free_i = -1, lru = -1;
	for (int i = 0; i < MAX_BUCKETS; i++) {
		bucket *bk = &d->b[i];
		if (bk->used && bk->Tb == Tb && bk->nb == nb) {
			bk->last = ++d->clock;
			return i;
		}
		if (!bk->used && free_i < 0)
			free_i = i;
		int busy = 0;
		for (int j = 0; j < OP_CUDA_SLOTS; j++)
			busy |= d->s[j].busy && d->s[j].bucket == i;
		if (bk->used && !busy && (lru < 0 || bk->last < d->b[lru].last))
			lru = i;
	}
	if (free_i < 0) {
		if (lru < 0) {
			snprintf(why, whylen, "no size class free");
			return -ENOSPC;
		}
		bucket_drop(d, &d->b[lru]);
		free_i = lru;
	}
	bucket *bk = &d->b[free_i];
	memset(bk, 0, sizeof(*bk));
	bk->Tb = Tb, bk->nb = nb;
	int rc = choose(d, s, bk, why, whylen);
	if (rc < 0) {
		bucket_drop(d, bk);
		return rc;
	}
	bk->used = 1;
	bk->last = ++d->clock;
	return free_i;
}

static int dm_submit(void *h, int si, uint32_t T, uint32_t n, char *why, size_t whylen)
{
	dmodel *d = h;
	if (si < 0 || si >= OP_CUDA_SLOTS || T > d->Tcap || n > d->ncap || n == 0 || d->s[si].busy) {
		snprintf(why, whylen, "batch of %u events, %u rows is beyond the device's %u/%u (or slot %d busy)", n, T,
			 d->ncap, d->Tcap, si);
		return -EINVAL;
	}
	slot *s = &d->s[si];
	uint32_t Tb = pow2_at_least(T, MIN_ROWS), nb = pow2_at_least(n, MIN_EVENTS);
	/* events past n are empty: their offsets all point at the end of the rows */
	in_layout il = layout_for(d, Tb, nb);
	uint32_t *off = (uint32_t *)(s->h_in + il.off);
	for (uint32_t i = n + 1; i <= nb; i++)
		off[i] = T;
	int bi = bucket_get(d, s, Tb, nb, why, whylen);
	if (bi < 0)
		return bi == -ENOSPC ? -ENOSPC : -EIO;
	bucket *bk = &d->b[bi];
	if (!bk->exec[si]) {
		/* once without capture first: modules load and kernels compile (PTX) outside it */
		cudaError_t we = cudaSuccess;
		if (forward(d, s, bk) < 0 && (we = cudaGetLastError()) == cudaSuccess)
			we = cudaErrorUnknown; /* a cuBLASLt call failed: no CUDA error to show */
		if (we == cudaSuccess)
			we = cudaStreamSynchronize(s->stream);
		if (we != cudaSuccess)
			return cuda_fail(why, whylen, "the forward pass", we);
		cudaGraph_t g = NULL;
		CK(cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
		int rc = forward(d, s, bk);
		cudaError_t e = cudaStreamEndCapture(s->stream, &g);
		if (rc < 0 || e != cudaSuccess) {
			if (g)
				cudaGraphDestroy(g);
			if (e == cudaSuccess)
				e = cudaGetLastError();
			snprintf(why, whylen, "capturing the forward pass: %s",
				 e != cudaSuccess ? cudaGetErrorString(e) : "a step failed inside the capture");
			return -EIO;
		}
		e = cudaGraphInstantiate(&bk->exec[si], g, 0);
		cudaGraphDestroy(g);
		if (e != cudaSuccess) {
			bk->exec[si] = NULL;
			return cuda_fail(why, whylen, "cudaGraphInstantiate", e);
		}
	}
	CK(cudaGraphLaunch(bk->exec[si], s->stream), "cudaGraphLaunch");
	s->T = T, s->n = n, s->bucket = bi, s->busy = 1;
	return 0;
}

static int dm_wait(void *h, int si, const float **raw, char *why, size_t whylen)
{
	dmodel *d = h;
	if (si < 0 || si >= OP_CUDA_SLOTS || !d->s[si].busy) {
		snprintf(why, whylen, "slot %d has no batch", si);
		return -EINVAL;
	}
	slot *s = &d->s[si];
	s->busy = 0;
	CK(cudaStreamSynchronize(s->stream), "running the forward pass");
	*raw = s->h_out;
	return 0;
}

static void dm_describe(void *h, char *buf, size_t len)
{
	dmodel *d = h;
	size_t o = (size_t)snprintf(buf, len, "%s (compute capability %d.%d, %d SMs)", d->info.name, d->info.cc_major,
				    d->info.cc_minor, d->info.sm_count);
	for (int w = 0; w < 2 && o < len; w++)
		for (uint32_t l = 0; l < d->nl[w] && o < len; l++) {
			const char *name = w ? d->m->head[l].name : d->m->pulse[l].name;
			int path = d->layer[w][l].path < 0 ? PATH_OURS : d->layer[w][l].path;
			o += (size_t)snprintf(buf + o, len - o, "; %s: %s%s%s%s", name, path_name[path],
					      d->layer[w][l].note[0] ? " (" : "", d->layer[w][l].note,
					      d->layer[w][l].note[0] ? ")" : "");
		}
}

static void dm_close(void *h)
{
	dmodel *d = h;
	if (!d)
		return;
	for (int i = 0; i < OP_CUDA_SLOTS; i++) {
		slot *s = &d->s[i];
		if (s->stream)
			cudaStreamSynchronize(s->stream);
		cudaFreeHost(s->h_in), cudaFreeHost(s->h_out);
		cudaFree(s->d_in), cudaFree(s->act[0]), cudaFree(s->act[1]);
		cudaFree(s->g), cudaFree(s->ga), cudaFree(s->gb), cudaFree(s->scratch);
		cudaFree(s->xcodes), cudaFree(s->xscales), cudaFree(s->xbf16), cudaFree(s->lt_ws);
		if (s->stream)
			cudaStreamDestroy(s->stream);
	}
	for (int i = 0; i < MAX_BUCKETS; i++)
		if (d->b[i].used)
			bucket_drop(d, &d->b[i]);
	for (int w = 0; w < 2; w++)
		for (uint32_t l = 0; l < d->nl[w]; l++) {
			dlayer *dl = &d->layer[w][l];
			cudaFree(dl->codes), cudaFree(dl->scales_lin), cudaFree(dl->scales_tiled);
			cudaFree(dl->wscale), cudaFree(dl->wf32), cudaFree(dl->bias), cudaFree(dl->wbf16);
		}
	if (d->lt)
		cublasLtDestroy(d->lt);
	free(d);
}

static const op_cuda_plugin plugin = {
	.abi = OP_CUDA_PLUGIN_ABI,
	.model_size = sizeof(op_model),
	.probe = probe,
	.open = dm_open,
	.inputs = dm_inputs,
	.submit = dm_submit,
	.wait = dm_wait,
	.describe = dm_describe,
	.close = dm_close,
};

const op_cuda_plugin *op_cuda_device_plugin(void)
{
	return &plugin;
}
