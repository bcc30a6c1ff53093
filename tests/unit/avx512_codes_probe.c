/*
 * avx512_codes_probe.c — compiled with the AVX-512 rung's flags: the rung's own quantizer
 * (kernels/fp4_gemm_avx512.c, included so that its static functions are in reach), run over a
 * range of float bit patterns. Called by test_avx512_codes only on a CPU that has the rung.
 * The rung's entry points are renamed here, so that this copy never stands in for the
 * library's own (the test links op_kernels too).
 */
#define op_fp4_gemm_avx512 op_test_probe_gemm_avx512
#define op_fp4_gemv_avx512 op_test_probe_gemv_avx512
#define op_fp4_w4a4_quantize_avx512 op_test_probe_w4a4_quantize_avx512
#include "kernels/fp4_gemm_avx512.c"

/* Bit patterns lo … hi (inclusive, in steps of `step`, a multiple of 16 when more than one):
 * the rung's doubled codes of y = pattern · 1 against the reference's. Returns the number that
 * differ; the first is written to *first (pattern) and *got / *want. */
uint64_t op_test_avx512_codes(uint64_t lo, uint64_t hi, uint64_t step, uint32_t *first, int *got, int *want)
{
	uint64_t bad = 0;
	const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	for (uint64_t b = lo; b <= hi; b += step * 16) {
		__m512i bits = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)b),
						_mm512_mullo_epi32(lane, _mm512_set1_epi32((int)step)));
		int32_t d[16];
		_mm512_storeu_si512(d, code12(_mm512_castsi512_ps(bits), _mm512_set1_ps(1.0f)));
		for (int i = 0; i < 16; i++) {
			uint32_t u = (uint32_t)(b + (uint64_t)i * step);
			if (b + (uint64_t)i * step > hi)
				break;
			int ref = op_e2m1_doubled(op_e2m1_from_float(op_bits_f32(u)));
			if (d[i] != ref && bad++ == 0)
				*first = u, *got = d[i], *want = ref;
		}
	}
	return bad;
}
