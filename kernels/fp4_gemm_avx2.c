/*
 * fp4_gemm_avx2.c — the AVX2+FMA rung (compiled with -mavx2 -mfma, called only when the CPU
 * has both). Reproduces the reference arithmetic of fp4_gemm.h bit for bit for GEMM and pooling.
 *
 * W4A4 GEMM: activations are quantized eight rows at a time (the eight rows' block maxima meet
 * in one vector, a lane per row), to doubled E2M1 integers offset by +12 to be unsigned, stored
 * so that one 256-bit register holds four consecutive k of each of the 8 rows (a 32-bit lane
 * per row). The kernel takes two such tiles (16 rows) and four outputs: vpmaddubsw against a
 * 32-bit broadcast of a weight row's four codes sums two products per int16 lane; a block's
 * partial sums stay in int16 (|sum| ≤ 4608), start from the precomputed −12·Σw of their half of
 * the quads, and one vpmaddwd at the block's end gives each row's exact block sum in int32. It
 * becomes FP32 once per (row, output, block): the FMA with the block scales follows the
 * reference. Limits of this design on the development CPU: docs/benchmarks.md.
 * W4A16 GEMM: the 16-row tile is transposed so each k gives one FMA per 8 rows; 4 outputs at
 * once share the loads.
 * GEMV: when K is a multiple of 64 both modes stay in integers, 64 weights per step, four rows
 * of X per pass: nibbles → int8 through vpshufb; W4A4 multiplies them by its FP4 activations
 * (vpsignb + vpmaddubsw, one vpmaddwd per 64 products), W4A16 by X carried in 16 bits per block
 * (two vpmaddubsw per 32 products, one vpmaddwd per 64; the error that adds: fp4_gemm.h).
 * Otherwise, and for W4A16 rows with a NaN, an infinity or an extreme block, the weights expand
 * to FP32 (W4A4 activations first replaced by their FP4 values). X is laid out once per call in
 * the order the nibble split produces. GEMV sums in a different order from the reference:
 * equal to rounding (W4A16 in 16 bits: within its bound).
 */
#if defined(__x86_64__)
#include <errno.h>
#include <float.h>
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fp4_gemm.h"

#define TILE 16

static inline __m256 relu_if(__m256 y, int relu)
{
	return relu ? _mm256_max_ps(y, _mm256_setzero_ps()) : y;
}

/*
 * Doubled |E2M1| of a = |v| (already scaled), exactly as op_e2m1_from_float rounds. Doubled,
 * the grid is the integers {0, 1, 2, 3, 4, 6, 8, 12}: a step of 1 below 4, 2 below 8, 4 above,
 * i.e. for t = 2a ≥ 2 a step of half t's power of two, and 1 below 2. Adding and subtracting
 * M = 2^23 · step rounds t to that step, ties to even, in one add and one subtract; M's bits
 * come straight from t's exponent. Saturation at 12 (6 undoubled); NaN and ∞ give 12.
 */
static inline __m256i doubled_mag(__m256 a)
{
	__m256 t = _mm256_min_ps(_mm256_add_ps(a, a), _mm256_set1_ps(16.0f)); /* NaN → 16 */
	__m256i e = _mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x7f800000));
	__m256i mb = _mm256_max_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(0x0b000000)), _mm256_set1_epi32(0x4b000000));
	__m256 m = _mm256_castsi256_ps(mb);
	__m256 r = _mm256_sub_ps(_mm256_add_ps(t, m), m);
	return _mm256_min_epi32(_mm256_cvttps_epi32(r), _mm256_set1_epi32(12));
}

/*
 * Block scales of eight rows at once (one per lane), with op_fp4_quantize_block's arithmetic:
 * NVFP4 s = e4m3_rn((amax·S)/6) — rounding to 3 mantissa bits by integer add-and-mask, the
 * subnormal range by rint(v·512)/512, saturation at 448, NaN kept — and inv = S/s (0 when s
 * is not positive). MXFP4 s = 2^(code−127) with the E8M0 rounding of fp4.h, code clamped to
 * [1, 253], inv = 2^(127−code).
 */
static inline __m256 tile_scales(__m256 amax, int format, int mx_mode, float S, __m256 *inv)
{
	const __m256i one = _mm256_set1_epi32(1);
	if (format == OP_FP4_NVFP4) {
		__m256 vS = _mm256_set1_ps(S);
		__m256 v = _mm256_div_ps(_mm256_mul_ps(amax, vS), _mm256_set1_ps(6.0f));
		__m256i u = _mm256_castps_si256(v);
		__m256i rn = _mm256_and_si256(
			_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7ffff)),
					 _mm256_and_si256(_mm256_srli_epi32(u, 20), one)),
			_mm256_set1_epi32((int)0xfff00000u));
		__m256 norm = _mm256_min_ps(_mm256_set1_ps(448.0f), _mm256_castsi256_ps(rn)); /* NaN stays NaN */
		__m256 sub = _mm256_mul_ps(_mm256_round_ps(_mm256_mul_ps(v, _mm256_set1_ps(512.0f)),
							   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
					   _mm256_set1_ps(1.0f / 512.0f));
		__m256 s = _mm256_blendv_ps(sub, norm, _mm256_cmp_ps(v, _mm256_set1_ps(0x1p-6f), _CMP_GE_OQ));
		*inv = _mm256_and_ps(_mm256_div_ps(vS, s), _mm256_cmp_ps(s, _mm256_setzero_ps(), _CMP_GT_OQ));
		return s;
	}
	__m256i code;
	if (mx_mode == OP_MX_SCALE_CEIL) {
		__m256i a = _mm256_castps_si256(_mm256_div_ps(amax, _mm256_set1_ps(6.0f)));
		__m256i inf = _mm256_set1_epi32(0x7f800000);
		__m256i nan = _mm256_cmpgt_epi32(a, inf);
		__m256i bf = _mm256_srli_epi32(a, 16);
		__m256i lowbits = _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_and_si256(a, _mm256_set1_epi32(0xffff)),
									 _mm256_setzero_si256()),
						     _mm256_cmpgt_epi32(inf, a));
		bf = _mm256_sub_epi32(bf, lowbits); /* +1 where masked (mask is −1) */
		__m256i res = _mm256_and_si256(_mm256_srli_epi32(bf, 7), _mm256_set1_epi32(0xff));
		__m256i up = _mm256_andnot_si256(_mm256_cmpeq_epi32(_mm256_and_si256(bf, _mm256_set1_epi32(0x7f)),
								    _mm256_setzero_si256()),
						 _mm256_and_si256(_mm256_cmpgt_epi32(bf, _mm256_set1_epi32(0x40)),
								  _mm256_cmpgt_epi32(_mm256_set1_epi32(0x7f80), bf)));
		res = _mm256_sub_epi32(res, up);
		__m256i sat = _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(0x7f81), bf),
					       _mm256_cmpeq_epi32(res, _mm256_set1_epi32(0xff)));
		res = _mm256_add_epi32(res, sat); /* 0xff → 0xfe */
		code = _mm256_blendv_epi8(res, _mm256_set1_epi32(0xff), nan);
	} else {
		__m256i a = _mm256_castps_si256(amax);
		__m256i e = _mm256_and_si256(_mm256_srli_epi32(a, 23), _mm256_set1_epi32(0xff));
		__m256i isinf = _mm256_cmpeq_epi32(a, _mm256_set1_epi32(0x7f800000));
		code = _mm256_sub_epi32(_mm256_add_epi32(e, isinf), _mm256_set1_epi32(2)); /* inf: 0xfe − 2 */
	}
	code = _mm256_min_epi32(_mm256_max_epi32(code, one), _mm256_set1_epi32(253));
	*inv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(254), code), 23));
	return _mm256_castsi256_ps(_mm256_slli_epi32(code, 23));
}

/*
 * The maxima of eight vectors, one per lane, in their order: lane j of the result is the
 * largest lane of m[j]. None may be NaN (max returns its second operand for a NaN).
 */
static inline __m256 lane_maxima(const __m256 m[8])
{
	__m256 t01 = _mm256_max_ps(_mm256_unpacklo_ps(m[0], m[1]), _mm256_unpackhi_ps(m[0], m[1]));
	__m256 t23 = _mm256_max_ps(_mm256_unpacklo_ps(m[2], m[3]), _mm256_unpackhi_ps(m[2], m[3]));
	__m256 t45 = _mm256_max_ps(_mm256_unpacklo_ps(m[4], m[5]), _mm256_unpackhi_ps(m[4], m[5]));
	__m256 t67 = _mm256_max_ps(_mm256_unpacklo_ps(m[6], m[7]), _mm256_unpackhi_ps(m[6], m[7]));
	__m256 w03 = _mm256_max_ps(_mm256_shuffle_ps(t01, t23, 0x44), _mm256_shuffle_ps(t01, t23, 0xee));
	__m256 w47 = _mm256_max_ps(_mm256_shuffle_ps(t45, t67, 0x44), _mm256_shuffle_ps(t45, t67, 0xee));
	return _mm256_max_ps(_mm256_permute2f128_ps(w03, w47, 0x20), _mm256_permute2f128_ps(w03, w47, 0x31));
}

/*
 * Eight rows of activations (rowp[j]: kp readable floats, zero beyond k) → the W4A4 tile:
 * xu[quad·8 + j] holds row j's four codes of that k-quad, each doubled and offset by +12, and
 * xs[b·8 + j] its block scale. Every block's scale is computed first (the divisions, long and
 * on one port, then overlap instead of stalling each block's codes), then the codes. The rows
 * are read as they lie (lanes = k): the block maxima of eight rows meet in one vector through
 * a transposing tree of maxima (21 operations a block of eight rows), and the codes of eight
 * rows pack into quads with saturating packs and two lane permutes; a transpose of the floats
 * cost 3 shuffles, a store and a load per vector.
 *
 * dbl: the scale's inverse is doubled once per block, so 2y = x·(2·inv) in one product.
 * Equal to y + y with y = x·inv: scaling by two commutes with rounding wherever the product
 * is a normal number, and where it is not, 2y is far below ½ and rounds to 0 either way; an
 * overflow is an overflow either way. It needs 2·inv finite: always for MXFP4 (inv ≤ 2^126);
 * for NVFP4, inv = S/s ≤ 2^9·S, so the caller passes dbl only for S ≤ 2^100.
 */
static inline __attribute__((always_inline)) void quantize_tile8_body(const op_fp4_linear *L,
								      const float *const rowp[8], uint32_t *xu,
								      float *xs, float *xinv, const int dbl)
{
	const uint32_t bl = op_fp4_block(L->w.format), kp = L->w.cols, nb = kp / bl;
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	const float S = 1.0f / L->act_scale;
	for (uint32_t b = 0; b < nb; b++) {
		__m256 m[8];
#pragma GCC unroll 8
		for (int j = 0; j < 8; j++) {
			__m256 a = _mm256_setzero_ps();
			for (uint32_t g = 0; g < bl; g += 8) /* a NaN is skipped, as in the reference */
				a = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(rowp[j] + b * bl + g), absmask), a);
			m[j] = a;
		}
		__m256 inv, s = tile_scales(lane_maxima(m), L->w.format, L->mx_mode, S, &inv);
		_mm256_store_ps(xs + b * 8, s);
		_mm256_store_ps(xinv + b * 8, dbl ? _mm256_add_ps(inv, inv) : inv);
	}
	/* The codes: doubled signed E2M1 of y = x·inv, as op_e2m1_from_float rounds. doubled_mag's
	 * add-and-subtract works on the signed value when M takes 2y's sign (rounding to even is
	 * symmetric). 2y is clamped to 12 from above first (NaN → +12, as min returns its second
	 * operand); from below the bytes are: everything under −12, −∞ included, rounds or
	 * saturates to −12 or less. Eight rows' codes of eight k: packs_epi32 of two rows, then
	 * packs_epi16 of two pairs, give four rows' first quad in the low 128 bits and their second
	 * in the high; two lane permutes put eight rows' quads together */
	const __m256 twelve = _mm256_set1_ps(12.0f);
	const __m256i expm = _mm256_set1_epi32(0x7f800000), signm = _mm256_set1_epi32((int)0x80000000u);
	const __m256i off = _mm256_set1_epi8(12), zero8 = _mm256_setzero_si256();
	for (uint32_t b = 0; b < nb; b++) {
		for (uint32_t g = 0; g < bl; g += 8) {
			__m256i q[8];
#pragma GCC unroll 8
			for (int j = 0; j < 8; j++) {
				__m256 iv = _mm256_broadcast_ss(xinv + b * 8 + (uint32_t)j);
				__m256 y = _mm256_mul_ps(_mm256_loadu_ps(rowp[j] + b * bl + g), iv);
				__m256 t2 = _mm256_min_ps(dbl ? y : _mm256_add_ps(y, y), twelve);
				__m256i ti = _mm256_castps_si256(t2);
				__m256i mb = _mm256_max_epi32(_mm256_add_epi32(_mm256_and_si256(ti, expm), _mm256_set1_epi32(0x0b000000)),
							      _mm256_set1_epi32(0x4b000000));
				__m256 mm = _mm256_castsi256_ps(_mm256_or_si256(mb, _mm256_and_si256(ti, signm)));
				q[j] = _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_add_ps(t2, mm), mm));
			}
			__m256i lo = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
			__m256i hi = _mm256_packs_epi16(_mm256_packs_epi32(q[4], q[5]), _mm256_packs_epi32(q[6], q[7]));
			lo = _mm256_max_epi8(_mm256_add_epi8(lo, off), zero8); /* −12 and below → 0 */
			hi = _mm256_max_epi8(_mm256_add_epi8(hi, off), zero8);
			__m256i *dst = (__m256i *)(xu + (size_t)(b * bl + g) / 4 * 8);
			_mm256_store_si256(dst, _mm256_permute2x128_si256(lo, hi, 0x20));
			_mm256_store_si256(dst + 1, _mm256_permute2x128_si256(lo, hi, 0x31));
		}
	}
}

static void quantize_tile8(const op_fp4_linear *L, const float *const rowp[8], uint32_t *xu, float *xs, float *xinv)
{
	if (L->w.format == OP_FP4_MXFP4 || 1.0f / L->act_scale <= 0x1p100f)
		quantize_tile8_body(L, rowp, xu, xs, xinv, 1);
	else
		quantize_tile8_body(L, rowp, xu, xs, xinv, 0);
}

#define QT 8 /* rows per quantized tile: one int32 lane each; the kernel takes two tiles */

/* Prefetch rows [r0, r1) of a row-major array (ld floats a row), lines bytes of each. */
static inline void prefetch_rows(const float *base, size_t ld, uint32_t r0, uint32_t r1, uint32_t lines, int write)
{
	for (uint32_t r = r0; r < r1; r++)
		for (uint32_t l = 0; l < lines; l++) {
			if (write)
				__builtin_prefetch(base + r * ld + l * 16, 1, 3);
			else
				__builtin_prefetch(base + r * ld + l * 16, 0, 3);
		}
}

static int gemm_w4a4(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	const uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl, quads = bl / 4;
	const uint32_t ng = (L->n + 3) / 4;
	uint32_t *xu = aligned_alloc(32, (size_t)kp / 4 * QT * 2 * sizeof(uint32_t));
	float *xs = aligned_alloc(32, (size_t)nb * QT * 2 * sizeof(float));
	float *pad = malloc((size_t)kp * QT * 2 * sizeof(float)), *zero = calloc(kp, sizeof(float));
	float *xinv = aligned_alloc(32, (size_t)nb * 8 * sizeof(float));
	/* The weights as the AVX-512 rung lays them out (op_fp4_linear_init), read four outputs at a
	 * time: one pointer per stream where twelve (four outputs' codes, starting values and
	 * scales) had GCC spill and recompute pointers, about 600 instructions an output group at
	 * K = 16 for about 180 of vector work (25-30 % of the time at K = 16, 14-20 % at K = 64) */
	const int32_t *gq = L->g16q, *gp = L->g16p;
	const float *gs = L->g16s;
	int32_t *own_q = NULL, *own_p = NULL;
	float *own_s = NULL;
	float accm[4][16] __attribute__((aligned(32)));
	int rc = -ENOMEM;
	if (!xu || !xs || !pad || !zero || !xinv)
		goto out;
	if (!gq || !gp || !gs) { /* not built at init (no memory then): laid out for this call */
		const uint32_t n16 = (L->n + 15) / 16;
		own_q = aligned_alloc(64, (size_t)n16 * kp / 4 * 16 * sizeof(int32_t));
		own_p = aligned_alloc(64, (size_t)n16 * nb * 16 * sizeof(int32_t));
		own_s = aligned_alloc(64, (size_t)n16 * nb * 16 * sizeof(float));
		if (!own_q || !own_p || !own_s)
			goto out;
		op_fp4_layout_g16(L, own_q, NULL, own_s, NULL, own_p);
		gq = own_q, gp = own_p, gs = own_s;
	}
	float fa = (0.25f * (L->w.format == OP_FP4_NVFP4 ? L->act_scale : 1.0f)) * L->w.tensor_scale;
	const __m256 alpha = _mm256_set1_ps(fa);
	const __m256i ones = _mm256_set1_epi16(1);
	uint32_t *xuA = xu, *xuB = xu + (size_t)kp / 4 * QT;
	float *xsA = xs, *xsB = xs + (size_t)nb * QT;
	/* MXFP4's second sixteen of a block is skipped when it is all padding (K = 16, 144, …):
	 * its codes are zeros in w2 and in wcorr (op_fp4_linear_init), so skipping sums the same */
	const int mx_second = quads == 8 && (L->k - 1) % 32 >= 16;
	const int mx_last_half = quads == 8 && !mx_second;
	/* While a tile is computed, each output group fetches a share of the next tile's rows of X
	 * (quantize_tile8 reads sixteen rows a line at a time and, X beyond the caches at M =
	 * 65,536, waited on them) and of the output rows of the tile after next (written 16 bytes
	 * at a time by four groups, a line missing from the cache stalls the stores: at M = 65,536,
	 * K = 16, N = 64 the kernel had run at a third of its speed on 4,096 rows) */
	const uint32_t rows_per_group = (2 * QT + ng - 1) / ng;
	const uint32_t x_lines = (L->k * 4 + 63) / 64 + 1, y_lines = (L->n * 4 + 63) / 64 + 1;
	/* Y's lines only when Y is well beyond L2: at M = 4,096 (1 MiB of Y at N = 64, in L3) the
	 * fetches cost 5 % at K = 16; at M = 65,536 leaving them out made the call 1.5-1.9× slower */
	const int y_far = (size_t)M * L->n * sizeof(float) > ((size_t)4 << 20);
	for (uint32_t m0 = 0; m0 < M; m0 += 2 * QT) {
		uint32_t rows = M - m0 < 2 * QT ? M - m0 : 2 * QT;
		/* two 8-row tiles: per k-quad, one 32-bit lane per row holding its four codes + 12 */
		const float *rowp[2 * QT];
		for (uint32_t j = 0; j < 2 * QT; j++) {
			if (j >= rows) {
				rowp[j] = zero;
			} else if (L->k == kp) {
				rowp[j] = X + (size_t)(m0 + j) * ldx;
			} else { /* zero-pad to whole blocks */
				float *pr = pad + (size_t)j * kp;
				memcpy(pr, X + (size_t)(m0 + j) * ldx, L->k * sizeof(float));
				memset(pr + L->k, 0, (kp - L->k) * sizeof(float));
				rowp[j] = pr;
			}
		}
		quantize_tile8(L, rowp, xuA, xsA, xinv);
		if (rows > QT)
			quantize_tile8(L, rowp + QT, xuB, xsB, xinv);
		else
			memcpy(xuB, xuA, (size_t)kp / 4 * QT * sizeof(uint32_t)), memcpy(xsB, xsA, (size_t)nb * QT * sizeof(float));
		const uint32_t x_next = M - m0 > 2 * QT ? (M - m0 - 2 * QT < 2 * QT ? M - m0 - 2 * QT : 2 * QT) : 0;
		const uint32_t y_next = y_far && M - m0 > 4 * QT ? (M - m0 - 4 * QT < 2 * QT ? M - m0 - 4 * QT : 2 * QT) : 0;
		/* four outputs × sixteen rows at a time: per k-quad, two x loads and four 32-bit
		 * weight broadcasts feed eight vpmaddubsw; int16 partial sums start from −12·Σw of
		 * their half of the quads and one vpmaddwd per block gives exact int32 block sums. */
		for (uint32_t g = 0; g < ng; g++) {
			const uint32_t n = 4 * g, nn = L->n - n < 4 ? L->n - n : 4;
			const uint32_t pr0 = g * rows_per_group, pr1 = pr0 + rows_per_group;
			if (pr0 < x_next)
				prefetch_rows(X + (size_t)(m0 + 2 * QT) * ldx, ldx, pr0, pr1 < x_next ? pr1 : x_next, x_lines, 0);
			if (pr0 < y_next)
				prefetch_rows(Y + (size_t)(m0 + 4 * QT) * ldy, ldy, pr0, pr1 < y_next ? pr1 : y_next, y_lines, 1);
			/* output group g is outputs 4(g mod 4) … of sixteen-group g/4: its words sit 16 apart */
			const size_t g16 = g / 4, sub = 4 * (g % 4);
			const int32_t *pw = gq + g16 * (kp / 4) * 16 + sub, *pc = gp + g16 * nb * 16 + sub;
			const float *ps = gs + g16 * nb * 16 + sub;
			/* the FP32 sums of the four outputs' sixteen rows, from +0 as the reference's: named
			 * registers (GCC kept an array of them on the stack) */
			__m256 f0a = _mm256_setzero_ps(), f0b = f0a, f1a = f0a, f1b = f0a, f2a = f0a, f2b = f0a, f3a = f0a,
			       f3b = f0a;
			const __m256i *pa = (const __m256i *)xuA, *pb = (const __m256i *)xuB;
			for (uint32_t b = 0; b < nb; b++, pw += 16 * quads, pc += 16, ps += 16, pa += quads, pb += quads) {
				__m256i c0 = _mm256_set1_epi32(pc[0]), c1 = _mm256_set1_epi32(pc[1]);
				__m256i c2 = _mm256_set1_epi32(pc[2]), c3 = _mm256_set1_epi32(pc[3]);
				__m256i s0a = c0, s1a = c1, s2a = c2, s3a = c3, s0b = c0, s1b = c1, s2b = c2, s3b = c3;
#define OP_QUAD(q)                                                                                         \
	do {                                                                                                 \
		__m256i xa = _mm256_load_si256(pa + (q)), xb = _mm256_load_si256(pb + (q)), bw;             \
		bw = _mm256_set1_epi32(pw[16 * (q)]);                                                         \
		s0a = _mm256_add_epi16(s0a, _mm256_maddubs_epi16(xa, bw));                                   \
		s0b = _mm256_add_epi16(s0b, _mm256_maddubs_epi16(xb, bw));                                   \
		bw = _mm256_set1_epi32(pw[16 * (q) + 1]);                                                     \
		s1a = _mm256_add_epi16(s1a, _mm256_maddubs_epi16(xa, bw));                                   \
		s1b = _mm256_add_epi16(s1b, _mm256_maddubs_epi16(xb, bw));                                   \
		bw = _mm256_set1_epi32(pw[16 * (q) + 2]);                                                     \
		s2a = _mm256_add_epi16(s2a, _mm256_maddubs_epi16(xa, bw));                                   \
		s2b = _mm256_add_epi16(s2b, _mm256_maddubs_epi16(xb, bw));                                   \
		bw = _mm256_set1_epi32(pw[16 * (q) + 3]);                                                     \
		s3a = _mm256_add_epi16(s3a, _mm256_maddubs_epi16(xa, bw));                                   \
		s3b = _mm256_add_epi16(s3b, _mm256_maddubs_epi16(xb, bw));                                   \
		__asm__("" : "+x"(s0a), "+x"(s0b), "+x"(s1a), "+x"(s1b), "+x"(s2a), "+x"(s2b), "+x"(s3a), "+x"(s3b)); \
	} while (0)
				/* quads is 4 (NVFP4) or 8 (MXFP4), unrolled. The empty asm pins the eight int16
				 * accumulators: without it GCC reassociates the integer sums into a tree of
				 * temporaries and spills them, turning the loop into store-to-load chains
				 * (measured: 10-15 % slower). */
				OP_QUAD(0);
				OP_QUAD(1);
				OP_QUAD(2);
				OP_QUAD(3);
				if (mx_second || (mx_last_half && b + 1 < nb)) {
					OP_QUAD(4);
					OP_QUAD(5);
					OP_QUAD(6);
					OP_QUAD(7);
				}
#undef OP_QUAD
				const __m256 xsa = _mm256_load_ps(xsA + b * QT), xsb = _mm256_load_ps(xsB + b * QT);
#define OP_ACC(SA, SB, FA, FB, I)                                                                              \
	do {                                                                                                      \
		__m256 sw_ = _mm256_broadcast_ss(ps + (I));                                                      \
		__m256 pa_ = _mm256_cvtepi32_ps(_mm256_madd_epi16(SA, ones)), sa_ = _mm256_mul_ps(xsa, sw_);      \
		__m256 pb_ = _mm256_cvtepi32_ps(_mm256_madd_epi16(SB, ones)), sb_ = _mm256_mul_ps(xsb, sw_);      \
		FA = _mm256_fmadd_ps(pa_, sa_, FA);                                                               \
		FB = _mm256_fmadd_ps(pb_, sb_, FB);                                                               \
	} while (0)
				OP_ACC(s0a, s0b, f0a, f0b, 0);
				OP_ACC(s1a, s1b, f1a, f1b, 1);
				OP_ACC(s2a, s2b, f2a, f2b, 2);
				OP_ACC(s3a, s3b, f3a, f3b, 3);
#undef OP_ACC
			}
			/* 4 outputs × 16 rows → 16 rows × 4 outputs. A whole tile (the common case) goes
			 * straight through: eight rows at a time, two 4×4 transposes in the halves of
			 * 256-bit registers, no branches (at K = 16 the per-row loop below took half of the
			 * kernel's time) */
			if (rows == 2 * QT && nn == 4) {
				const __m256 b0 = _mm256_set1_ps(L->bias[n]), b1 = _mm256_set1_ps(L->bias[n + 1]);
				const __m256 b2 = _mm256_set1_ps(L->bias[n + 2]), b3 = _mm256_set1_ps(L->bias[n + 3]);
				const __m256 z = _mm256_setzero_ps();
				for (int h = 0; h < 2; h++) {
					__m256 a0 = _mm256_fmadd_ps(h ? f0b : f0a, alpha, b0);
					__m256 a1 = _mm256_fmadd_ps(h ? f1b : f1a, alpha, b1);
					__m256 a2 = _mm256_fmadd_ps(h ? f2b : f2a, alpha, b2);
					__m256 a3 = _mm256_fmadd_ps(h ? f3b : f3a, alpha, b3);
					if (L->relu) /* max(y, +0): +0 for y ≤ 0 and for NaN, as the reference */
						a0 = _mm256_max_ps(a0, z), a1 = _mm256_max_ps(a1, z), a2 = _mm256_max_ps(a2, z),
						a3 = _mm256_max_ps(a3, z);
					__m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
					__m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
					__m256 r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xee);
					__m256 r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xee);
					float *dst = Y + (size_t)(m0 + 8 * h) * ldy + n;
					_mm_storeu_ps(dst, _mm256_castps256_ps128(r0));
					_mm_storeu_ps(dst + ldy, _mm256_castps256_ps128(r1));
					_mm_storeu_ps(dst + 2 * ldy, _mm256_castps256_ps128(r2));
					_mm_storeu_ps(dst + 3 * ldy, _mm256_castps256_ps128(r3));
					_mm_storeu_ps(dst + 4 * ldy, _mm256_extractf128_ps(r0, 1));
					_mm_storeu_ps(dst + 5 * ldy, _mm256_extractf128_ps(r1, 1));
					_mm_storeu_ps(dst + 6 * ldy, _mm256_extractf128_ps(r2, 1));
					_mm_storeu_ps(dst + 7 * ldy, _mm256_extractf128_ps(r3, 1));
				}
				continue;
			}
			/* the partial tile's path reads accm */
			_mm256_store_ps(&accm[0][0], f0a), _mm256_store_ps(&accm[0][8], f0b);
			_mm256_store_ps(&accm[1][0], f1a), _mm256_store_ps(&accm[1][8], f1b);
			_mm256_store_ps(&accm[2][0], f2a), _mm256_store_ps(&accm[2][8], f2b);
			_mm256_store_ps(&accm[3][0], f3a), _mm256_store_ps(&accm[3][8], f3b);
			for (int q4 = 0; q4 < 4; q4++) {
				__m128 r[4];
				for (int i = 0; i < 4; i++) {
					__m128 a = _mm_load_ps(&accm[i][q4 * 4]);
					__m128 bias = _mm_set1_ps(L->bias[n + ((uint32_t)i < nn ? (uint32_t)i : 0)]);
					a = _mm_fmadd_ps(a, _mm256_castps256_ps128(alpha), bias);
					r[i] = L->relu ? _mm_max_ps(a, _mm_setzero_ps()) : a;
				}
				_MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
				for (uint32_t t = 0; t < 4; t++) {
					uint32_t j = (uint32_t)q4 * 4 + t;
					if (j >= rows)
						continue;
					float *dst = Y + (size_t)(m0 + j) * ldy + n;
					if (nn == 4) {
						_mm_storeu_ps(dst, r[t]);
					} else {
						float tmp[4];
						_mm_storeu_ps(tmp, r[t]);
						for (uint32_t i = 0; i < nn; i++)
							dst[i] = tmp[i];
					}
				}
			}
		}
	}
	rc = 0;
out:
	free(xu);
	free(xs);
	free(pad);
	free(xinv);
	free(zero);
	free(own_q), free(own_p), free(own_s);
	return rc;
}

static int gemm_w4a16(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	uint32_t kp = L->w.cols, K = L->k;
	float *xt = aligned_alloc(32, (size_t)K * TILE * sizeof(float));
	float ybuf[4][TILE] __attribute__((aligned(32)));
	if (!xt)
		return -ENOMEM;
	const __m256 g = _mm256_set1_ps(L->w.tensor_scale);
	for (uint32_t m0 = 0; m0 < M; m0 += TILE) {
		uint32_t rows = M - m0 < TILE ? M - m0 : TILE;
		for (uint32_t j = 0; j < TILE; j++)
			for (uint32_t k = 0; k < K; k++)
				xt[(size_t)k * TILE + j] = j < rows ? X[(size_t)(m0 + j) * ldx + k] : 0.0f;
		for (uint32_t n = 0; n < L->n; n += 4) {
			uint32_t nn = L->n - n < 4 ? L->n - n : 4;
			const float *w[4];
			for (uint32_t i = 0; i < 4; i++)
				w[i] = L->wdec + (size_t)(n + (i < nn ? i : 0)) * kp;
			__m256 a[4][2];
			for (int i = 0; i < 4; i++)
				a[i][0] = a[i][1] = _mm256_setzero_ps();
			for (uint32_t k = 0; k < K; k++) {
				__m256 x0 = _mm256_load_ps(xt + (size_t)k * TILE), x1 = _mm256_load_ps(xt + (size_t)k * TILE + 8);
				for (int i = 0; i < 4; i++) {
					__m256 wv = _mm256_broadcast_ss(w[i] + k);
					a[i][0] = _mm256_fmadd_ps(x0, wv, a[i][0]);
					a[i][1] = _mm256_fmadd_ps(x1, wv, a[i][1]);
				}
			}
			for (uint32_t i = 0; i < nn; i++) {
				__m256 bias = _mm256_set1_ps(L->bias[n + i]);
				_mm256_store_ps(ybuf[i], relu_if(_mm256_fmadd_ps(a[i][0], g, bias), L->relu));
				_mm256_store_ps(ybuf[i] + 8, relu_if(_mm256_fmadd_ps(a[i][1], g, bias), L->relu));
			}
			for (uint32_t j = 0; j < rows; j++)
				for (uint32_t i = 0; i < nn; i++)
					Y[(size_t)(m0 + j) * ldy + n + i] = ybuf[i][j];
		}
	}
	free(xt);
	return 0;
}

int op_fp4_gemm_avx2(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	return mode == OP_W4A4 ? gemm_w4a4(L, X, ldx, M, Y, ldy) : gemm_w4a16(L, X, ldx, M, Y, ldy);
}

/* ---- GEMV ---------------------------------------------------------------------------------- */

static inline float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
	return _mm_cvtss_f32(s);
}

#define GEMV_MAXM 16

/* Block scales decoded by table: one load per block instead of a branchy conversion. */
static float scale_lut[2][256];
static pthread_once_t scale_lut_once = PTHREAD_ONCE_INIT;

static void scale_lut_init(void)
{
	for (int c = 0; c < 256; c++) {
		scale_lut[0][c] = op_e4m3_to_float((uint8_t)c);
		scale_lut[1][c] = op_e8m0_to_float((uint8_t)c);
	}
}

/* The doubled signed values of the codes in c: *e from the low nibbles (the even elements), *o
 * from the high ones (the odd), a byte each. */
static inline void nibble_values(__m128i c, __m128i *e, __m128i *o)
{
	const __m128i tab = _mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);
	const __m128i lo4 = _mm_set1_epi8(0x0f);
	*e = _mm_shuffle_epi8(tab, _mm_and_si128(c, lo4));
	*o = _mm_shuffle_epi8(tab, _mm_and_si128(_mm_srli_epi16(c, 4), lo4));
}

/* The codes' doubled values as floats: eight from the low bytes of v, eight from the high. */
static inline __m256 dec_lo(__m128i v)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
}
static inline __m256 dec_hi(__m128i v)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_unpackhi_epi64(v, v)));
}

/*
 * 16 bytes of codes (32 weights) against one row of X: the low eight bytes' even and odd
 * elements go with xe0 and xo0, summed and scaled by s0 into *a0; the high eight's with xe1 and
 * xo1, by s1 into *a1. Two NVFP4 blocks (each its own scale, its evens then odds in X) or one
 * MXFP4 block (one scale, its 16 evens then 16 odds in X).
 */
static inline __attribute__((always_inline)) void row1_16(const uint8_t *c16, const float *xe0, const float *xo0,
							   const float *xe1, const float *xo1, __m256 s0, __m256 s1,
							   __m256 *a0, __m256 *a1)
{
	__m128i e, o;
	nibble_values(_mm_loadu_si128((const __m128i *)c16), &e, &o);
	__m256 p0 = _mm256_mul_ps(_mm256_loadu_ps(xe0), dec_lo(e));
	__m256 p1 = _mm256_mul_ps(_mm256_loadu_ps(xe1), dec_hi(e));
	p0 = _mm256_fmadd_ps(_mm256_loadu_ps(xo0), dec_lo(o), p0);
	p1 = _mm256_fmadd_ps(_mm256_loadu_ps(xo1), dec_hi(o), p1);
	*a0 = _mm256_fmadd_ps(p0, s0, *a0);
	*a1 = _mm256_fmadd_ps(p1, s1, *a1);
}

/*
 * One row of X against one weight row. Each block's products are summed unscaled and the sum
 * scaled once (one FMA a block instead of a multiply for each eight weights), and NVFP4 blocks
 * go in pairs, one 16-byte load and one lookup per nibble for both: 9.3 → 11.4–11.6 G weights/s
 * on one core (AVX2 Xeon, M = 1, K = N = 4,096). With more rows the weights, scaled once, are
 * shared by all of them instead (gemv_row).
 */
static inline __attribute__((always_inline)) float gemv_row1(const uint8_t *codes, const uint8_t *sc,
							       const float *lut, uint32_t bl, uint32_t nb, const float *x)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	uint32_t b = 0;
	if (bl == 16) {
		for (; b + 2 <= nb; b += 2) { /* blocks b and b + 1: X holds 8 evens, 8 odds of each */
			const float *xb = x + b * 16;
			row1_16(codes + b * 8, xb, xb + 8, xb + 16, xb + 24, _mm256_set1_ps(lut[sc[b]]),
				_mm256_set1_ps(lut[sc[b + 1]]), &a0, &a1);
		}
		if (b < nb) { /* an odd last block: its eight bytes alone */
			__m128i e, o;
			nibble_values(_mm_loadl_epi64((const __m128i *)(codes + b * 8)), &e, &o);
			__m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + b * 16), dec_lo(e));
			p = _mm256_fmadd_ps(_mm256_loadu_ps(x + b * 16 + 8), dec_lo(o), p);
			a0 = _mm256_fmadd_ps(p, _mm256_set1_ps(lut[sc[b]]), a0);
		}
	} else {
		for (; b < nb; b++) { /* X holds the block's 16 evens, then its 16 odds */
			const float *xb = x + b * 32;
			const __m256 s = _mm256_set1_ps(lut[sc[b]]);
			row1_16(codes + b * 16, xb, xb + 16, xb + 8, xb + 24, s, s, &a0, &a1);
		}
	}
	return hsum(_mm256_add_ps(a0, a1));
}

/*
 * MM rows of X (permuted to each block's even/odd order) against one weight row. MM is a
 * compile-time constant at every call, so the accumulators live in registers; two per row
 * (even and odd elements) keep two FMA chains in flight.
 */
static inline __attribute__((always_inline)) void gemv_row(const uint8_t *codes, const uint8_t *sc,
							      const float *lut, uint32_t bl, uint32_t nb,
							      const float *xp, uint32_t K, float *out, const int MM)
{
	if (MM == 1) {
		out[0] = gemv_row1(codes, sc, lut, bl, nb, xp);
		return;
	}
	__m256 acc0[GEMV_MAXM / 2], acc1[GEMV_MAXM / 2];
	_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++)
		acc0[m] = acc1[m] = _mm256_setzero_ps();
	if (bl == 16) {
		for (uint32_t b = 0; b < nb; b++) {
			__m128i e, o;
			nibble_values(_mm_loadl_epi64((const __m128i *)(codes + b * 8)), &e, &o);
			__m256 s = _mm256_set1_ps(lut[sc[b]]);
			__m256 we = _mm256_mul_ps(dec_lo(e), s);
			__m256 wo = _mm256_mul_ps(dec_lo(o), s);
			_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++) {
				const float *x = xp + (size_t)m * K + b * 16;
				acc0[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x), we, acc0[m]);
				acc1[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), wo, acc1[m]);
			}
		}
	} else {
		for (uint32_t b = 0; b < nb; b++) {
			__m128i e, o;
			nibble_values(_mm_loadu_si128((const __m128i *)(codes + b * 16)), &e, &o);
			__m256 s = _mm256_set1_ps(lut[sc[b]]);
			__m256 w0 = _mm256_mul_ps(dec_lo(e), s);
			__m256 w1 = _mm256_mul_ps(dec_hi(e), s);
			__m256 w2 = _mm256_mul_ps(dec_lo(o), s);
			__m256 w3 = _mm256_mul_ps(dec_hi(o), s);
			_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++) {
				const float *x = xp + (size_t)m * K + b * 32;
				acc0[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x), w0, acc0[m]);
				acc1[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), w1, acc1[m]);
				acc0[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 16), w2, acc0[m]);
				acc1[m] = _mm256_fmadd_ps(_mm256_loadu_ps(x + 24), w3, acc1[m]);
			}
		}
	}
	_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++)
		out[m] = hsum(_mm256_add_ps(acc0[m], acc1[m]));
}

/* One row of activations → doubled signed codes and block scales, with op_fp4_quantize_row's
 * arithmetic, for the GEMV paths (the GEMM quantizes eight rows at a time instead). pad: kp
 * floats of scratch. */
void op_fp4_quantize_row_avx2(const op_fp4_linear *L, const float *x, int8_t *q2, float *xs, float *pad)
{
	uint32_t bl = op_fp4_block(L->w.format), kp = L->w.cols, nb = kp / bl;
	const float *src = x;
	if (L->k != kp) { /* zero-pad to whole blocks */
		memcpy(pad, x, L->k * sizeof(float));
		memset(pad + L->k, 0, (kp - L->k) * sizeof(float));
		src = pad;
	}
	const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	float S = 1.0f / L->act_scale;
	for (uint32_t b = 0; b < nb; b++) {
		const float *v = src + b * bl;
		__m256 m = _mm256_setzero_ps();
		for (uint32_t i = 0; i < bl; i += 8)
			m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(v + i), absmask), m); /* NaN skipped */
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
		float inv;
		uint8_t code;
		xs[b] = op_fp4_block_scale(_mm_cvtss_f32(h), L->w.format, S, L->mx_mode, &code, &inv);
		__m256 vinv = _mm256_set1_ps(inv);
		for (uint32_t i = 0; i < bl; i += 8) {
			__m256 y = _mm256_mul_ps(_mm256_loadu_ps(v + i), vinv);
			__m256i d = doubled_mag(_mm256_and_ps(y, absmask));
			__m256i neg = _mm256_castps_si256(_mm256_cmp_ps(y, _mm256_setzero_ps(), _CMP_LT_OQ));
			d = _mm256_sub_epi32(_mm256_xor_si256(d, neg), neg); /* negate where y < 0 */
			__m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
			_mm_storel_epi64((__m128i *)(q2 + b * bl + i), _mm_packs_epi16(p16, p16));
		}
	}
}

/*
 * The block scales of one 64-weight step of a row as a lane vector (int32 lane l: elements
 * 8l..8l+7, so block l/2 for NVFP4, l/4 for MXFP4): one broadcast of the step's scale bytes,
 * one in-lane shuffle that moves each lane's byte to the top of the lane, one shift.
 */
static inline __attribute__((always_inline)) __m256 step_scales(const uint8_t *sc, uint32_t G, int nv, __m256 two120)
{
	const __m256i spread = nv ? _mm256_setr_epi8(-1, -1, -1, 0, -1, -1, -1, 0, -1, -1, -1, 1, -1, -1, -1, 1, -1, -1, -1,
						     2, -1, -1, -1, 2, -1, -1, -1, 3, -1, -1, -1, 3)
				  : _mm256_setr_epi8(-1, -1, -1, 0, -1, -1, -1, 0, -1, -1, -1, 0, -1, -1, -1, 0, -1, -1, -1,
						     1, -1, -1, -1, 1, -1, -1, -1, 1, -1, -1, -1, 1);
	int32_t four = 0;
	memcpy(&four, sc + (size_t)G * (nv ? 4 : 2), nv ? 4 : 2);
	__m256i sb = _mm256_shuffle_epi8(_mm256_set1_epi32(four), spread);
	if (nv) /* E4M3 code << 20 read as a float is the value · 2^-120 (subnormals too) */
		return _mm256_mul_ps(_mm256_castsi256_ps(_mm256_srli_epi32(sb, 4)), two120);
	/* E8M0 code << 23 is the value; code 0 (2^-127, a subnormal) is 0x00400000 */
	return _mm256_castsi256_ps(_mm256_max_epu32(_mm256_srli_epi32(sb, 1), _mm256_set1_epi32(0x400000)));
}

/* One 64-weight step's 32 code bytes through tab (one in-lane vpshufb per nibble half): *wl
 * from the low nibbles (elements 2j), *wh from the high ones (2j + 1). */
static inline __attribute__((always_inline)) void step_codes(const uint8_t *codes, uint32_t G, __m256i tab,
							      __m256i *wl, __m256i *wh)
{
	const __m256i lo4 = _mm256_set1_epi8(0x0f);
	__m256i c = _mm256_loadu_si256((const __m256i *)(codes + (size_t)G * 32));
	*wl = _mm256_shuffle_epi8(tab, _mm256_and_si256(c, lo4));
	*wh = _mm256_shuffle_epi8(tab, _mm256_and_si256(_mm256_srli_epi16(c, 4), lo4));
}

/*
 * W4A4 GEMV, 64 weights per step: 32 code bytes expand with one 256-bit vpshufb per nibble half
 * (in-lane, so the low nibbles give [group 0 evens | group 1 evens] and the high nibbles the
 * odds); X was laid out in that order once per call. The four (NVFP4) or two (MXFP4) block
 * scales of the step become one lane vector (step_scales). The even and odd halves' pair sums
 * add in 16 bits before widening, so a step costs one conversion and one FMA per row of X.
 */
static inline __attribute__((always_inline)) void gemv_row_int64(const uint8_t *codes, const uint8_t *sc, int nv,
								    uint32_t steps, const uint8_t *xa, const int8_t *xsg,
								    const float *xsv, uint32_t K, float *out, const int MM)
{
	const __m256i tab = _mm256_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12, 0, 1, 2, 3, 4, 6, 8,
					     12, 0, -1, -2, -3, -4, -6, -8, -12);
	const __m256i ones = _mm256_set1_epi16(1);
	const __m256 two120 = _mm256_set1_ps(0x1p120f);
	__m256 acc[GEMV_MAXM / 2];
	_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++)
		acc[m] = _mm256_setzero_ps();
	for (uint32_t G = 0; G < steps; G++) {
		__m256i wl, wh;
		step_codes(codes, G, tab, &wl, &wh);
		__m256 ws = step_scales(sc, G, nv, two120);
		_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++) {
			size_t at = (size_t)m * K + (size_t)G * 64;
			__m256 sv = _mm256_mul_ps(_mm256_load_ps(xsv + (size_t)m * (K / 8) + (size_t)G * 8), ws);
			/* a pair's products are at most 2·144: the even and odd halves add in 16 bits */
			__m256i p = _mm256_add_epi16(
				_mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(xa + at)),
						     _mm256_sign_epi8(wl, _mm256_load_si256((const __m256i *)(xsg + at)))),
				_mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(xa + at + 32)),
						     _mm256_sign_epi8(wh, _mm256_load_si256((const __m256i *)(xsg + at + 32)))));
			acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), sv, acc[m]);
		}
	}
	_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++)
		out[m] = hsum(acc[m]);
}

static int gemv_w4a4_int64(const op_fp4_tensor *W, float act_scale, int mx_mode, const float *X, uint32_t M, float *Y,
			   uint32_t n0, uint32_t n1)
{
	uint32_t K = W->cols, bl = op_fp4_block(W->format), nb = K / bl, steps = K / 64;
	int nv = W->format == OP_FP4_NVFP4;
	float *pad = NULL;
	uint8_t *xa = aligned_alloc(32, (size_t)M * K);
	int8_t *xsg = aligned_alloc(32, (size_t)M * K), *q2 = malloc(K);
	float *xsv = aligned_alloc(32, (size_t)M * (K / 8) * sizeof(float)), *xs = malloc(nb * sizeof(float));
	int rc = -ENOMEM;
	if (!xa || !xsg || !q2 || !xsv || !xs)
		goto out;
	op_fp4_linear shape = {.w = *W, .k = K, .mx_mode = mx_mode, .act_scale = act_scale > 0 ? act_scale : 1.0f};
	/* p < 32: the low-nibble vector, p ≥ 32: the high one; in each, the first 16 bytes come
	 * from the step's first 32-element group, the next 16 from its second */
	uint8_t perm[64];
	for (uint32_t p = 0; p < 64; p++) {
		uint32_t hi = p >= 32, q = p & 31;
		perm[p] = (uint8_t)((q >> 4) * 32 + 2 * (q & 15) + hi);
	}
	pad = malloc(K * sizeof(float));
	if (!pad)
		goto out;
	for (uint32_t m = 0; m < M; m++) {
		op_fp4_quantize_row_avx2(&shape, X + (size_t)m * K, q2, xs, pad);
		for (uint32_t G = 0; G < steps; G++) {
			const int8_t *src = q2 + G * 64;
			uint8_t *da = xa + (size_t)m * K + G * 64;
			int8_t *ds = xsg + (size_t)m * K + G * 64;
			for (uint32_t p = 0; p < 64; p++) {
				int8_t v = src[perm[p]];
				da[p] = (uint8_t)(v < 0 ? -v : v);
				ds[p] = v;
			}
			for (uint32_t l = 0; l < 8; l++) /* each int32 lane's activation block scale */
				xsv[(size_t)m * (K / 8) + G * 8 + l] =
					xs[nv ? (G * 64 + (l / 2) * 16) / bl : (G * 64 + (l / 4) * 32) / bl];
		}
	}
	float g = 0.25f * (nv ? shape.act_scale : 1.0f) * W->tensor_scale, out[8];
	/* four rows of X per pass over the weights: eight accumulators stay in registers */
	for (uint32_t m0 = 0; m0 < M; m0 += 4) {
		uint32_t mm = M - m0 < 4 ? M - m0 : 4;
		const uint8_t *a = xa + (size_t)m0 * K;
		const int8_t *sg = xsg + (size_t)m0 * K;
		const float *sv = xsv + (size_t)m0 * (K / 8);
		for (uint32_t n = n0; n < n1; n++) {
			const uint8_t *codes = W->codes + (size_t)n * K / 2, *sc = W->scales + (size_t)n * nb;
			switch (mm) {
			case 4: gemv_row_int64(codes, sc, nv, steps, a, sg, sv, K, out, 4); break;
			case 3: gemv_row_int64(codes, sc, nv, steps, a, sg, sv, K, out, 3); break;
			case 2: gemv_row_int64(codes, sc, nv, steps, a, sg, sv, K, out, 2); break;
			default: gemv_row_int64(codes, sc, nv, steps, a, sg, sv, K, out, 1); break;
			}
			for (uint32_t m = 0; m < mm; m++)
				Y[(size_t)(m0 + m) * W->rows + n] = out[m] * g;
		}
	}
	rc = 0;
out:
	free(pad);
	free(xa), free(xsg), free(q2), free(xsv), free(xs);
	return rc;
}

/*
 * W4A16 GEMV on 64 weights a step, with X carried in 16 bits. Each block of X (the weights'
 * blocks: 16 elements for NVFP4, 32 for MXFP4) becomes integers q = round(x / sx) with
 * |q| ≤ 32,512 and sx = max|x| / 32,512 (an error of at most sx / 2, 1/65,024 of the block's
 * largest element; BF16 activations would err by up to 2^-8 of each element: over a dot
 * product about a hundred times more on well-spread data, less where a block holds an
 * outlier), split as q = 256·h + l (h and l signed bytes). vpmaddubsw
 * then multiplies the weights' codes, looked up as unsigned bytes qw + 12 (qw the doubled
 * value, −12 to 12), by l and by h: 32 products an instruction instead of the 8 of an FP32
 * FMA, and no integer-to-float conversion of the weights. Each int32 lane holds eight
 * elements of one block; −12·Σq over the lane is taken off once, the exact integer sum is
 * converted, and one FMA applies sw·sx. Same layout of X as the W4A4 GEMV above (the
 * low-nibble elements of a step, then the high-nibble ones).
 */
static inline __attribute__((always_inline)) void gemv_row_a16(const uint8_t *codes, const uint8_t *sc, int nv,
								  uint32_t steps, const int8_t *xq, const int32_t *xcorr,
								  const float *xsv, uint32_t K, float *out, const int MM)
{
	const __m256i tab = _mm256_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0, 12, 13, 14, 15,
					     16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0);
	const __m256i ones = _mm256_set1_epi16(1), k256 = _mm256_set1_epi16(256);
	const __m256 two120 = _mm256_set1_ps(0x1p120f);
	__m256 acc[GEMV_MAXM / 2];
	_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++)
		acc[m] = _mm256_setzero_ps();
	for (uint32_t G = 0; G < steps; G++) {
		__m256i wl, wh;
		step_codes(codes, G, tab, &wl, &wh);
		__m256 ws = step_scales(sc, G, nv, two120);
		_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++) {
			const int8_t *x = xq + ((size_t)m * K + (size_t)G * 64) * 2; /* l evens, l odds, h evens, h odds */
			__m256i pl = _mm256_add_epi16(_mm256_maddubs_epi16(wl, _mm256_load_si256((const __m256i *)x)),
						      _mm256_maddubs_epi16(wh, _mm256_load_si256((const __m256i *)(x + 32))));
			__m256i ph = _mm256_add_epi16(_mm256_maddubs_epi16(wl, _mm256_load_si256((const __m256i *)(x + 64))),
						      _mm256_maddubs_epi16(wh, _mm256_load_si256((const __m256i *)(x + 96))));
			__m256i d = _mm256_add_epi32(_mm256_madd_epi16(ph, k256), _mm256_madd_epi16(pl, ones));
			d = _mm256_sub_epi32(d, _mm256_load_si256((const __m256i *)(xcorr + (size_t)m * (K / 8) + (size_t)G * 8)));
			__m256 sv = _mm256_mul_ps(_mm256_load_ps(xsv + (size_t)m * (K / 8) + (size_t)G * 8), ws);
			acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), sv, acc[m]);
		}
	}
	_Pragma("GCC unroll 8") for (int m = 0; m < MM; m++)
		out[m] = hsum(acc[m]);
}

/* X → the 16-bit form gemv_row_a16 reads. 1 when a row holds a NaN or an infinity (which
 * 16 bits cannot carry: the FP32 path then runs, and the result shows it), or a block whose
 * largest |x| is not 0 and outside [2^-40, 2^40] (where sx, or sx times a block scale, would
 * leave the normal floats and lose the bound), else 0. xsv holds sx · 2^31: with the doubled
 * codes, the sums come out 2^32 times too large, taken off with the tensor scale at the end,
 * so that tiny MXFP4 block scales stay normal in sx · sw. */
static int gemv_a16_prepare(const float *X, uint32_t M, uint32_t K, uint32_t bl, int8_t *xq, int32_t *xcorr, float *xsv)
{
	float sx[64];
	for (uint32_t m = 0; m < M; m++) {
		const float *x = X + (size_t)m * K;
		for (uint32_t G = 0; G < K / 64; G++) {
			const float *v = x + G * 64;
			int16_t q[64];
			for (uint32_t b = 0; b < 64 / bl; b++) {
				float amax = 0.0f;
				for (uint32_t i = 0; i < bl; i++) {
					float a = fabsf(v[b * bl + i]);
					if (!(a <= FLT_MAX))
						return 1;
					amax = a > amax ? a : amax;
				}
				if (amax != 0.0f && (amax < 0x1p-40f || amax > 0x1p40f))
					return 1;
				sx[b] = amax / 32512.0f; /* q rounds against the very scale it is rebuilt with */
				double inv = amax > 0.0f ? 1.0 / (double)sx[b] : 0.0;
				for (uint32_t i = 0; i < bl; i++) {
					double r = nearbyint(v[b * bl + i] * inv);
					q[b * bl + i] = (int16_t)(r > 32512.0 ? 32512 : r < -32512.0 ? -32512 : r);
				}
			}
			int8_t *d = xq + ((size_t)m * K + G * 64) * 2;
			for (uint32_t p = 0; p < 64; p++) {
				/* p < 32: the low-nibble vector, p ≥ 32: the high one; in each, the first 16
				 * bytes come from the step's first 32 elements, the next 16 from its second */
				uint32_t hi = p >= 32, r = p & 31, e = (r >> 4) * 32 + 2 * (r & 15) + hi;
				int h = (q[e] + 128) >> 8;
				d[p] = (int8_t)(q[e] - 256 * h);
				d[64 + p] = (int8_t)h;
			}
			for (uint32_t l = 0; l < 8; l++) { /* lane l: bytes 4l..4l+3 of both halves */
				int32_t s = 0;
				for (uint32_t j = 0; j < 4; j++) {
					uint32_t p = 4 * l + j, e0 = (p >> 4) * 32 + 2 * (p & 15);
					s += q[e0] + q[e0 + 1];
				}
				xcorr[(size_t)m * (K / 8) + G * 8 + l] = 12 * s;
				xsv[(size_t)m * (K / 8) + G * 8 + l] = sx[(l * 8) / bl] * 0x1p31f;
			}
		}
	}
	return 0;
}

static int gemv_w4a16_int64(const op_fp4_tensor *W, const float *X, uint32_t M, float *Y, uint32_t n0, uint32_t n1)
{
	uint32_t K = W->cols, bl = op_fp4_block(W->format), nb = K / bl, steps = K / 64;
	int nv = W->format == OP_FP4_NVFP4;
	int8_t *xq = aligned_alloc(32, (size_t)M * K * 2);
	int32_t *xcorr = aligned_alloc(32, (size_t)M * (K / 8) * sizeof(int32_t));
	float *xsv = aligned_alloc(32, (size_t)M * (K / 8) * sizeof(float));
	int rc = -ENOMEM;
	if (!xq || !xcorr || !xsv)
		goto out;
	rc = gemv_a16_prepare(X, M, K, bl, xq, xcorr, xsv);
	if (rc)
		goto out;
	if (!nv) /* block scales this path cannot carry (fp4_gemm.h): the FP32 path */
		for (size_t i = (size_t)n0 * nb; i < (size_t)n1 * nb; i++)
			if (W->scales[i] > OP_A16_MAX_SCALE_CODE) {
				rc = 1;
				goto out;
			}
	float out[4];
	for (uint32_t m0 = 0; m0 < M; m0 += 4) {
		uint32_t mm = M - m0 < 4 ? M - m0 : 4;
		const int8_t *q = xq + (size_t)m0 * K * 2;
		const int32_t *cr = xcorr + (size_t)m0 * (K / 8);
		const float *sv = xsv + (size_t)m0 * (K / 8);
		for (uint32_t n = n0; n < n1; n++) {
			const uint8_t *codes = W->codes + (size_t)n * K / 2, *sc = W->scales + (size_t)n * nb;
			switch (mm) {
			case 4: gemv_row_a16(codes, sc, nv, steps, q, cr, sv, K, out, 4); break;
			case 3: gemv_row_a16(codes, sc, nv, steps, q, cr, sv, K, out, 3); break;
			case 2: gemv_row_a16(codes, sc, nv, steps, q, cr, sv, K, out, 2); break;
			default: gemv_row_a16(codes, sc, nv, steps, q, cr, sv, K, out, 1); break;
			}
			for (uint32_t m = 0; m < mm; m++) /* 2^-32: see gemv_a16_prepare (exact) */
				Y[(size_t)(m0 + m) * W->rows + n] = out[m] * 0x1p-32f * W->tensor_scale;
		}
	}
out:
	free(xq), free(xcorr), free(xsv);
	return rc;
}

int op_fp4_gemv_avx2(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		     float *Y, uint32_t n0, uint32_t n1)
{
	uint32_t K = W->cols, bl = op_fp4_block(W->format), nb = K / bl;
	pthread_once(&scale_lut_once, scale_lut_init);
	if (mode == OP_W4A4 && K % 64 == 0)
		return gemv_w4a4_int64(W, act_scale, mx_mode, X, M, Y, n0, n1);
	if (mode == OP_W4A16 && K % 64 == 0) {
		int rc = gemv_w4a16_int64(W, X, M, Y, n0, n1);
		if (rc <= 0)
			return rc;
	}
	/* X in even/odd order per block; for W4A4 the activations are first replaced by their
	 * FP4 values (quantize → dequantize), so both modes then share one weight stream. */
	float *xp = aligned_alloc(32, (size_t)M * K * sizeof(float) + 32);
	if (!xp)
		return -ENOMEM;
	float gx = 1.0f;
	if (mode == OP_W4A4) {
		op_fp4_linear shape = {.w = *W, .k = K, .mx_mode = mx_mode, .act_scale = act_scale > 0 ? act_scale : 1.0f};
		int8_t *q2 = malloc(K);
		float *xs = malloc(nb * sizeof(float));
		if (!q2 || !xs) {
			free(q2), free(xs), free(xp);
			return -ENOMEM;
		}
		for (uint32_t m = 0; m < M; m++) {
			op_fp4_quantize_row(&shape, X + (size_t)m * K, q2, xs);
			for (uint32_t k = 0; k < K; k++) {
				uint32_t b = k / bl, i = k % bl;
				xp[(size_t)m * K + b * bl + (i & 1u) * (bl / 2) + i / 2] = (float)q2[k] * 0.5f * xs[b];
			}
		}
		free(q2), free(xs);
		if (W->format == OP_FP4_NVFP4)
			gx = shape.act_scale;
	} else {
		for (uint32_t m = 0; m < M; m++)
			for (uint32_t k = 0; k < K; k++) {
				uint32_t b = k / bl, i = k % bl;
				xp[(size_t)m * K + b * bl + (i & 1u) * (bl / 2) + i / 2] = X[(size_t)m * K + k];
			}
	}
	const float *lut = scale_lut[W->format == OP_FP4_MXFP4];
	float g = gx * W->tensor_scale * 0.5f, out[8];
	for (uint32_t m0 = 0; m0 < M; m0 += 8) {
		uint32_t mm = M - m0 < 8 ? M - m0 : 8;
		const float *x = xp + (size_t)m0 * K;
		for (uint32_t n = n0; n < n1; n++) {
			const uint8_t *codes = W->codes + (size_t)n * K / 2, *sc = W->scales + (size_t)n * nb;
			/* constant row counts: the accumulators stay in registers, and each weight row is
			 * read once for up to eight rows of X (three, five, six and seven rows used to
			 * take one pass each: 1.6x sgemv at M = 3, 5, 6, 7 against 3.1 at M = 4) */
			switch (mm) {
			case 8: gemv_row(codes, sc, lut, bl, nb, x, K, out, 8); break;
			case 7: gemv_row(codes, sc, lut, bl, nb, x, K, out, 7); break;
			case 6: gemv_row(codes, sc, lut, bl, nb, x, K, out, 6); break;
			case 5: gemv_row(codes, sc, lut, bl, nb, x, K, out, 5); break;
			case 4: gemv_row(codes, sc, lut, bl, nb, x, K, out, 4); break;
			case 3: gemv_row(codes, sc, lut, bl, nb, x, K, out, 3); break;
			case 2: gemv_row(codes, sc, lut, bl, nb, x, K, out, 2); break;
			default: gemv_row(codes, sc, lut, bl, nb, x, K, out, 1); break;
			}
			for (uint32_t m = 0; m < mm; m++)
				Y[(size_t)(m0 + m) * W->rows + n] = out[m] * g;
		}
	}
	free(xp);
	return 0;
}

/* ---- pooling ------------------------------------------------------------------------------- */

void op_pool_avx2(const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events, float *out,
		  size_t ldo)
{
	uint32_t cv = C / 8 * 8; /* channels done eight at a time; the rest by the reference */
	for (uint32_t e = 0; e < n_events; e++) {
		float *o = out + (size_t)e * ldo;
		uint32_t lo = off[e], hi = off[e + 1];
		if (hi == lo)
			continue; /* the reference writes the empty event's zeros below */
		__m256 n = _mm256_set1_ps((float)(hi - lo));
		for (uint32_t c = 0; c < cv; c += 8) {
			__m256 sum = _mm256_setzero_ps(), mx = _mm256_loadu_ps(H + (size_t)lo * ldh + c);
			for (uint32_t r = lo; r < hi; r++) {
				__m256 v = _mm256_loadu_ps(H + (size_t)r * ldh + c);
				sum = _mm256_add_ps(sum, v);
				mx = _mm256_max_ps(v, mx);
			}
			_mm256_storeu_ps(o + c, _mm256_div_ps(sum, n));
			_mm256_storeu_ps(o + C + c, mx);
		}
	}
	for (uint32_t e = 0; e < n_events; e++) /* empty events, all channels; others, the tail */
		op_pool_channels(H, ldh, C, off[e + 1] == off[e] ? 0 : cv, off + e, 1, out + (size_t)e * ldo, ldo);
}
#endif
