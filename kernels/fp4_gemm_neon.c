/*
 * fp4_gemm_neon.c — the NEON rung (aarch64: GB10's Cortex-X925/A725 cores). Reproduces the
 * reference arithmetic of fp4_gemm.h bit for bit for GEMM and pooling, with baseline ARMv8.0
 * NEON (no dot-product extension needed):
 * W4A4: per row and block, the exact integer sum of doubled codes with vmull_s8 + pairwise
 *       adds, then the reference's FP32 FMA chain; four outputs at a time for parallel chains.
 * W4A16: four outputs per vector lane set — their weights transposed into a k-major panel once
 *       per call — so each lane runs the reference's sequential FMA chain over k.
 * GEMV: weights decoded block by block through the E2M1 table; matches to rounding.
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fp4_gemm.h"

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

static int gemm_w4a4(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl;
	int8_t *q2 = malloc(kp);
	float *xs = malloc(nb * sizeof(float));
	if (!q2 || !xs) {
		free(q2), free(xs);
		return -ENOMEM;
	}
	float alpha = (0.25f * (L->w.format == OP_FP4_NVFP4 ? L->act_scale : 1.0f)) * L->w.tensor_scale;
	for (uint32_t m = 0; m < M; m++) {
		op_fp4_quantize_row(L, X + (size_t)m * ldx, q2, xs);
		for (uint32_t n = 0; n < L->n; n++) {
			const int8_t *w = L->w2 + (size_t)n * kp;
			const float *sc = L->wscale + (size_t)n * nb;
			float acc = 0;
			for (uint32_t b = 0; b < nb; b++)
				acc = fmaf((float)block_dot(q2 + b * bl, w + b * bl, bl), xs[b] * sc[b], acc);
			Y[(size_t)m * ldy + n] = relu_if(fmaf(acc, alpha, L->bias[n]), L->relu);
		}
	}
	free(q2), free(xs);
	return 0;
}

static int gemm_w4a16(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	uint32_t kp = L->w.cols, K = L->k;
	float *panel = malloc((size_t)K * 4 * sizeof(float));
	if (!panel)
		return -ENOMEM;
	for (uint32_t n = 0; n < L->n; n += 4) {
		uint32_t nn = L->n - n < 4 ? L->n - n : 4;
		for (uint32_t k = 0; k < K; k++)
			for (uint32_t i = 0; i < 4; i++)
				panel[k * 4 + i] = i < nn ? L->wdec[(size_t)(n + i) * kp + k] : 0.0f;
		float bias[4] = {0, 0, 0, 0};
		for (uint32_t i = 0; i < nn; i++)
			bias[i] = L->bias[n + i];
		float32x4_t vb = vld1q_f32(bias), g = vdupq_n_f32(L->w.tensor_scale);
		for (uint32_t m = 0; m < M; m++) {
			const float *x = X + (size_t)m * ldx;
			float32x4_t acc = vdupq_n_f32(0);
			for (uint32_t k = 0; k < K; k++)
				acc = vfmaq_f32(acc, vdupq_n_f32(x[k]), vld1q_f32(panel + k * 4));
			float out[4];
			vst1q_f32(out, vfmaq_f32(vb, acc, g));
			for (uint32_t i = 0; i < nn; i++)
				Y[(size_t)m * ldy + n + i] = relu_if(out[i], L->relu);
		}
	}
	free(panel);
	return 0;
}

int op_fp4_gemm_neon(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	return mode == OP_W4A4 ? gemm_w4a4(L, X, ldx, M, Y, ldy) : gemm_w4a16(L, X, ldx, M, Y, ldy);
}

int op_fp4_gemv_neon(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		     float *Y, uint32_t n0, uint32_t n1)
{
	uint32_t K = W->cols, bl = op_fp4_block(W->format), nb = K / bl;
	float *xq = malloc((size_t)M * K * sizeof(float)), gx = 1.0f;
	if (!xq)
		return -ENOMEM;
	if (mode == OP_W4A4) { /* activations replaced by their FP4 values, as in the AVX2 rung */
		op_fp4_linear shape = {.w = *W, .k = K, .mx_mode = mx_mode, .act_scale = act_scale > 0 ? act_scale : 1.0f};
		int8_t *q2 = malloc(K);
		float *xs = malloc(nb * sizeof(float));
		if (!q2 || !xs) {
			free(q2), free(xs), free(xq);
			return -ENOMEM;
		}
		for (uint32_t m = 0; m < M; m++) {
			op_fp4_quantize_row(&shape, X + (size_t)m * K, q2, xs);
			for (uint32_t k = 0; k < K; k++)
				xq[(size_t)m * K + k] = (float)q2[k] * 0.5f * xs[k / bl];
		}
		free(q2), free(xs);
		if (W->format == OP_FP4_NVFP4)
			gx = shape.act_scale;
	} else {
		memcpy(xq, X, (size_t)M * K * sizeof(float));
	}
	static const float lut[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
	float wb[32];
	for (uint32_t n = n0; n < n1; n++) {
		const uint8_t *codes = W->codes + (size_t)n * K / 2;
		float32x4_t acc[16];
		for (uint32_t m = 0; m < M && m < 16; m++)
			acc[m] = vdupq_n_f32(0);
		for (uint32_t b = 0; b < nb; b++) {
			float s = op_fp4_scale_value(W->format, W->scales[(size_t)n * nb + b]);
			for (uint32_t i = 0; i < bl; i += 2) {
				uint8_t c = codes[(b * bl + i) / 2];
				wb[i] = lut[c & 15] * s, wb[i + 1] = lut[c >> 4] * s;
			}
			for (uint32_t m = 0; m < M && m < 16; m++)
				for (uint32_t i = 0; i < bl; i += 4)
					acc[m] = vfmaq_f32(acc[m], vld1q_f32(xq + (size_t)m * K + b * bl + i), vld1q_f32(wb + i));
		}
		for (uint32_t m = 0; m < M && m < 16; m++)
			Y[(size_t)m * W->rows + n] = vaddvq_f32(acc[m]) * gx * W->tensor_scale;
	}
	free(xq);
	if (M > 16) /* rows beyond 16 in slices */
		return op_fp4_gemv_neon(W, mode, act_scale, mx_mode, X + (size_t)16 * K, M - 16, Y + (size_t)16 * W->rows, n0, n1);
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
