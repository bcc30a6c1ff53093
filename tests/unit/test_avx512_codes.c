/*
 * test_avx512_codes — the AVX-512 rung rounds activations to E2M1 with float tricks (a clamp,
 * a magic-number add whose size follows the exponent, vrangeps); the reference does it by
 * comparisons. This runs the rung's rounding on every float of magnitude 2^-7 to 2^9, of
 * either sign — every tie and every rounding edge (0.25 … 6) with a wide margin, and the
 * saturation above — and on every 101st of all the other bit patterns (subnormals, ±0, ±∞,
 * NaNs, the huge and the tiny), and requires the reference's doubled code for each. All 2^32
 * were checked once (10 s); this keeps the test under a second. Exits 77 (skipped) where the
 * CPU lacks the rung.
 */
#include <stdint.h>

#include "check.h"
#include "kernels/fp4_gemm.h"

uint64_t op_test_avx512_codes(uint64_t lo, uint64_t hi, uint64_t step, uint32_t *first, int *got, int *want);

int main(void)
{
	if (!op_fp4_rung_available(OP_RUNG_AVX512)) {
		fprintf(stderr, "test_avx512_codes: this CPU has no AVX-512 VNNI: skipped\n");
		return 77;
	}
	static const struct {
		uint64_t lo, hi, step;
	} span[] = {
		{0x00000000, 0x3bffffff, 101}, {0x3c000000, 0x43ffffff, 1}, {0x44000000, 0xbbffffff, 101},
		{0xbc000000, 0xc3ffffff, 1},   {0xc4000000, 0xffffffff, 101},
	};
	uint64_t total = 0;
	for (size_t i = 0; i < sizeof span / sizeof span[0]; i++) {
		uint32_t first = 0;
		int got = 0, want = 0;
		uint64_t bad = op_test_avx512_codes(span[i].lo, span[i].hi, span[i].step, &first, &got, &want);
		if (bad)
			fprintf(stderr, "test_avx512_codes: %" PRIu64 " values differ in 0x%08" PRIx64 " … 0x%08" PRIx64
					"; the first, bits 0x%08x (%g): rung %d, reference %d\n",
				bad, span[i].lo, span[i].hi, first, (double)op_bits_f32(first), got, want);
		CHECK_EQ_U64(bad, 0);
		total += (span[i].hi - span[i].lo) / span[i].step + 1;
	}
	/* the exhaustive spans alone are 2 · 2^27 values */
	CHECK(total > (uint64_t)1 << 28);
	return check_finish("test_avx512_codes");
}
