/*
 * fp4_gemm.c — layer preparation, the scalar reference rung, run-time rung choice and the row
 * split over threads (fp4_gemm.h). The reference is written for clarity: every other rung is
 * tested against it.
 */
#include "kernels/fp4_gemm.h"
#include "kernels/pool.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

static void build_g16(op_fp4_linear *L);

int op_fp4_linear_init(op_fp4_linear *L, op_fp4_tensor *w, uint32_t k, const float *bias, int relu,
		       float act_scale, int mx_mode)
{
	memset(L, 0, sizeof(*L));
	if (!w->codes || k == 0 || k > w->cols)
		return -EINVAL;
	L->w = *w;
	memset(w, 0, sizeof(*w));
	L->n = L->w.rows;
	L->k = k;
	L->relu = relu;
	L->mx_mode = mx_mode;
	L->act_scale = act_scale > 0 && isfinite(act_scale) ? act_scale : 1.0f;
	uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl;
	L->bias = calloc(L->n, sizeof(float));
	L->w2 = malloc((size_t)L->n * kp);
	L->wscale = malloc((size_t)L->n * nb * sizeof(float));
	L->wcorr = malloc((size_t)L->n * nb * sizeof(int32_t));
	L->wdec = malloc((size_t)L->n * kp * sizeof(float));
	if (!L->bias || !L->w2 || !L->wscale || !L->wcorr || !L->wdec) {
		op_fp4_linear_free(L);
		return -ENOMEM;
	}
	if (bias)
		memcpy(L->bias, bias, L->n * sizeof(float));
	for (uint32_t n = 0; n < L->n; n++)
		for (uint32_t b = 0; b < nb; b++) {
			float s = op_fp4_scale_value(L->w.format, L->w.scales[(size_t)n * nb + b]);
			int lo = 0, hi = 0;
			L->wscale[(size_t)n * nb + b] = s;
			for (uint32_t i = 0; i < bl; i++) {
				uint32_t c = b * bl + i;
				/* codes past k meet zero activations in the reference, so they are taken as
				 * zeros here: a rung that skips padding then sums exactly what it computes */
				int d = c < k ? op_e2m1_doubled(op_fp4_code(&L->w, n, c)) : 0;
				L->w2[(size_t)n * kp + c] = (int8_t)d;
				L->wdec[(size_t)n * kp + c] = ((float)d * 0.5f) * s;
				if (i % 4 < 2)
					lo += d;
				else
					hi += d;
			}
			L->wcorr[(size_t)n * nb + b] =
				(int32_t)(((uint32_t)(uint16_t)(int16_t)(-12 * hi) << 16) | (uint16_t)(int16_t)(-12 * lo));
		}
	build_g16(L);
	return 0;
}

/* The AVX-512 W4A4 layout (see op_fp4_linear): built once here instead of on every call (a
 * head layer on a batch of 256 events spent about as long laying out its weights as
 * multiplying them). Plain C: any rung can build it. */
static void build_g16(op_fp4_linear *L)
{
	const uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl, nq = kp / 4;
	const uint32_t ng = (L->n + 15) / 16;
	L->g16q = aligned_alloc(64, (size_t)ng * nq * 16 * sizeof(int32_t));
	L->g16c = aligned_alloc(64, (size_t)ng * nb * 16 * sizeof(int32_t));
	L->g16s = aligned_alloc(64, (size_t)ng * nb * 16 * sizeof(float));
	L->g16b = aligned_alloc(64, (size_t)ng * 16 * sizeof(float));
	L->g16p = aligned_alloc(64, (size_t)ng * nb * 16 * sizeof(int32_t));
	if (!L->g16q || !L->g16c || !L->g16s || !L->g16b || !L->g16p) {
		free(L->g16q), free(L->g16c), free(L->g16s), free(L->g16b), free(L->g16p);
		L->g16q = L->g16c = L->g16p = NULL, L->g16s = L->g16b = NULL;
	} else {
		op_fp4_layout_g16(L, L->g16q, L->g16c, L->g16s, L->g16b, L->g16p);
	}
	op_fp4_linear_layout_w16(L); /* on its own: W4A16 keeps its form when W4A4's could not be had */
}

int op_fp4_linear_layout_w16(op_fp4_linear *L)
{
	const uint32_t kp = L->w.cols, ng = (L->n + 15) / 16;
	if (!L->g16b) {
		L->g16b = aligned_alloc(64, (size_t)ng * 16 * sizeof(float));
		if (!L->g16b)
			return -ENOMEM;
		for (uint32_t n = 0; n < ng * 16; n++)
			L->g16b[n] = n < L->n ? L->bias[n] : 0.0f;
	}
	free(L->g16w); /* a second call lays out again */
	L->g16w = aligned_alloc(64, (size_t)ng * kp * 16 * sizeof(float));
	if (!L->g16w)
		return -ENOMEM;
	for (uint32_t g = 0; g < ng; g++)
		for (uint32_t c = 0; c < kp; c++)
			for (uint32_t o = 0; o < 16; o++) {
				const uint32_t n = g * 16 + o;
				L->g16w[((size_t)g * kp + c) * 16 + o] = n < L->n ? L->wdec[(size_t)n * kp + c] : 0.0f;
			}
	return 0;
}

void op_fp4_layout_g16(const op_fp4_linear *L, int32_t *wq, int32_t *wc, float *ws, float *wb, int32_t *wp)
{
	const uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl, nq = kp / 4;
	const uint32_t ng = (L->n + 15) / 16;
	for (uint32_t g = 0; g < ng; g++)
		for (uint32_t o = 0; o < 16; o++) {
			const uint32_t n = g * 16 + o;
			const int8_t *w2 = n < L->n ? L->w2 + (size_t)n * kp : NULL;
			for (uint32_t q = 0; q < nq; q++) {
				int32_t v = 0;
				if (w2)
					memcpy(&v, w2 + 4 * q, 4);
				wq[((size_t)g * nq + q) * 16 + o] = v;
			}
			for (uint32_t b = 0; b < nb; b++) {
				int32_t c = 0, packed = 0;
				float s = 0.0f;
				if (w2) {
					packed = L->wcorr[(size_t)n * nb + b]; /* the int16 halves of −12·Σw */
					c = (int32_t)(int16_t)(packed & 0xffff) + (int32_t)(int16_t)((uint32_t)packed >> 16);
					s = L->wscale[(size_t)n * nb + b];
				}
				if (wc)
					wc[((size_t)g * nb + b) * 16 + o] = c + OP_G16_SUM_BIAS;
				ws[((size_t)g * nb + b) * 16 + o] = s;
				if (wp)
					wp[((size_t)g * nb + b) * 16 + o] = packed;
			}
			if (wb)
				wb[(size_t)g * 16 + o] = n < L->n ? L->bias[n] : 0.0f;
		}
}

void op_fp4_linear_free(op_fp4_linear *L)
{
	if (!L)
		return;
	op_fp4_tensor_free(&L->w);
	free(L->bias);
	free(L->w2);
	free(L->wscale);
	free(L->wcorr);
	free(L->wdec);
	free(L->g16q), free(L->g16c), free(L->g16s), free(L->g16b), free(L->g16w), free(L->g16p);
	memset(L, 0, sizeof(*L));
}

const char *op_fp4_rung_name(int rung)
{
	return rung == OP_RUNG_AVX2	  ? "avx2"
	       : rung == OP_RUNG_NEON	  ? "neon"
	       : rung == OP_RUNG_AVX512	  ? "avx512"
	       : rung == OP_RUNG_NEON_DOT ? "neon-dot"
					  : "scalar";
}

int op_fp4_rung_available(int rung)
{
	switch (rung) {
	case OP_RUNG_SCALAR:
		return 1;
#if defined(__x86_64__)
	case OP_RUNG_AVX2:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#if !defined(OP_NO_AVX512) /* builds without fp4_gemm_avx512.c: the libFuzzer target, compilers without VNNI */
	case OP_RUNG_AVX512:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		       __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx512vnni");
#endif
#endif
#if defined(__aarch64__)
	case OP_RUNG_NEON:
		return 1;
#if !defined(OP_NO_NEONDOT)
	case OP_RUNG_NEON_DOT: /* the ARMv8.2 dot-product instructions (SDOT), as the kernel reports them */
		return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
#endif
	default:
		return 0;
	}
}

int op_fp4_rung_best(void)
{
	const char *force = getenv("OUTPOST_KERNEL_RUNG");
	if (force) { /* operators and tests can pin a rung: "scalar", "avx2", "avx512", "neon", "neon-dot" */
		for (int r = OP_RUNG_SCALAR; r <= OP_RUNG_LAST; r++)
			if (!strcmp(force, op_fp4_rung_name(r)) && op_fp4_rung_available(r))
				return r;
	}
	if (op_fp4_rung_available(OP_RUNG_AVX512))
		return OP_RUNG_AVX512;
	if (op_fp4_rung_available(OP_RUNG_AVX2))
		return OP_RUNG_AVX2;
	if (op_fp4_rung_available(OP_RUNG_NEON_DOT))
		return OP_RUNG_NEON_DOT;
	if (op_fp4_rung_available(OP_RUNG_NEON))
		return OP_RUNG_NEON;
	return OP_RUNG_SCALAR;
}

void op_fp4_quantize_row(const op_fp4_linear *L, const float *x, int8_t *q2, float *xs)
{
	uint32_t bl = op_fp4_block(L->w.format), nb = L->w.cols / bl;
	float S = 1.0f / L->act_scale, buf[OP_MXFP4_BLOCK];
	uint8_t code;
	for (uint32_t b = 0; b < nb; b++) {
		for (uint32_t i = 0; i < bl; i++) {
			uint32_t c = b * bl + i;
			buf[i] = c < L->k ? x[c] : 0.0f;
		}
		xs[b] = op_fp4_quantize_block(buf, bl, L->w.format, S, L->mx_mode, &code, q2 + b * bl);
	}
}

static float epilogue(const op_fp4_linear *L, float acc, float alpha, uint32_t n)
{
	float y = fmaf(acc, alpha, L->bias[n]);
	return L->relu && !(y > 0) ? 0.0f : y;
}

static float w4a4_alpha(const op_fp4_linear *L)
{
	float gx = L->w.format == OP_FP4_NVFP4 ? L->act_scale : 1.0f;
	return (0.25f * gx) * L->w.tensor_scale;
}

static int gemm_scalar(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y,
		       size_t ldy)
{
	uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl;
	if (mode == OP_W4A16) {
		for (uint32_t m = 0; m < M; m++)
			for (uint32_t n = 0; n < L->n; n++) {
				const float *x = X + (size_t)m * ldx, *w = L->wdec + (size_t)n * kp;
				float acc = 0;
				for (uint32_t k = 0; k < L->k; k++)
					acc = fmaf(x[k], w[k], acc);
				Y[(size_t)m * ldy + n] = epilogue(L, acc, L->w.tensor_scale, n);
			}
		return 0;
	}
	int8_t *q2 = malloc(kp);
	float *xs = malloc(nb * sizeof(float)), alpha = w4a4_alpha(L);
	if (!q2 || !xs) {
		free(q2);
		free(xs);
		return -ENOMEM;
	}
	for (uint32_t m = 0; m < M; m++) {
		op_fp4_quantize_row(L, X + (size_t)m * ldx, q2, xs);
		for (uint32_t n = 0; n < L->n; n++) {
			const int8_t *w = L->w2 + (size_t)n * kp;
			float acc = 0;
			for (uint32_t b = 0; b < nb; b++) {
				int isum = 0;
				for (uint32_t i = b * bl; i < (b + 1) * bl; i++)
					isum += q2[i] * w[i];
				acc = fmaf((float)isum, xs[b] * L->wscale[(size_t)n * nb + b], acc);
			}
			Y[(size_t)m * ldy + n] = epilogue(L, acc, alpha, n);
		}
	}
	free(q2);
	free(xs);
	return 0;
}

int op_fp4_w4a4_quantize_rung(int rung, const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M)
{
#if defined(__x86_64__) && !defined(OP_NO_AVX512)
	if (rung == OP_RUNG_AVX512 && op_fp4_rung_available(rung))
		return op_fp4_w4a4_quantize_avx512(L, X, ldx, M);
#endif
	(void)rung, (void)L, (void)X, (void)ldx, (void)M;
	return -EINVAL;
}

int op_fp4_gemm_rung(int rung, const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M,
		     float *Y, size_t ldy)
{
	if ((mode != OP_W4A4 && mode != OP_W4A16) || !op_fp4_rung_available(rung))
		return -EINVAL;
	if (M == 0)
		return 0;
#if defined(__x86_64__)
#if !defined(OP_NO_AVX512)
	if (rung == OP_RUNG_AVX512)
		return op_fp4_gemm_avx512(L, mode, X, ldx, M, Y, ldy);
#endif
	if (rung == OP_RUNG_AVX2)
		return op_fp4_gemm_avx2(L, mode, X, ldx, M, Y, ldy);
#endif
#if defined(__aarch64__)
#if !defined(OP_NO_NEONDOT)
	if (rung == OP_RUNG_NEON_DOT)
		return op_fp4_gemm_neondot(L, mode, X, ldx, M, Y, ldy);
#endif
	if (rung == OP_RUNG_NEON)
		return op_fp4_gemm_neon(L, mode, X, ldx, M, Y, ldy);
#endif
	return gemm_scalar(L, mode, X, ldx, M, Y, ldy);
}

/* ---- threads over rows ------------------------------------------------------------------ */

typedef struct job {
	const op_fp4_linear *L;
	const op_fp4_tensor *W;
	int mode, rung, mx_mode, relu;
	float act_scale;
	const float *bias;
	const float *X;
	size_t ldx, ldy;
	float *Y;
	uint32_t lo, hi, M;
	int rc;
} job;

static void *gemm_job(void *p)
{
	job *j = p;
	j->rc = op_fp4_gemm_rung(j->rung, j->L, j->mode, j->X + (size_t)j->lo * j->ldx, j->ldx, j->hi - j->lo,
				 j->Y + (size_t)j->lo * j->ldy, j->ldy);
	return NULL;
}

static void *gemv_job(void *p)
{
	job *j = p;
	j->rc = op_fp4_gemv_rung(j->rung, j->W, j->mode, j->act_scale, j->mx_mode, j->X, j->M, j->Y, j->lo, j->hi);
	if (j->rc == 0 && (j->bias || j->relu)) /* the epilogue, on this job's columns while they are hot */
		for (uint32_t m = 0; m < j->M; m++)
			for (uint32_t n = j->lo; n < j->hi; n++) {
				float *y = &j->Y[(size_t)m * j->W->rows + n];
				float v = j->bias ? *y + j->bias[n] : *y;
				*y = j->relu && !(v > 0) ? 0.0f : v;
			}
	return NULL;
}

#define OP_MAX_THREADS 64

/* Split [0, total) into `threads` chunks aligned to `align`, run fn on each; the calling thread
 * takes the first chunk itself. */
static int run_split(job *proto, uint32_t total, uint32_t align, int threads, void *(*fn)(void *))
{
	job jobs[OP_MAX_THREADS];
	if (threads < 1)
		threads = 1;
	if (threads > OP_MAX_THREADS)
		threads = OP_MAX_THREADS;
	uint32_t chunk = (total + (uint32_t)threads - 1) / (uint32_t)threads;
	chunk = (chunk + align - 1) / align * align;
	int n = 0;
	for (uint32_t lo = 0; lo < total && n < threads; lo += chunk, n++) {
		jobs[n] = *proto;
		jobs[n].lo = lo;
		jobs[n].hi = lo + chunk < total ? lo + chunk : total;
	}
	op_parallel(n, fn, jobs, sizeof(job));
	int rc = 0;
	for (int i = 0; i < n; i++)
		if (jobs[i].rc < 0)
			rc = jobs[i].rc;
	return rc;
}

int op_fp4_gemm(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y,
		size_t ldy, int threads)
{
	job proto = {.L = L, .mode = mode, .rung = op_fp4_rung_best(), .X = X, .ldx = ldx, .ldy = ldy, .Y = Y};
	if (threads <= 1 || M < 64)
		return op_fp4_gemm_rung(proto.rung, L, mode, X, ldx, M, Y, ldy);
	return run_split(&proto, M, 16, threads, gemm_job);
}

int op_fp4_gemm_bf16(const op_fp4_linear *L, const uint16_t *X, size_t ldx, uint32_t M, float *Y, size_t ldy,
		     int threads)
{
	enum { CHUNK = 1024 }; /* rows widened at a time: bounded memory for any M */
	float *buf = malloc((size_t)CHUNK * L->k * sizeof(float));
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	for (uint32_t m0 = 0; m0 < M && rc == 0; m0 += CHUNK) {
		uint32_t rows = M - m0 < CHUNK ? M - m0 : CHUNK;
		for (uint32_t r = 0; r < rows; r++)
			for (uint32_t k = 0; k < L->k; k++)
				buf[(size_t)r * L->k + k] = op_bf16_to_float(X[(size_t)(m0 + r) * ldx + k]);
		rc = op_fp4_gemm(L, OP_W4A16, buf, L->k, rows, Y + (size_t)m0 * ldy, ldy, threads);
	}
	free(buf);
	return rc;
}

/* ---- GEMV ---------------------------------------------------------------------------------- */

static int gemv_scalar(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		       float *Y, uint32_t n0, uint32_t n1)
{
	uint32_t K = W->cols, bl = op_fp4_block(W->format), nb = K / bl;
	if (mode == OP_W4A16) {
		for (uint32_t m = 0; m < M; m++)
			for (uint32_t n = n0; n < n1; n++) {
				float acc = 0;
				for (uint32_t k = 0; k < K; k++) {
					float s = op_fp4_scale_value(W->format, W->scales[(size_t)n * nb + k / bl]);
					acc = fmaf(X[(size_t)m * K + k], op_e2m1_to_float(op_fp4_code(W, n, k)) * s, acc);
				}
				Y[(size_t)m * W->rows + n] = acc * W->tensor_scale;
			}
		return 0;
	}
	op_fp4_linear shape = {.w = *W, .k = K, .mx_mode = mx_mode, .act_scale = act_scale > 0 ? act_scale : 1.0f};
	int8_t *q2 = malloc((size_t)M * K);
	float *xs = malloc((size_t)M * nb * sizeof(float)), alpha = w4a4_alpha(&shape);
	if (!q2 || !xs) {
		free(q2);
		free(xs);
		return -ENOMEM;
	}
	for (uint32_t m = 0; m < M; m++)
		op_fp4_quantize_row(&shape, X + (size_t)m * K, q2 + (size_t)m * K, xs + (size_t)m * nb);
	for (uint32_t m = 0; m < M; m++)
		for (uint32_t n = n0; n < n1; n++) {
			float acc = 0;
			for (uint32_t b = 0; b < nb; b++) {
				int isum = 0;
				for (uint32_t i = b * bl; i < (b + 1) * bl; i++)
					isum += q2[(size_t)m * K + i] * op_e2m1_doubled(op_fp4_code(W, n, i));
				float sw = op_fp4_scale_value(W->format, W->scales[(size_t)n * nb + b]);
				acc = fmaf((float)isum, xs[(size_t)m * nb + b] * sw, acc);
			}
			Y[(size_t)m * W->rows + n] = acc * alpha;
		}
	free(q2);
	free(xs);
	return 0;
}

int op_fp4_gemv_rung(int rung, const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X,
		     uint32_t M, float *Y, uint32_t n0, uint32_t n1)
{
	if ((mode != OP_W4A4 && mode != OP_W4A16) || !op_fp4_rung_available(rung) || n1 > W->rows)
		return -EINVAL;
#if defined(__x86_64__)
#if !defined(OP_NO_AVX512)
	if (rung == OP_RUNG_AVX512)
		return op_fp4_gemv_avx512(W, mode, act_scale, mx_mode, X, M, Y, n0, n1);
#endif
	if (rung == OP_RUNG_AVX2)
		return op_fp4_gemv_avx2(W, mode, act_scale, mx_mode, X, M, Y, n0, n1);
#endif
#if defined(__aarch64__)
	if (rung == OP_RUNG_NEON || rung == OP_RUNG_NEON_DOT)
		return op_fp4_gemv_neon(W, mode, act_scale, mx_mode, X, M, Y, n0, n1);
#endif
	return gemv_scalar(W, mode, act_scale, mx_mode, X, M, Y, n0, n1);
}

int op_fp4_gemv(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		float *Y, const float *bias, int relu, int threads)
{
	job proto = {.W = W, .mode = mode, .rung = op_fp4_rung_best(), .act_scale = act_scale, .mx_mode = mx_mode,
		     .X = X, .Y = Y, .M = M, .bias = bias};
	proto.relu = relu;
	return run_split(&proto, W->rows, 8, threads, gemv_job);
}

/* ---- pooling ------------------------------------------------------------------------------- */

void op_pool_channels(const float *H, size_t ldh, uint32_t C, uint32_t c0, const uint32_t *off, uint32_t n_events,
		      float *out, size_t ldo)
{
	for (uint32_t e = 0; e < n_events; e++) {
		float *o = out + (size_t)e * ldo;
		uint32_t lo = off[e], hi = off[e + 1];
		for (uint32_t c = c0; c < C; c++) {
			float sum = 0, mx = hi > lo ? H[(size_t)lo * ldh + c] : 0.0f;
			for (uint32_t r = lo; r < hi; r++) {
				float v = H[(size_t)r * ldh + c];
				sum += v;
				mx = v > mx ? v : mx;
			}
			o[c] = hi > lo ? sum / (float)(hi - lo) : 0.0f;
			o[C + c] = mx;
		}
	}
}

void op_pool_mean_max(int rung, const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events,
		      float *out, size_t ldo)
{
#if defined(__x86_64__)
	if ((rung == OP_RUNG_AVX2 || rung == OP_RUNG_AVX512) && op_fp4_rung_available(rung)) {
		op_pool_avx2(H, ldh, C, off, n_events, out, ldo);
		return;
	}
#endif
#if defined(__aarch64__)
	if (rung == OP_RUNG_NEON || rung == OP_RUNG_NEON_DOT) {
		op_pool_neon(H, ldh, C, off, n_events, out, ldo);
		return;
	}
#endif
	op_pool_channels(H, ldh, C, 0, off, n_events, out, ldo);
}
