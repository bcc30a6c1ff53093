/*
 * fp4_gemm_neon.h — what the two NEON rungs (fp4_gemm_neon.c, fp4_gemm_neondot.c) share.
 */
#ifndef OP_KERNELS_FP4_GEMM_NEON_H
#define OP_KERNELS_FP4_GEMM_NEON_H
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>

#include "kernels/fp4_gemm.h"

/* Eight outputs of one row, n0 … n0+7 (nn of them real): y = fma(acc, scale, bias) as the
 * reference, ReLU when the layer has it (!(y > 0) → 0, so NaN → 0), stored without touching
 * the outputs past nn. */
static inline void op_neon_out8(const op_fp4_linear *L, float32x4_t acc0, float32x4_t acc1, float32x4_t scale,
				uint32_t n0, uint32_t nn, float *yr)
{
	const float32x4_t zero = vdupq_n_f32(0.0f);
	float32x4_t y0 = vfmaq_f32(vld1q_f32(L->g16b + n0), acc0, scale);
	float32x4_t y1 = vfmaq_f32(vld1q_f32(L->g16b + n0 + 4), acc1, scale);
	if (L->relu)
		y0 = vbslq_f32(vcgtq_f32(y0, zero), y0, zero), y1 = vbslq_f32(vcgtq_f32(y1, zero), y1, zero);
	if (nn == 8) {
		vst1q_f32(yr, y0), vst1q_f32(yr + 4, y1);
	} else {
		float o[8];
		vst1q_f32(o, y0), vst1q_f32(o + 4, y1);
		memcpy(yr, o, nn * sizeof(float));
	}
}
#endif
#endif
