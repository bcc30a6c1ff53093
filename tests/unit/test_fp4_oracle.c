/*
 * test_fp4_oracle.c — our E2M1 / E4M3 / E8M0 conversions against NVIDIA's own host code in
 * cuda_fp4.h and cuda_fp8.h (compiled here as plain C), on every float whose low 12 bits are
 * one of a few patterns (so every exponent, every tie point of every format and their
 * neighbours), plus millions of random bit patterns, infinities and NaNs.
 * Built only when the CUDA headers are installed (tests/kernels.cmake).
 */
#include <cuda_fp4.h>
#include <cuda_fp8.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/fp4.h"

static uint64_t mismatches[6];
static uint32_t first_bad[6];

static void one(uint32_t u)
{
	float x = op_bits_f32(u);
	uint8_t want, got;

	want = (uint8_t)__nv_cvt_float_to_fp4(x, __NV_E2M1, cudaRoundNearest);
	got = op_e2m1_from_float(x);
	if (want != got && !mismatches[0]++)
		first_bad[0] = u;
	want = (uint8_t)__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
	got = op_e4m3_from_float(x);
	if (want != got && !mismatches[1]++)
		first_bad[1] = u;
	const int rm[2] = {cudaRoundZero, cudaRoundPosInf};
	const int sat[2] = {__NV_NOSAT, __NV_SATFINITE};
	for (int r = 0; r < 2; r++)
		for (int s = 0; s < 2; s++) {
			want = (uint8_t)__nv_cvt_float_to_e8m0(x, (__nv_saturation_t)sat[s],
							       (enum cudaRoundMode)rm[r]);
			got = op_e8m0_from_float(x, r ? OP_E8M0_RP : OP_E8M0_RZ, s);
			if (want != got && !mismatches[2 + r * 2 + s]++)
				first_bad[2 + r * 2 + s] = u;
		}
}

int main(void)
{
	static const uint32_t low[] = {0x000, 0x001, 0x3ff, 0x400, 0x401, 0x7ff, 0x800, 0x801, 0xbff, 0xc00, 0xc01, 0xfff};
	uint64_t n = 0;
	for (uint64_t hi = 0; hi < (1u << 20); hi++)
		for (size_t l = 0; l < sizeof(low) / sizeof(low[0]); l++, n++)
			one((uint32_t)(hi << 12) | low[l]);
	uint64_t s = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 4000000; i++, n++) {
		s ^= s << 13, s ^= s >> 7, s ^= s << 17;
		one((uint32_t)s);
	}
	/* every E2M1 tie point and E4M3 midpoint, and one ulp either side */
	for (int c = 0; c < 256; c++) {
		float a = op_e4m3_to_float((uint8_t)c), b = op_e4m3_to_float((uint8_t)(c + 1));
		float mid = (a + b) / 2;
		for (int d = -2; d <= 2; d++, n++)
			one(op_f32_bits(mid) + (uint32_t)d);
	}
	static const float ties[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 7.0f};
	for (size_t i = 0; i < sizeof(ties) / sizeof(ties[0]); i++)
		for (int d = -2; d <= 2; d++, n += 2) {
			one(op_f32_bits(ties[i]) + (uint32_t)d);
			one(op_f32_bits(-ties[i]) + (uint32_t)d);
		}
	fprintf(stderr, "compared %llu inputs\n", (unsigned long long)n);
	static const char *what[] = {"e2m1 rn", "e4m3 satfinite", "e8m0 rz", "e8m0 rz satfinite",
				     "e8m0 rp", "e8m0 rp satfinite"};
	for (int k = 0; k < 6; k++) {
		if (mismatches[k])
			fprintf(stderr, "%s: %llu mismatches, first at bits 0x%08x\n", what[k],
				(unsigned long long)mismatches[k], first_bad[k]);
		CHECK_EQ_U64(mismatches[k], 0);
	}
	/* decoding: every E4M3 code re-encodes to itself (NaN and −0 aside) */
	for (int c = 0; c < 256; c++) {
		if ((c & 0x7f) == 0x7f)
			continue;
		CHECK_EQ_U64(op_e4m3_from_float(op_e4m3_to_float((uint8_t)c)), c);
		CHECK_EQ_U64(__nv_cvt_float_to_fp8(op_e4m3_to_float((uint8_t)c), __NV_SATFINITE, __NV_E4M3), c);
	}
	for (int c = 0; c < 16; c++)
		CHECK_EQ_U64(__nv_cvt_float_to_fp4(op_e2m1_to_float((uint8_t)c), __NV_E2M1, cudaRoundNearest), c);
	for (int e = 1; e < 255; e++)
		CHECK_EQ_U64(__nv_cvt_float_to_e8m0(op_e8m0_to_float((uint8_t)e), __NV_SATFINITE, cudaRoundZero), e);
	return check_finish("test_fp4_oracle");
}
