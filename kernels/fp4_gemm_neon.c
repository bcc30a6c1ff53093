/*
 * fp4_gemm_neon.c — the NEON rung (aarch64: GB10's Cortex-X925/A725 cores). Reproduces the
 * reference arithmetic of fp4_gemm.h bit for bit for GEMM and pooling, with baseline ARMv8.0
 * NEON (no dot-product extension needed; fp4_gemm_neondot.c is the rung for cores that have it):
 * W4A4: each row's activations quantized four lanes at a time (the scale rule per block is the
 *       reference's own function), then per row and block the exact integer sum of doubled
 *       codes with vmull_s8 + pairwise adds and the reference's FP32 FMA chain.
 * W4A16: eight outputs by up to eight rows of accumulators over the exact weights laid out
 *       k-major at load (op_fp4_linear.g16w), each lane the reference's sequential FMA chain.
 * GEMV: codes turned into FP32 weights by byte-table lookups, 32 a step; matches to rounding.
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fp4_gemm.h"
#include "kernels/fp4_gemm_neon.h"

static inline int32_t block_dot(const int8_t *x, const int8_t *w, uint32_t bl)
{
	int32x4_t acc = vdupq_n_s32(0);
	for (uint32_t i = 0; i < bl; i += 16) {
		int8x16_t a = vld1q_s8(x + i), b = vld1q_s8(w + i);
		int16x8_t p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
		p = vmlal_s8(p, vget_high_s8(a), vget_high_s8(b)); /* |sum| ≤ 2·144: fits */
		acc = vpadalq_s16(acc, p);
	}
	return vaddvq_s32(acc);
}

static float relu_if(float y, int relu)
{
	return relu && !(y > 0) ? 0.0f : y;
}

/* |y| → its doubled E2M1 magnitude 0 … 12, round-to-nearest-even (the AVX2 rung's doubled_mag):
 * t = min(2|y|, 16) (FMINNM: NaN → 16), rounded to one mantissa bit by adding and removing
 * 2^(e+22), at least 2^23, then truncated and capped at 12. */
static inline int32x4_t doubled_mag(float32x4_t a)
{
	float32x4_t t = vminnmq_f32(vaddq_f32(a, a), vdupq_n_f32(16.0f));
	int32x4_t e = vandq_s32(vreinterpretq_s32_f32(t), vdupq_n_s32(0x7f800000));
	float32x4_t m = vreinterpretq_f32_s32(vmaxq_s32(vaddq_s32(e, vdupq_n_s32(0x0b000000)), vdupq_n_s32(0x4b000000)));
	return vminq_s32(vcvtq_s32_f32(vsubq_f32(vaddq_f32(t, m), m)), vdupq_n_s32(12));
}

void op_fp4_quantize_row_neon(const op_fp4_linear *L, const float *x, int8_t *q2, float *xs, float *pad)
{
	const uint32_t bl = op_fp4_block(L->w.format), kp = L->w.cols, nb = kp / bl;
	const float *src = x;
	if (L->k != kp) { /* zero-pad to whole blocks */
		memcpy(pad, x, L->k * sizeof(float));
		memset(pad + L->k, 0, (kp - L->k) * sizeof(float));
		src = pad;
	}
	const float S = 1.0f / L->act_scale;
	for (uint32_t b = 0; b < nb; b++) {
		const float *v = src + b * bl;
		float32x4_t mx = vdupq_n_f32(0.0f);
		for (uint32_t i = 0; i < bl; i += 4) { /* a > amax ? a : amax, as the reference: NaN skipped */
			float32x4_t a = vabsq_f32(vld1q_f32(v + i));
			mx = vbslq_f32(vcgtq_f32(a, mx), a, mx);
		}
		float inv;
		uint8_t code;
		xs[b] = op_fp4_block_scale(vmaxvq_f32(mx), L->w.format, S, L->mx_mode, &code, &inv);
		for (uint32_t i = 0; i < bl; i += 16) {
			int32x4_t d[4];
			for (int j = 0; j < 4; j++) {
				float32x4_t y = vmulq_n_f32(vld1q_f32(v + i + 4 * j), inv);
				int32x4_t m = doubled_mag(vabsq_f32(y));
				d[j] = vbslq_s32(vcltq_f32(y, vdupq_n_f32(0.0f)), vnegq_s32(m), m); /* negate where y < 0 */
			}
			int16x8_t lo = vcombine_s16(vmovn_s32(d[0]), vmovn_s32(d[1]));
			int16x8_t hi = vcombine_s16(vmovn_s32(d[2]), vmovn_s32(d[3]));
			vst1q_s8(q2 + b * bl + i, vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
		}
	}
}

static int gemm_w4a4(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl;
	int8_t *q2 = malloc(kp);
	float *xs = malloc(nb * sizeof(float)), *pad = malloc(kp * sizeof(float));
	if (!q2 || !xs || !pad) {
		free(q2), free(xs), free(pad);
		return -ENOMEM;
	}
	float alpha = (0.25f * (L->w.format == OP_FP4_NVFP4 ? L->act_scale : 1.0f)) * L->w.tensor_scale;
	for (uint32_t m = 0; m < M; m++) {
		op_fp4_quantize_row_neon(L, X + (size_t)m * ldx, q2, xs, pad);
		for (uint32_t n = 0; n < L->n; n++) {
			const int8_t *w = L->w2 + (size_t)n * kp;
			const float *sc = L->wscale + (size_t)n * nb;
			float acc = 0;
			for (uint32_t b = 0; b < nb; b++)
				acc = fmaf((float)block_dot(q2 + b * bl, w + b * bl, bl), xs[b] * sc[b], acc);
			Y[(size_t)m * ldy + n] = relu_if(fmaf(acc, alpha, L->bias[n]), L->relu);
		}
	}
	free(q2), free(xs), free(pad);
	return 0;
}

/* Up to eight rows × eight outputs (two 4-lane halves), every lane its own sequential chain
 * acc = fma(x_k, w_k, acc): sixteen independent chains hide the FMA latency. */
static inline __attribute__((always_inline)) void w4a16_tile(const op_fp4_linear *L, const float *X, size_t ldx,
							       uint32_t g, uint32_t h, const int R, float *Y, size_t ldy)
{
	const uint32_t kp = L->w.cols, kk = L->k;
	const float *w = L->g16w + (size_t)g * kp * 16 + h * 8;
	float32x4_t a0[8], a1[8];
#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
		a0[r] = a1[r] = vdupq_n_f32(0.0f);
	for (uint32_t k = 0; k < kk; k++) {
		const float32x4_t wa = vld1q_f32(w + (size_t)k * 16), wb = vld1q_f32(w + (size_t)k * 16 + 4);
#pragma GCC unroll 8
		for (int r = 0; r < R; r++) {
			const float xv = X[(size_t)r * ldx + k];
			a0[r] = vfmaq_n_f32(a0[r], wa, xv);
			a1[r] = vfmaq_n_f32(a1[r], wb, xv);
		}
	}
	const uint32_t n0 = g * 16 + h * 8, nn = L->n - n0 < 8 ? L->n - n0 : 8;
	const float32x4_t g4 = vdupq_n_f32(L->w.tensor_scale);
#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
		op_neon_out8(L, a0[r], a1[r], g4, n0, nn, Y + (size_t)r * ldy + n0);
}

static int gemm_w4a16(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	if (!L->g16w || !L->g16b) /* not laid out (no memory at load): the reference's loop */
		return op_fp4_gemm_rung(OP_RUNG_SCALAR, L, OP_W4A16, X, ldx, M, Y, ldy);
	for (uint32_t m0 = 0; m0 < M;) {
		const uint32_t left = M - m0;
		const int R = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
		for (uint32_t n0 = 0; n0 < L->n; n0 += 8) {
			const float *x = X + (size_t)m0 * ldx;
			float *y = Y + (size_t)m0 * ldy;
			switch (R) {
			case 8: w4a16_tile(L, x, ldx, n0 / 16, n0 % 16 / 8, 8, y, ldy); break;
			case 4: w4a16_tile(L, x, ldx, n0 / 16, n0 % 16 / 8, 4, y, ldy); break;
			case 2: w4a16_tile(L, x, ldx, n0 / 16, n0 % 16 / 8, 2, y, ldy); break;
			default: w4a16_tile(L, x, ldx, n0 / 16, n0 % 16 / 8, 1, y, ldy); break;
			}
		}
		m0 += (uint32_t)R;
	}
	return 0;
}

int op_fp4_gemm_neon(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	return mode == OP_W4A4 ? gemm_w4a4(L, X, ldx, M, Y, ldy) : gemm_w4a16(L, X, ldx, M, Y, ldy);
}

/* ---- GEMV: 32 weights per step, FP32 products ------------------------------------------ */
/*
 * An E2M1 value's FP32 bits have zero low halves, so a code becomes its weight by two table
 * lookups (vqtbl1q_u8: the top byte and the one below it), a byte interleave and a widening shift
 * by 16: 16 weights from 16 codes in eight instructions, no scalar work per weight. A step is 16
 * bytes of codes, 32 elements: the low nibbles (even elements) and the high nibbles (odd ones)
 * give four vectors each; the activations are laid out once per call in that order (vld2q_f32
 * splits them). A block's products are summed in one chain, then scaled once (NVFP4: two blocks
 * per step, MXFP4: one). Sums in another order than the reference: equal to rounding.
 */
#define GV_ROWS 4 /* rows of X per pass over the weights */

static const uint8_t e2m1_top[16] = {0x00, 0x3f, 0x3f, 0x3f, 0x40, 0x40, 0x40, 0x40,
				     0x80, 0xbf, 0xbf, 0xbf, 0xc0, 0xc0, 0xc0, 0xc0};
static const uint8_t e2m1_next[16] = {0x00, 0x00, 0x80, 0xc0, 0x00, 0x40, 0x80, 0xc0,
				      0x00, 0x00, 0x80, 0xc0, 0x00, 0x40, 0x80, 0xc0};

/* 16 codes (one per byte, 0 … 15) → their 16 E2M1 values, in order, as four vectors */
static inline __attribute__((always_inline)) void e2m1_decode16(uint8x16_t idx, uint8x16_t top, uint8x16_t next,
								  float32x4_t w[4])
{
	const uint8x16_t hi = vqtbl1q_u8(top, idx), lo = vqtbl1q_u8(next, idx);
	const uint16x8_t a = vreinterpretq_u16_u8(vzip1q_u8(lo, hi)), b = vreinterpretq_u16_u8(vzip2q_u8(lo, hi));
	w[0] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(a), 16));
	w[1] = vreinterpretq_f32_u32(vshll_high_n_u16(a, 16));
	w[2] = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(b), 16));
	w[3] = vreinterpretq_f32_u32(vshll_high_n_u16(b, 16));
}

/* A block scale's value: the code shifted into a float's bits (E4M3 · 2^-120, subnormals too;
 * E8M0 exactly), the rest (NaN codes, E8M0 0) by the reference's conversion. */
static inline float gemv_scale(int nv, uint8_t code)
{
	uint32_t bits = (uint32_t)code << (nv ? 20 : 23);
	float f;
	memcpy(&f, &bits, sizeof f);
	if (nv)
		return code < 0x7f ? f * 0x1p120f : op_fp4_scale_value(OP_FP4_NVFP4, code);
	return code != 0 && code != 0xff ? f : op_fp4_scale_value(OP_FP4_MXFP4, code);
}

/* One output for MM rows of X: steps of 32 weights, then (NVFP4, K % 32 = 16) one block of 16
 * decoded by the table. xp: the laid-out activations of the first row, xstride apart. */
static inline __attribute__((always_inline)) void gemv_row_neon(const uint8_t *codes, const uint8_t *sc, const int nv,
								  uint32_t K, const float *xp, size_t xstride, float *out,
								  const int MM)
{
	const uint8x16_t top = vld1q_u8(e2m1_top), next = vld1q_u8(e2m1_next), lo4 = vdupq_n_u8(0x0f);
	const uint32_t steps = K / 32;
	float32x4_t acc[GV_ROWS];
#pragma GCC unroll 4
	for (int m = 0; m < MM; m++)
		acc[m] = vdupq_n_f32(0.0f);
	for (uint32_t G = 0; G < steps; G++) {
		const uint8x16_t c = vld1q_u8(codes + (size_t)G * 16);
		float32x4_t w[8]; /* w[0..3]: elements 0, 2, … 30; w[4..7]: 1, 3, … 31 */
		e2m1_decode16(vandq_u8(c, lo4), top, next, w);
		e2m1_decode16(vshrq_n_u8(c, 4), top, next, w + 4);
		/* vectors 0, 1, 4, 5 hold elements 0 … 15; 2, 3, 6, 7 hold 16 … 31 */
		const float s0 = gemv_scale(nv, sc[nv ? 2 * G : G]), s1 = nv ? gemv_scale(nv, sc[2 * G + 1]) : s0;
#pragma GCC unroll 4
		for (int m = 0; m < MM; m++) {
			const float *x = xp + (size_t)m * xstride + (size_t)G * 32;
			float32x4_t p = vmulq_f32(w[0], vld1q_f32(x));
			p = vfmaq_f32(p, w[1], vld1q_f32(x + 4));
			p = vfmaq_f32(p, w[4], vld1q_f32(x + 16));
			p = vfmaq_f32(p, w[5], vld1q_f32(x + 20));
			float32x4_t q = vmulq_f32(w[2], vld1q_f32(x + 8));
			q = vfmaq_f32(q, w[3], vld1q_f32(x + 12));
			q = vfmaq_f32(q, w[6], vld1q_f32(x + 24));
			q = vfmaq_f32(q, w[7], vld1q_f32(x + 28));
			if (nv) {
				acc[m] = vfmaq_n_f32(acc[m], p, s0);
				acc[m] = vfmaq_n_f32(acc[m], q, s1);
			} else {
				acc[m] = vfmaq_n_f32(acc[m], vaddq_f32(p, q), s0);
			}
		}
	}
	float tail[GV_ROWS] = {0};
	if (K % 32) { /* one NVFP4 block of 16, elements in order */
		const float s = gemv_scale(nv, sc[K / 16 - 1]);
#pragma GCC unroll 4
		for (int m = 0; m < MM; m++) {
			const float *x = xp + (size_t)m * xstride + (size_t)steps * 32;
			float t = 0;
			for (uint32_t i = 0; i < 8; i++) {
				const uint8_t b = codes[(size_t)steps * 16 + i];
				t = fmaf(op_e2m1_to_float(b & 15), x[2 * i], t);
				t = fmaf(op_e2m1_to_float(b >> 4), x[2 * i + 1], t);
			}
			tail[m] = t * s;
		}
	}
#pragma GCC unroll 4
	for (int m = 0; m < MM; m++)
		out[m] = vaddvq_f32(acc[m]) + tail[m];
}

int op_fp4_gemv_neon(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		     float *Y, uint32_t n0, uint32_t n1)
{
	const uint32_t K = W->cols, bl = op_fp4_block(W->format), nb = K / bl, steps = K / 32;
	const int nv = W->format == OP_FP4_NVFP4;
	float *xp = malloc((size_t)M * K * sizeof(float)), gx = 1.0f;
	if (!xp)
		return -ENOMEM;
	if (mode == OP_W4A4) { /* activations replaced by their FP4 values, as in the AVX2 rung */
		op_fp4_linear shape = {.w = *W, .k = K, .mx_mode = mx_mode, .act_scale = act_scale > 0 ? act_scale : 1.0f};
		int8_t *q2 = malloc(K);
		float *xs = malloc(nb * sizeof(float));
		if (!q2 || !xs) {
			free(q2), free(xs), free(xp);
			return -ENOMEM;
		}
		for (uint32_t m = 0; m < M; m++) {
			/* no padding to fill (k = cols): no pad buffer */
			op_fp4_quantize_row_neon(&shape, X + (size_t)m * K, q2, xs, NULL);
			for (uint32_t k = 0; k < K; k++)
				xp[(size_t)m * K + k] = (float)q2[k] * 0.5f * xs[k / bl];
		}
		free(q2), free(xs);
		if (nv)
			gx = shape.act_scale;
	} else {
		memcpy(xp, X, (size_t)M * K * sizeof(float));
	}
	/* each step's 32 activations: the even elements, then the odd ones (the tail stays in order) */
	for (uint32_t m = 0; m < M; m++)
		for (uint32_t G = 0; G < steps; G++) {
			float *x = xp + (size_t)m * K + (size_t)G * 32;
			float32x4x2_t v[4];
			for (int i = 0; i < 4; i++)
				v[i] = vld2q_f32(x + 8 * i);
			for (int i = 0; i < 4; i++) {
				vst1q_f32(x + 4 * i, v[i].val[0]);
				vst1q_f32(x + 16 + 4 * i, v[i].val[1]);
			}
		}
	const float g = gx * W->tensor_scale;
	float out[GV_ROWS];
	for (uint32_t m0 = 0; m0 < M; m0 += GV_ROWS) {
		const uint32_t mm = M - m0 < GV_ROWS ? M - m0 : GV_ROWS;
		for (uint32_t n = n0; n < n1; n++) {
			const uint8_t *codes = W->codes + (size_t)n * K / 2, *sc = W->scales + (size_t)n * nb;
			const float *x = xp + (size_t)m0 * K;
			switch (mm) {
			case 4: gemv_row_neon(codes, sc, nv, K, x, K, out, 4); break;
			case 3: gemv_row_neon(codes, sc, nv, K, x, K, out, 3); break;
			case 2: gemv_row_neon(codes, sc, nv, K, x, K, out, 2); break;
			default: gemv_row_neon(codes, sc, nv, K, x, K, out, 1); break;
			}
			for (uint32_t m = 0; m < mm; m++)
				Y[(size_t)(m0 + m) * W->rows + n] = out[m] * g;
		}
	}
	free(xp);
	return 0;
}

void op_pool_neon(const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events, float *out,
		  size_t ldo)
{
	uint32_t cv = C / 4 * 4; /* channels done four at a time; the rest by the reference */
	for (uint32_t e = 0; e < n_events; e++) {
		float *o = out + (size_t)e * ldo;
		uint32_t lo = off[e], hi = off[e + 1];
		if (hi == lo)
			continue;
		float32x4_t nf = vdupq_n_f32((float)(hi - lo));
		for (uint32_t c = 0; c < cv; c += 4) {
			float32x4_t sum = vdupq_n_f32(0), mx = vld1q_f32(H + (size_t)lo * ldh + c);
			for (uint32_t r = lo; r < hi; r++) {
				float32x4_t v = vld1q_f32(H + (size_t)r * ldh + c);
				sum = vaddq_f32(sum, v);
				mx = vbslq_f32(vcgtq_f32(v, mx), v, mx);
			}
			vst1q_f32(o + c, vdivq_f32(sum, nf));
			vst1q_f32(o + C + c, mx);
		}
	}
	for (uint32_t e = 0; e < n_events; e++)
		op_pool_channels(H, ldh, C, off[e + 1] == off[e] ? 0 : cv, off + e, 1, out + (size_t)e * ldo, ldo);
}
#endif
