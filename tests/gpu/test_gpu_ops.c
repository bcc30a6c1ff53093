/*
 * test_gpu_ops.c — every GPU op and the whole model against the CPU reference, on the GPU.
 * Exits 77 (skipped) where there is no CUDA device.
 *  - activation quantizer: codes, linear and tiled scales, doubled codes, decoded scales
 *    bit-exact with the same function run on the CPU;
 *  - dequantization to BF16: bit-exact, and exact (BF16 → float gives e2m1 · scale back);
 *  - our layer kernel (W4A16, W4A4, NVFP4 and MXFP4, FP32 layers): bit-exact with the scalar
 *    reference on ragged shapes;
 *  - GEMV (M ≤ 16) and cuBLASLt BF16: within the bound of their summation order,
 *    |y − y_ref| ≤ (2K·2⁻²⁴ [+ 2⁻⁸ for BF16 activations]) · g · Σ|x·w| per output;
 *  - cuBLASLt block-scaled FP4: on a GPU without FP4 tensor cores it must refuse with the
 *    reason; with them, within the FP32 summation bound of the W4A4 reference;
 *  - pooling: bit-exact;
 *  - the whole model through the plugin: bit-exact with the CPU when our kernels are pinned
 *    (OUTPOST_CUDA_PATH=ours), within 1e-3 rad / 1e-3 in log10 E with the automatic choice.
 * Every device output is followed by guard bytes that must come back untouched.
 *
 * Built twice: for the GPU (test_gpu_ops), and as test_gpu_emu with OP_GPU_EMULATED, where the
 * kernels run on the CPU under tests/gpu/emu/ (their indexing, tiling, padding and arithmetic
 * order checked on every machine; cuBLASLt, graphs and the whole model need the real GPU).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "appliance/modelfile.h"
#include "check.h"
#include "kernels/backend.h"
#include "kernels/cuda/lt.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/plugin.h"
#include "kernels/fp4_gemm.h"
#include "sim_events.h"
#ifdef OP_GPU_EMULATED
void emu_fail_syncs_after(long n); /* tests/gpu/emu/emu_runtime.cpp */
#endif

#define GUARD 256
#ifdef OP_GPU_EMULATED
#define NAME "test_gpu_emu"
#else
#define NAME "test_gpu_ops"
#endif
static struct cudaDeviceProp prop;

static uint64_t rng = 0x243f6a8885a308d3ull;
static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* device buffer of n bytes followed by GUARD bytes of 0xA5 */
static void *dalloc(size_t n)
{
	unsigned char *p = NULL;
	if (cudaMalloc((void **)&p, n + GUARD) != cudaSuccess)
		return NULL;
	cudaMemset(p, 0, n);
	cudaMemset(p + n, 0xA5, GUARD);
	return p;
}

static int guard_ok(const void *p, size_t n)
{
	unsigned char g[GUARD];
	if (cudaMemcpy(g, (const unsigned char *)p + n, GUARD, cudaMemcpyDeviceToHost) != cudaSuccess)
		return 0;
	for (int i = 0; i < GUARD; i++)
		if (g[i] != 0xA5)
			return 0;
	return 1;
}

static void *up(const void *h, size_t n)
{
	void *d = dalloc(n);
	if (d)
		cudaMemcpy(d, h, n, cudaMemcpyHostToDevice);
	return d;
}

static void down(void *h, const void *d, size_t n)
{
	CHECK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost) == cudaSuccess);
}

static float *rand_matrix(uint32_t rows, uint32_t cols, float scale)
{
	float *x = malloc((size_t)rows * cols * sizeof(float));
	for (size_t i = 0; i < (size_t)rows * cols; i++)
		x[i] = frand() * scale * ((i % 31 == 0) ? 20.0f : 1.0f);
	return x;
}

/* A prepared FP4 layer from random weights, and its device form (weights as stored: kp = cols). */
typedef struct layer_pair {
	op_fp4_linear L;
	op_dev_linear D;
	void *codes, *wscale, *scodes, *bias, *wf32;
} layer_pair;

static void make_layer(layer_pair *p, int format, int mode, uint32_t n, uint32_t k, const float *X, uint32_t M,
		       int fp32, int pad32)
{
	memset(p, 0, sizeof(*p));
	float *w = rand_matrix(n, k, 0.3f), *b = rand_matrix(1, n, 0.5f);
	float amax = 0;
	for (size_t i = 0; i < (size_t)M * k; i++)
		amax = fabsf(X[i]) > amax ? fabsf(X[i]) : amax;
	op_model_layer ml;
	if (fp32)
		CHECK(op_model_layer_fp32(&ml, "t", n, k, w, b, 1) == 0);
	else
		CHECK(op_model_layer_quantize(&ml, "t", n, k, w, b, 1, format, mode, OP_MX_SCALE_FLOOR, amax, NULL) == 0);
	p->L = ml.lin;
	op_dev_linear *D = &p->D;
	D->n = n, D->k = k, D->relu = 1, D->mx_mode = p->L.mx_mode;
	D->tensor_scale = p->L.w.tensor_scale, D->act_scale = p->L.act_scale;
	p->bias = up(p->L.bias, n * sizeof(float));
	D->bias = p->bias;
	if (fp32) {
		D->weights = OP_DEV_W_FP32, D->mode = OP_W4A16, D->kp = p->L.w.cols;
		p->wf32 = up(p->L.wdec, (size_t)n * p->L.w.cols * sizeof(float));
		D->wf32 = p->wf32;
	} else {
		uint32_t kp = p->L.w.cols, bl = op_fp4_block(format), kpd = pad32 ? (kp + 31) / 32 * 32 : kp;
		uint8_t *c = calloc((size_t)n * kpd / 2, 1), *sc = calloc((size_t)n * (kpd / bl), 1);
		float *s = calloc((size_t)n * (kpd / bl), sizeof(float));
		for (uint32_t r = 0; r < n; r++) {
			memcpy(c + (size_t)r * kpd / 2, p->L.w.codes + (size_t)r * kp / 2, kp / 2);
			memcpy(s + (size_t)r * (kpd / bl), p->L.wscale + (size_t)r * (kp / bl), (kp / bl) * sizeof(float));
			memcpy(sc + (size_t)r * (kpd / bl), p->L.w.scales + (size_t)r * (kp / bl), kp / bl);
		}
		D->weights = OP_DEV_W_FP4, D->format = format, D->mode = mode, D->kp = kpd;
		p->codes = up(c, (size_t)n * kpd / 2);
		p->wscale = up(s, (size_t)n * (kpd / bl) * sizeof(float));
		p->scodes = up(sc, (size_t)n * (kpd / bl));
		D->codes = p->codes, D->wscale = p->wscale, D->scodes = p->scodes;
		free(c), free(s), free(sc);
	}
	free(w), free(b);
}

static void free_layer(layer_pair *p)
{
	cudaFree(p->codes), cudaFree(p->wscale), cudaFree(p->scodes), cudaFree(p->bias), cudaFree(p->wf32);
	op_fp4_linear_free(&p->L);
}

/* Σ_k |x_k · w_k| · g for every output (what rounding errors scale with). */
static double *abs_dot(const op_fp4_linear *L, const float *X, uint32_t M, int a4)
{
	double *s = calloc((size_t)M * L->n, sizeof(double));
	uint32_t kp = L->w.cols, bl = L->w.format ? op_fp4_block(L->w.format) : 1, nb = kp / bl;
	int8_t *q2 = malloc(kp);
	float *xs = malloc((nb + 1) * sizeof(float));
	for (uint32_t m = 0; m < M; m++) {
		if (a4)
			op_fp4_quantize_row(L, X + (size_t)m * L->k, q2, xs);
		for (uint32_t n = 0; n < L->n; n++) {
			double acc = 0;
			for (uint32_t k = 0; k < L->k; k++) {
				double x = a4 ? q2[k] * 0.5 * xs[k / bl] * (L->w.format == OP_FP4_NVFP4 ? L->act_scale : 1.0)
					      : X[(size_t)m * L->k + k];
				acc += fabs(x * L->wdec[(size_t)n * kp + k]);
			}
			s[(size_t)m * L->n + n] = acc * L->w.tensor_scale;
		}
	}
	free(q2), free(xs);
	return s;
}

static void test_quantizer(int format, int mx_mode, uint32_t M, uint32_t k)
{
	uint32_t bl = op_fp4_block(format), kp = (k + bl - 1) / bl * bl, nb = kp / bl, tr = (M + 127) / 128 * 128;
	float *X = rand_matrix(M, k, 3.0f);
	size_t tsz = op_fp4_scale_tiled_size(tr, nb);
	uint8_t *hc = calloc((size_t)M * kp / 2, 1), *hl = calloc((size_t)M * nb, 1), *ht = calloc(tsz, 1);
	int8_t *hq = calloc((size_t)M * kp, 1);
	float *hx = calloc((size_t)M * nb, sizeof(float));
	for (uint32_t r = 0; r < tr; r++)
		for (uint32_t b = 0; b < (nb + 3) / 4 * 4; b++)
			op_fp4_act_quantize_at(X, k, M, k, kp, format, 7.5f, mx_mode, r, b, hc, hl, ht, tr, hq, hx);
	float *dX = up(X, (size_t)M * k * sizeof(float));
	uint8_t *dc = dalloc((size_t)M * kp / 2), *dl = dalloc((size_t)M * nb), *dt = dalloc(tsz);
	int8_t *dq = dalloc((size_t)M * kp);
	float *dx = dalloc((size_t)M * nb * sizeof(float));
	cudaMemset(dt, 0x5A, tsz); /* the padding must be written */
	CHECK(op_cuda_quantize_act(dX, k, M, k, kp, format, 7.5f, mx_mode, dc, dl, dt, tr, dq, dx, 0) == cudaSuccess);
	CHECK(cudaDeviceSynchronize() == cudaSuccess);
	uint8_t *gc = malloc((size_t)M * kp / 2), *gl = malloc((size_t)M * nb), *gt = malloc(tsz);
	int8_t *gq = malloc((size_t)M * kp);
	float *gx = malloc((size_t)M * nb * sizeof(float));
	down(gc, dc, (size_t)M * kp / 2), down(gl, dl, (size_t)M * nb), down(gt, dt, tsz);
	down(gq, dq, (size_t)M * kp), down(gx, dx, (size_t)M * nb * sizeof(float));
	CHECK(!memcmp(gc, hc, (size_t)M * kp / 2));
	CHECK(!memcmp(gl, hl, (size_t)M * nb));
	CHECK(!memcmp(gt, ht, tsz));
	CHECK(!memcmp(gq, hq, (size_t)M * kp));
	CHECK(!memcmp(gx, hx, (size_t)M * nb * sizeof(float)));
	CHECK(guard_ok(dc, (size_t)M * kp / 2) && guard_ok(dl, (size_t)M * nb) && guard_ok(dt, tsz));
	CHECK(guard_ok(dq, (size_t)M * kp) && guard_ok(dx, (size_t)M * nb * sizeof(float)));
	cudaFree(dX), cudaFree(dc), cudaFree(dl), cudaFree(dt), cudaFree(dq), cudaFree(dx);
	free(X), free(hc), free(hl), free(ht), free(hq), free(hx), free(gc), free(gl), free(gt), free(gq), free(gx);
}

static void test_dequant(int format, uint32_t n, uint32_t k)
{
	op_fp4_tensor t;
	CHECK(op_fp4_tensor_alloc(&t, format, n, k) == 0);
	float *w = rand_matrix(n, k, 2.0f);
	CHECK(op_fp4_quantize(&t, w, k, k, OP_MX_SCALE_FLOOR) == 0);
	uint32_t nb = k / op_fp4_block(format);
	void *dc = up(t.codes, (size_t)n * k / 2), *ds = up(t.scales, (size_t)n * nb);
	uint16_t *dout = dalloc((size_t)n * k * 2), *got = malloc((size_t)n * k * 2);
	CHECK(op_cuda_dequant_bf16(dc, ds, n, k, format, dout, 0) == cudaSuccess);
	down(got, dout, (size_t)n * k * 2);
	int exact = 1, same = 1;
	for (uint32_t r = 0; r < n; r++)
		for (uint32_t c = 0; c < k; c++) {
			float v = op_e2m1_to_float(op_fp4_code(&t, r, c)) *
				  op_fp4_scale_value(format, t.scales[(size_t)r * nb + c / op_fp4_block(format)]);
			same &= got[(size_t)r * k + c] == op_bf16_from_float(v);
			exact &= op_bf16_to_float(got[(size_t)r * k + c]) == v;
		}
	CHECK(same);
	CHECK(exact);
	CHECK(guard_ok(dout, (size_t)n * k * 2));
	cudaFree(dc), cudaFree(ds), cudaFree(dout);
	free(got), free(w);
	op_fp4_tensor_free(&t);
}

static void test_linear(int format, int mode, int fp32, uint32_t M, uint32_t k, uint32_t n)
{
	float *X = rand_matrix(M, k, 2.0f);
	layer_pair p;
	make_layer(&p, format, mode, n, k, X, M, fp32, 0);
	float *ref = malloc((size_t)M * n * sizeof(float)), *got = malloc((size_t)M * n * sizeof(float));
	CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &p.L, fp32 ? OP_W4A16 : mode, X, k, M, ref, n) == 0);
	float *dX = up(X, (size_t)M * k * sizeof(float)), *dY = dalloc((size_t)M * n * sizeof(float));
	size_t scr = op_cuda_linear_scratch(&p.D, M);
	void *ds = dalloc(scr ? scr : 16);
	CHECK(op_cuda_linear(&p.D, dX, k, M, dY, n, ds, 0) == cudaSuccess);
	down(got, dY, (size_t)M * n * sizeof(float));
	int same = !memcmp(got, ref, (size_t)M * n * sizeof(float));
	CHECK(same);
	if (!same)
		fprintf(stderr, "  linear: format %d mode %d fp32 %d M %u k %u n %u: y[0] %.9g vs %.9g\n", format, mode,
			fp32, M, k, n, got[0], ref[0]);
	CHECK(guard_ok(dY, (size_t)M * n * sizeof(float)));
	CHECK(!scr || guard_ok(ds, scr));
	cudaFree(dX), cudaFree(dY), cudaFree(ds);
	free_layer(&p);
	free(X), free(ref), free(got);
}

/* max over outputs of |got − ref| / (g·Σ|x·w|), against its bound */
static double worst_ratio(const float *got, const float *ref, const double *absd, size_t cnt)
{
	double worst = 0;
	for (size_t i = 0; i < cnt; i++) {
		double e = fabs((double)got[i] - ref[i]), s = absd[i] > 1e-30 ? absd[i] : 1e-30;
		if (ref[i] == 0 && got[i] == 0)
			continue; /* ReLU clipped both */
		worst = e / s > worst ? e / s : worst;
	}
	return worst;
}

/* simt: the CUDA-core GEMV (op_cuda_gemv_simt) instead of the tensor-core one */
static void test_gemv(int format, int mode, uint32_t M, uint32_t K, uint32_t N, int simt)
{
	float *X = rand_matrix(M, K, 1.0f);
	layer_pair p;
	make_layer(&p, format, mode, N, K, X, M, 0, 1);
	p.D.relu = 0, p.L.relu = 0;
	float *ref = malloc((size_t)M * N * sizeof(float)), *got = malloc((size_t)M * N * sizeof(float));
	CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &p.L, mode, X, K, M, ref, N) == 0);
	double *absd = abs_dot(&p.L, X, M, mode == OP_W4A4);
	float *dX = up(X, (size_t)M * K * sizeof(float)), *dY = dalloc((size_t)M * N * sizeof(float));
	size_t scr = op_cuda_linear_scratch(&p.D, M);
	void *ds = dalloc(scr ? scr : 16);
	CHECK((simt ? op_cuda_gemv_simt : op_cuda_gemv)(&p.D, dX, M, dY, ds, 0) == cudaSuccess);
	down(got, dY, (size_t)M * N * sizeof(float));
	/* the summation order's bound; the tensor-core W4A16 adds its activations' hi + lo split */
	double w = worst_ratio(got, ref, absd, (size_t)M * N),
	       bound = 2.0 * K * ldexp(1.0, -24) + (!simt && mode == OP_W4A16 ? ldexp(1.0, -16) : 0.0);
	fprintf(stderr, NAME ": gemv%s %s %s M=%u K=%u N=%u: worst error %.3g of the bound %.3g\n", simt ? " simt" : "",
		format == OP_FP4_NVFP4 ? "nvfp4" : "mxfp4", mode == OP_W4A4 ? "w4a4" : "w4a16", M, K, N, w, bound);
	CHECK(w <= bound);
	CHECK(guard_ok(dY, (size_t)M * N * sizeof(float)));
	cudaFree(dX), cudaFree(dY), cudaFree(ds);
	free_layer(&p);
	free(X), free(ref), free(got), free(absd);
}

#ifndef OP_GPU_EMULATED
static void test_lt_bf16(int format, uint32_t M, uint32_t K, uint32_t N)
{
	float *X = rand_matrix(M, K, 1.0f);
	layer_pair p;
	make_layer(&p, format, OP_W4A16, N, K, X, M, 0, 1);
	p.L.relu = 0;
	float *ref = malloc((size_t)M * N * sizeof(float)), *got = malloc((size_t)M * N * sizeof(float));
	CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &p.L, OP_W4A16, X, K, M, ref, N) == 0);
	double *absd = abs_dot(&p.L, X, M, 0);
	uint32_t kp = p.D.kp;
	const void *dsc = p.scodes;
	uint16_t *wb = dalloc((size_t)N * kp * 2), *xb = dalloc((size_t)M * kp * 2);
	float *dX = up(X, (size_t)M * K * sizeof(float)), *dY = dalloc((size_t)M * N * sizeof(float));
	void *ws = dalloc(OP_LT_WORKSPACE);
	CHECK(op_cuda_dequant_bf16(p.codes, dsc, N, kp, format, wb, 0) == cudaSuccess);
	CHECK(op_cuda_f32_to_bf16(dX, K, M, K, kp, xb, 0) == cudaSuccess);
	cublasLtHandle_t h;
	CHECK(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
	op_lt_plan plan;
	char why[256];
	CHECK(op_lt_plan_init(&plan, OP_LT_BF16, M, N, kp, why, sizeof(why)) == 0);
	int rc = op_lt_plan_choose(&plan, h, wb, xb, dY, p.L.w.tensor_scale, ws, OP_LT_WORKSPACE, 0, why, sizeof(why));
	CHECK(rc == 0);
	if (rc == 0) {
		CHECK(op_lt_plan_run(&plan, h, wb, xb, dY, p.L.w.tensor_scale, ws, OP_LT_WORKSPACE, 0) == 0);
		CHECK(op_cuda_bias_act(dY, N, M, N, 1.0f, p.bias, 0, 0) == cudaSuccess);
		down(got, dY, (size_t)M * N * sizeof(float));
		double w = worst_ratio(got, ref, absd, (size_t)M * N), bound = ldexp(1.0, -8) + 2.0 * K * ldexp(1.0, -24);
		fprintf(stderr, NAME ": cuBLASLt bf16 M=%u K=%u N=%u (%d candidates): worst %.3g of the bound %.3g\n",
			M, K, N, plan.candidates, w, bound);
		CHECK(w <= bound);
		CHECK(guard_ok(dY, (size_t)M * N * sizeof(float)));
	} else {
		fprintf(stderr, NAME ": %s\n", why);
	}
	op_lt_plan_free(&plan);
	cublasLtDestroy(h);
	cudaFree(wb), cudaFree(xb), cudaFree(dX), cudaFree(dY), cudaFree(ws);
	free_layer(&p);
	free(X), free(ref), free(got), free(absd);
}

static void test_lt_fp4(int format, uint32_t M, uint32_t K, uint32_t N)
{
	float *X = rand_matrix(M, K, 1.0f);
	layer_pair p;
	make_layer(&p, format, OP_W4A4, N, K, X, M, 0, 1);
	p.L.relu = 0;
	uint32_t kp = p.D.kp, bl = op_fp4_block(format), nb = kp / bl, tr = (M + 127) / 128 * 128;
	float *ref = malloc((size_t)M * N * sizeof(float)), *got = malloc((size_t)M * N * sizeof(float));
	CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &p.L, OP_W4A4, X, K, M, ref, N) == 0);
	double *absd = abs_dot(&p.L, X, M, 1);
	uint8_t *wt = calloc(op_fp4_scale_tiled_size(N, nb), 1);
	for (uint32_t r = 0; r < N; r++)
		for (uint32_t b = 0; b < p.L.w.cols / bl; b++)
			wt[op_fp4_scale_tiled_offset(r, b, nb)] = p.L.w.scales[(size_t)r * (p.L.w.cols / bl) + b];
	void *dwt = up(wt, op_fp4_scale_tiled_size(N, nb));
	uint8_t *xc = dalloc((size_t)M * kp / 2), *xt = dalloc(op_fp4_scale_tiled_size(tr, nb));
	float *dX = up(X, (size_t)M * K * sizeof(float)), *dY = dalloc((size_t)M * N * sizeof(float));
	void *ws = dalloc(OP_LT_WORKSPACE);
	CHECK(op_cuda_quantize_act(dX, K, M, K, kp, format, 1.0f / p.L.act_scale, p.L.mx_mode, xc, NULL, xt, tr, NULL,
				   NULL, 0) == cudaSuccess);
	cublasLtHandle_t h;
	CHECK(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
	op_lt_plan plan;
	char why[256] = "";
	CHECK(op_lt_plan_init(&plan, format == OP_FP4_NVFP4 ? OP_LT_NVFP4 : OP_LT_MXFP4, M, N, kp, why, sizeof(why)) == 0);
	CHECK(op_lt_plan_scales(&plan, dwt, xt, why, sizeof(why)) == 0);
	float alpha = (format == OP_FP4_NVFP4 ? p.L.act_scale : 1.0f) * p.L.w.tensor_scale;
	int rc = op_lt_plan_choose(&plan, h, p.codes, xc, dY, alpha, ws, OP_LT_WORKSPACE, 0, why, sizeof(why));
	if (prop.major < 10) {
		/* Hopper and older: no FP4 tensor cores — a clear refusal, for the fallback to act on */
		fprintf(stderr, NAME ": FP4 on compute capability %d.%d: %s\n", prop.major, prop.minor, why);
		CHECK(rc == -ENOTSUP);
		CHECK(strstr(why, "offers no algorithm") && strstr(why, "FP4 tensor cores"));
	} else {
		CHECK(rc == 0);
		if (rc == 0) {
			CHECK(op_lt_plan_run(&plan, h, p.codes, xc, dY, alpha, ws, OP_LT_WORKSPACE, 0) == 0);
			CHECK(op_cuda_bias_act(dY, N, M, N, 1.0f, p.bias, 0, 0) == cudaSuccess);
			down(got, dY, (size_t)M * N * sizeof(float));
			double w = worst_ratio(got, ref, absd, (size_t)M * N), bound = 2.0 * K * ldexp(1.0, -24);
			fprintf(stderr, NAME ": cuBLASLt %s M=%u K=%u N=%u: worst %.3g of the bound %.3g\n",
				op_lt_kind_name(plan.kind), M, K, N, w, bound);
			CHECK(w <= bound);
			CHECK(guard_ok(dY, (size_t)M * N * sizeof(float)));
		}
	}
	op_lt_plan_free(&plan);
	cublasLtDestroy(h);
	cudaFree(dwt), cudaFree(xc), cudaFree(xt), cudaFree(dX), cudaFree(dY), cudaFree(ws);
	free_layer(&p);
	free(X), free(ref), free(got), free(absd), free(wt);
}

#endif

static void test_pool(uint32_t n_events, uint32_t C)
{
	uint32_t *off = malloc((n_events + 1) * sizeof(uint32_t)), T = 0;
	for (uint32_t e = 0; e < n_events; e++) {
		off[e] = T;
		T += e % 9 == 0 ? 0 : 1 + (uint32_t)((frand() + 1) * 60);
	}
	off[n_events] = T;
	float *H = rand_matrix(T + 1, C, 3.0f), *ref = calloc((size_t)n_events * 2 * C, 4), *got = malloc((size_t)n_events * 2 * C * 4);
	op_pool_channels(H, C, C, 0, off, n_events, ref, 2 * C);
	float *dH = up(H, (size_t)(T + 1) * C * 4), *dO = dalloc((size_t)n_events * 2 * C * 4);
	uint32_t *doff = up(off, (n_events + 1) * 4);
	CHECK(op_cuda_pool(dH, C, C, doff, n_events, dO, 2 * C, 0) == cudaSuccess);
	down(got, dO, (size_t)n_events * 2 * C * 4);
	CHECK(!memcmp(got, ref, (size_t)n_events * 2 * C * 4));
	CHECK(guard_ok(dO, (size_t)n_events * 2 * C * 4));
	cudaFree(dH), cudaFree(dO), cudaFree(doff);
	free(off), free(H), free(ref), free(got);
}

/* ---- the whole model through the plugin ---------------------------------------------------- */

#ifdef OP_GPU_EMULATED
enum { NE = 600, PIECE_A = 256, PIECE_B = 200 };
#else
enum { NE = 3000, PIECE_A = 1024, PIECE_B = 700 };
#endif
static op_reco_event ev[NE];
static op_reco_out guess[NE];


static int model_on_gpu(const op_model *m, op_reco_out *out, uint32_t piece)
{
	const op_cuda_plugin *pl = op_cuda_device_plugin();
	char why[512];
	void *h = pl->open(m, piece, piece * m->max_pulses, why, sizeof(why));
	CHECK(h != NULL);
	if (!h) {
		fprintf(stderr, NAME ": plugin open: %s\n", why);
		return -1;
	}
	op_model_ws *ws = op_model_ws_new();
	for (uint32_t lo = 0, si = 0; lo < NE; lo += piece, si ^= 1) {
		uint32_t n = NE - lo < piece ? NE - lo : piece, T = 0;
		for (uint32_t i = lo; i < lo + n; i++)
			T += op_model_event_rows(m, &ev[i], &guess[i]);
		float *feat, *evf;
		uint32_t *off;
		size_t ldev;
		CHECK(pl->inputs(h, (int)si, T, n, &feat, &off, &evf, &ldev) == 0);
		CHECK(op_model_inputs(m, ws, ev + lo, guess + lo, n, feat, off, evf, ldev, 0) == (long)T);
		off[n] = T;
		int rc = pl->submit(h, (int)si, T, n, why, sizeof(why));
		CHECK(rc == 0);
		const float *raw;
		if (rc == 0 && pl->wait(h, (int)si, &raw, why, sizeof(why)) == 0)
			op_model_outputs(m, guess + lo, off, raw, OP_MODEL_OUTPUTS, out + lo, n);
		else
			fprintf(stderr, NAME ": %s\n", why);
	}
	char desc[1024];
	pl->describe(h, desc, sizeof(desc));
	fprintf(stderr, NAME ": model on %s\n", desc);
	op_model_ws_free(ws);
	pl->close(h);
	return 0;
}

static void test_model(void)
{
	op_model m;
	char err[512];
	CHECK(op_model_load_default(&m, err, sizeof(err)) == 0);
	sim_events(ev, guess, NE, 21, 0.7, 400, 40);
	static op_reco_out ref[NE], got[NE];
	op_model_ws *ws[1] = {op_model_ws_new()};
	CHECK(op_model_run(&m, ws, 1, ev, guess, ref, NE) == 0);
	op_model_ws_free(ws[0]);

	setenv("OUTPOST_CUDA_PATH", "ours", 1);
	if (model_on_gpu(&m, got, PIECE_A) == 0) {
		int same = 1;
		for (int e = 0; e < NE; e++)
			same &= !memcmp(got[e].dir, ref[e].dir, sizeof(ref[e].dir)) && got[e].status == ref[e].status &&
				!memcmp(&got[e].log10_energy_gev, &ref[e].log10_energy_gev, 4) &&
				!memcmp(&got[e].track_score, &ref[e].track_score, 4);
		CHECK(same);
	}
	/* the backend's own pipeline (two slots, features on two threads) on the same plugin */
	op_backend_use_plugin(op_cuda_device_plugin());
	op_backend *b = NULL;
	char why[512];
	CHECK(op_backend_open("cuda", &m, 2, PIECE_B, &b, why, sizeof(why)) == 0);
	if (b) {
		memset(got, 0, sizeof(got));
		CHECK(op_backend_run(b, ev, guess, got, NE) == 0);
		CHECK(op_backend_fault(b) == NULL);
		int same = 1;
		for (int e = 0; e < NE; e++)
			same &= !memcmp(got[e].dir, ref[e].dir, sizeof(ref[e].dir)) && got[e].status == ref[e].status &&
				!memcmp(&got[e].log10_energy_gev, &ref[e].log10_energy_gev, 4);
		CHECK(same);
		fprintf(stderr, NAME ": backend: %s\n", op_backend_describe(b));
		op_backend_close(b);
	}
#ifdef OP_GPU_EMULATED
	/* a GPU that fails in the middle of a batch: the batch, and the next, come from the CPU,
	 * bit for bit, and the backend says what happened */
	b = NULL;
	CHECK(op_backend_open("cuda", &m, 2, PIECE_B, &b, why, sizeof(why)) == 0);
	if (b) {
		emu_fail_syncs_after(1);
		memset(got, 0, sizeof(got));
		CHECK(op_backend_run(b, ev, guess, got, NE) == 0);
		emu_fail_syncs_after(-1);
		const char *fault = op_backend_fault(b);
		CHECK(fault && strstr(fault, "the GPU failed") && strstr(fault, "launch failure") &&
		      strstr(fault, "the CPU runs the model from now on"));
		CHECK(op_backend_kind(b) == OP_BACKEND_CUDA && strncmp(op_backend_describe(b), "cpu/", 4) == 0);
		int same = 1;
		for (int e = 0; e < NE; e++)
			same &= !memcmp(got[e].dir, ref[e].dir, sizeof(ref[e].dir)) && got[e].status == ref[e].status;
		CHECK(same);
		CHECK(op_backend_run(b, ev, guess, got, NE) == 0); /* and stays on the CPU */
		fprintf(stderr, NAME ": after a failure: %s\n", fault ? fault : "(no fault reported)");
		op_backend_close(b);
	}
#endif
	unsetenv("OUTPOST_CUDA_PATH");
	if (model_on_gpu(&m, got, PIECE_B) == 0) {
		double worst = 0, worst_e = 0;
		int status = 1;
		for (int e = 0; e < NE; e++) {
			status &= got[e].status == ref[e].status;
			if (isnan(ref[e].dir[0]))
				continue;
			double a = sim_angle(got[e].dir, ref[e].dir);
			double de = fabs((double)got[e].log10_energy_gev - ref[e].log10_energy_gev);
			worst = a > worst ? a : worst;
			worst_e = de > worst_e ? de : worst_e;
		}
		fprintf(stderr, NAME ": model, automatic paths: worst %.3g rad, %.3g in log10 E\n", worst, worst_e);
		CHECK(status);
		CHECK(worst < 1e-3 && worst_e < 1e-3);
	}
	op_model_free(&m);
}

int main(void)
{
	int n = 0;
	cudaError_t e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n == 0) {
		fprintf(stderr, NAME ": no CUDA device (%s): skipped\n",
			e != cudaSuccess ? cudaGetErrorString(e) : "none");
		return 77;
	}
	cudaGetDeviceProperties(&prop, 0);
	fprintf(stderr, NAME ": %s, compute capability %d.%d\n", prop.name, prop.major, prop.minor);

#ifdef OP_GPU_EMULATED
	const uint32_t Ms[] = {1, 7, 130, 333}, GK = 1024; /* every thread a fiber on one core: keep it modest */
#else
	const uint32_t Ms[] = {1, 7, 130, 4099}, GK = 4096;
#endif
	const uint32_t ks[] = {16, 40, 264};
	for (int f = OP_FP4_NVFP4; f <= OP_FP4_MXFP4; f++) {
		for (size_t i = 0; i < 4; i++)
			for (size_t j = 0; j < 3; j++)
				test_quantizer(f, f == OP_FP4_MXFP4 ? (int)(i % 2) : 0, Ms[i], ks[j]);
		test_dequant(f, 130, 256);
		for (size_t i = 0; i < 4; i++)
			for (size_t j = 0; j < 3; j++) {
				test_linear(f, OP_W4A16, 0, Ms[i], ks[j], 130);
				test_linear(f, OP_W4A4, 0, Ms[i], ks[j], 64);
			}
		const uint32_t gm[] = {1, 5, 9, 16};
		for (size_t i = 0; i < 4; i++)
			for (int simt = 0; simt < 2; simt++) {
				test_gemv(f, OP_W4A16, gm[i], GK, GK, simt);
				test_gemv(f, OP_W4A4, gm[i], GK, GK, simt);
				test_gemv(f, OP_W4A16, gm[i], 288, 130, simt);
			}
		/* K not a multiple of 16 (the last block padded), and rows of X not 16-byte aligned
		 * (K ≡ 2 mod 4): X read element by element; small K, where the split term dominates */
		test_gemv(f, OP_W4A16, 3, 264, 70, 0);
		test_gemv(f, OP_W4A4, 11, 264, 70, 0);
		test_gemv(f, OP_W4A16, 5, 262, 70, 0);
		test_gemv(f, OP_W4A16, 16, 32, 40, 0);
#ifndef OP_GPU_EMULATED
		test_lt_bf16(f, 16, 4096, 4096);
		test_lt_bf16(f, 4096, 128, 128);
		test_lt_fp4(f, 4096, 128, 128);
		test_lt_fp4(f, 16, 4096, 4096);
#endif
	}
	test_linear(0, OP_W4A16, 1, 777, 24, 96);
	test_pool(1000, 128);
	test_pool(3, 5);
	test_model();
	return check_finish(NAME);
}
