/*
 * fp4_gemm_neondot.c — the NEON dot-product rung (aarch64 with the ARMv8.2 dot-product
 * instructions, which GB10's Cortex-X925/A725 cores have; compiled with
 * -march=armv8.2-a+dotprod and chosen only when the kernel reports asimddp). W4A4 GEMM here,
 * bit-exact with the reference; everything else is the NEON rung's.
 *
 * W4A4: lanes are outputs, as in the AVX-512 rung, and the weights are the same layout
 * (op_fp4_linear.g16q: for each group of 16 outputs and k-quad, 16 words of four doubled codes),
 * read as four 16-byte vectors of four outputs each. The activations are quantized per row to
 * doubled signed codes; one SDOT by element then adds, for four outputs, the four exact products
 * of one row and one quad (codes and doubled weights are both signed, so no offset to take
 * back). A block's int32 sum becomes FP32 once: acc = fma((float)Σ, sx·sw, acc) in block order.
 * Four rows × eight outputs at a time: 8 int32 and 8 FP32 accumulators.
 */
#if defined(__aarch64__)
#include <arm_neon.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fp4_gemm.h"
#include "kernels/fp4_gemm_neon.h"

#define DR 4 /* rows per pass */

static int gemm_w4a4(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	if (!L->g16q) /* not laid out (allocation failed at load) */
		return op_fp4_gemm_neon(L, OP_W4A4, X, ldx, M, Y, ldy);
	const uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl, nq = kp / 4, quads = bl / 4;
	const uint32_t ngroups = (L->n + 15) / 16;
	int8_t *q2 = malloc((size_t)DR * kp);
	float *xs = malloc((size_t)DR * nb * sizeof(float)), *pad = malloc(kp * sizeof(float));
	if (!q2 || !xs || !pad) {
		free(q2), free(xs), free(pad);
		return -ENOMEM;
	}
	const float alpha = (0.25f * (L->w.format == OP_FP4_NVFP4 ? L->act_scale : 1.0f)) * L->w.tensor_scale;
	const float32x4_t va = vdupq_n_f32(alpha), zero = vdupq_n_f32(0.0f);
	for (uint32_t m0 = 0; m0 < M; m0 += DR) {
		const uint32_t rows = M - m0 < DR ? M - m0 : DR;
		for (uint32_t r = 0; r < DR; r++) {
			if (r < rows) {
				op_fp4_quantize_row_neon(L, X + (size_t)(m0 + r) * ldx, q2 + (size_t)r * kp, xs + (size_t)r * nb, pad);
			} else { /* rows past M: zeros, never stored */
				memset(q2 + (size_t)r * kp, 0, kp);
				memset(xs + (size_t)r * nb, 0, nb * sizeof(float));
			}
		}
		for (uint32_t g = 0; g < ngroups; g++)
			for (uint32_t h = 0; h < 2 && g * 16 + h * 8 < L->n; h++) { /* outputs g·16 + 8h … +7 */
				float32x4_t f[DR][2];
#pragma GCC unroll 4
				for (int r = 0; r < DR; r++)
					f[r][0] = f[r][1] = zero;
				for (uint32_t b = 0; b < nb; b++) {
					int32x4_t s[DR][2];
#pragma GCC unroll 4
					for (int r = 0; r < DR; r++)
						s[r][0] = s[r][1] = vdupq_n_s32(0);
					for (uint32_t q4 = 0; q4 < quads; q4 += 4) { /* 16 codes of a row: four quads */
						int8x16_t x[DR];
#pragma GCC unroll 4
						for (int r = 0; r < DR; r++)
							x[r] = vld1q_s8(q2 + (size_t)r * kp + (size_t)(b * quads + q4) * 4);
#define OP_SDOT(qq)                                                                                               \
	do {                                                                                                    \
		const int8_t *wp = (const int8_t *)(L->g16q + ((size_t)g * nq + b * quads + q4 + (qq)) * 16) + h * 32; \
		const int8x16_t wa = vld1q_s8(wp), wb = vld1q_s8(wp + 16);                                       \
		_Pragma("GCC unroll 4") for (int r = 0; r < DR; r++) {                                        \
			s[r][0] = vdotq_laneq_s32(s[r][0], wa, x[r], (qq));                                      \
			s[r][1] = vdotq_laneq_s32(s[r][1], wb, x[r], (qq));                                      \
		}                                                                                               \
	} while (0)
						OP_SDOT(0);
						OP_SDOT(1);
						OP_SDOT(2);
						OP_SDOT(3);
#undef OP_SDOT
					}
					const float *sw = L->g16s + ((size_t)g * nb + b) * 16 + h * 8;
					const float32x4_t sw0 = vld1q_f32(sw), sw1 = vld1q_f32(sw + 4);
#pragma GCC unroll 4
					for (int r = 0; r < DR; r++) { /* once per block: Σ to FP32, times sx·sw */
						const float sx = xs[(size_t)r * nb + b];
						f[r][0] = vfmaq_f32(f[r][0], vcvtq_f32_s32(s[r][0]), vmulq_n_f32(sw0, sx));
						f[r][1] = vfmaq_f32(f[r][1], vcvtq_f32_s32(s[r][1]), vmulq_n_f32(sw1, sx));
					}
				}
				/* y = fma(acc, alpha, bias), ReLU as the reference (NaN → 0) */
				const uint32_t n0 = g * 16 + h * 8, nn = L->n - n0 < 8 ? L->n - n0 : 8;
				for (uint32_t r = 0; r < rows; r++)
					op_neon_out8(L, f[r][0], f[r][1], va, n0, nn, Y + (size_t)(m0 + r) * ldy + n0);
			}
	}
	free(q2), free(xs), free(pad);
	return 0;
}

int op_fp4_gemm_neondot(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y,
			size_t ldy)
{
	return mode == OP_W4A4 ? gemm_w4a4(L, X, ldx, M, Y, ldy) : op_fp4_gemm_neon(L, mode, X, ldx, M, Y, ldy);
}
#endif
