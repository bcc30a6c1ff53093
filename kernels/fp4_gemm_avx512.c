/*
 * fp4_gemm_avx512.c — the AVX-512 VNNI rung (compiled with -mavx512f -mavx512bw -mavx512dq
 * -mavx512vl -mavx512vnni, called only when the CPU has all of them): W4A4 and W4A16 GEMM, W4A4
 * and W4A16 GEMV; pooling, and GEMVs whose K is not a multiple of 128, are the AVX2 rung's
 * (every AVX-512 CPU has AVX2). The GEMMs are bit-exact with the reference; the GEMVs, as
 * every GEMV, equal to rounding, the W4A16 GEMV with X carried in 16 bits (fp4_gemm.h) unless
 * X holds what 16 bits cannot carry.
 *
 * W4A4 GEMM: lanes are outputs. The weights of 16 outputs are laid out once, at load
 * (op_fp4_layout_g16), so that one 512-bit load holds, for one k-quad, the four doubled codes of
 * each of the 16 outputs (a 32-bit lane each). The activations are quantized sixteen rows at a
 * time (doubled codes + 12, unsigned; four codes of a quad in one 32-bit word per row), and each
 * row's word is broadcast: one vpdpbusd then adds, for 16 outputs, the four products of that row
 * and quad into int32 — 64 multiply-adds in one instruction, exactly. A block's sum starts from
 * −12·Σw (the +12 offset taken back) plus a float bias that makes it readable as a float, and
 * becomes FP32 once per block: acc = fma((float)Σ, sx·sw, acc) in block order, as the reference
 * does. Eight rows × 16 outputs at a time: 8 int32 and 8 FP32 accumulators, a row of Y written
 * as one (masked) store.
 */
#if defined(__x86_64__)
#include <float.h>
#include <errno.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/fp4_gemm.h"

#define QT 16 /* rows per quantized tile: one 32-bit lane each */
#define KR 8  /* rows per kernel pass: 8 int32 + 8 FP32 accumulators */
#define NG 16 /* outputs per group: one 32-bit lane each */

/* ---- the activation quantizer, sixteen rows at once ---------------------------------------- */
/* Lanes are a row's sixteen consecutive values (no transpose): the block maxima of sixteen rows
 * come out of one tree of shuffles as one vector, lanes = rows, so the scale rule runs once per
 * sixteen rows (tile_scales: the AVX2 rung's, on 512-bit registers); then each value becomes its
 * doubled code (+12, unsigned) and four rows' codes are packed by two saturating packs. The
 * codes and scales are the reference's bit for bit (tests/unit/test_fp4_kernels.c). */

static inline __m512 tile_scales(__m512 amax, int format, int mx_mode, float S, __m512 *inv)
{
	const __m512i one = _mm512_set1_epi32(1);
	if (format == OP_FP4_NVFP4) {
		__m512 vS = _mm512_set1_ps(S);
		__m512 v = _mm512_div_ps(_mm512_mul_ps(amax, vS), _mm512_set1_ps(6.0f));
		__m512i u = _mm512_castps_si512(v);
		__m512i rn = _mm512_and_si512(
			_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7ffff)),
					 _mm512_and_si512(_mm512_srli_epi32(u, 20), one)),
			_mm512_set1_epi32((int)0xfff00000u));
		__m512 norm = _mm512_min_ps(_mm512_set1_ps(448.0f), _mm512_castsi512_ps(rn)); /* NaN stays NaN */
		__m512 sub = _mm512_mul_ps(_mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(512.0f)),
								_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
					   _mm512_set1_ps(1.0f / 512.0f));
		__m512 s = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_set1_ps(0x1p-6f), _CMP_GE_OQ), sub, norm);
		*inv = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_GT_OQ), vS, s);
		return s;
	}
	__m512i code;
	if (mx_mode == OP_MX_SCALE_CEIL) {
		__m512i a = _mm512_castps_si512(_mm512_div_ps(amax, _mm512_set1_ps(6.0f)));
		__m512i inf = _mm512_set1_epi32(0x7f800000);
		__mmask16 nan = _mm512_cmpgt_epi32_mask(a, inf);
		__m512i bf = _mm512_srli_epi32(a, 16);
		__mmask16 low = _mm512_test_epi32_mask(a, _mm512_set1_epi32(0xffff)) & _mm512_cmpgt_epi32_mask(inf, a);
		bf = _mm512_mask_add_epi32(bf, low, bf, one);
		__m512i res = _mm512_and_si512(_mm512_srli_epi32(bf, 7), _mm512_set1_epi32(0xff));
		__mmask16 up = _mm512_test_epi32_mask(bf, _mm512_set1_epi32(0x7f)) &
			       _mm512_cmpgt_epi32_mask(bf, _mm512_set1_epi32(0x40)) &
			       _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(0x7f80), bf);
		res = _mm512_mask_add_epi32(res, up, res, one);
		__mmask16 sat = _mm512_cmpgt_epi32_mask(_mm512_set1_epi32(0x7f81), bf) &
				_mm512_cmpeq_epi32_mask(res, _mm512_set1_epi32(0xff));
		res = _mm512_mask_sub_epi32(res, sat, res, one); /* 0xff → 0xfe */
		code = _mm512_mask_mov_epi32(res, nan, _mm512_set1_epi32(0xff));
	} else {
		__m512i a = _mm512_castps_si512(amax);
		__m512i e = _mm512_and_si512(_mm512_srli_epi32(a, 23), _mm512_set1_epi32(0xff));
		__mmask16 isinf = _mm512_cmpeq_epi32_mask(a, _mm512_set1_epi32(0x7f800000));
		code = _mm512_sub_epi32(_mm512_mask_sub_epi32(e, isinf, e, one), _mm512_set1_epi32(2)); /* inf: 0xfe − 2 */
	}
	code = _mm512_min_epi32(_mm512_max_epi32(code, one), _mm512_set1_epi32(253));
	*inv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(254), code), 23));
	return _mm512_castsi512_ps(_mm512_slli_epi32(code, 23));
}

/* Which row each of the sixteen inputs of hmax16 takes so that lane j of its result is row j's
 * maximum (the tree below leaves lanes in this order; the order is its own inverse). */
static const uint8_t hmax_row[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};

/* Lane L = the maximum of v[hmax_row[L]]'s sixteen lanes: four levels, each halving the
 * vectors and the lanes per row (30 shuffles and 15 maxima for sixteen rows). No NaN in v. */
static inline __m512 hmax16(const __m512 v[16])
{
	__m512 w[8], x[4], y[2];
#pragma GCC unroll 8
	for (int i = 0; i < 8; i++)
		w[i] = _mm512_max_ps(_mm512_shuffle_f32x4(v[i], v[i + 8], 0x44), _mm512_shuffle_f32x4(v[i], v[i + 8], 0xee));
#pragma GCC unroll 4
	for (int i = 0; i < 4; i++)
		x[i] = _mm512_max_ps(_mm512_shuffle_f32x4(w[i], w[i + 4], 0x88), _mm512_shuffle_f32x4(w[i], w[i + 4], 0xdd));
#pragma GCC unroll 2
	for (int i = 0; i < 2; i++)
		y[i] = _mm512_max_ps(_mm512_shuffle_ps(x[i], x[i + 2], 0x44), _mm512_shuffle_ps(x[i], x[i + 2], 0xee));
	return _mm512_max_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xdd));
}

/* Sixteen values times their row's 1/scale → doubled E2M1 codes (−12 … 12), int32 lanes.
 * t = 2y is first held to [−13, 13] (min and max return their second operand for NaN, so NaN
 * becomes +13, ±∞ ±13): the reference saturates at ±6 and sends NaN to +6. It then rounds to
 * one mantissa bit by adding and removing ±2^(e+22), at least 2^23 in magnitude (which rounds
 * below 2 to integers), with t's sign: round-to-nearest-even onto 0, ±1, ±2, ±3, ±4, ±6, ±8,
 * ±12 (13 → 12). vrangeps (imm 3: the larger magnitude, src1's sign) takes that floor on the
 * signed exponent in one instruction; it never sees a NaN. Equal to the reference on all 2^32
 * values of y (checked once, exhaustively, against the reference's rounding). */
static inline __m512i code12(__m512 x, __m512 inv)
{
	const __m512 y = _mm512_mul_ps(x, inv), t = _mm512_add_ps(y, y);
	const __m512 tc = _mm512_min_ps(_mm512_max_ps(_mm512_set1_ps(-13.0f), t), _mm512_set1_ps(13.0f));
	const __m512i es = _mm512_add_epi32(_mm512_and_si512(_mm512_castps_si512(tc), _mm512_set1_epi32((int)0xff800000u)),
					    _mm512_set1_epi32(0x0b000000));
	const __m512 ms = _mm512_range_ps(_mm512_castsi512_ps(es), _mm512_set1_ps(0x1p23f), 3);
	return _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_add_ps(tc, ms), ms));
}

/* Columns c0 … c0 + 15 of a row that has k. ragged (k not whole sixteens, or a block wholly past
 * it): a load masked at k, nothing read past it and zeros there, as zero padding to whole blocks
 * would give; otherwise a plain load (the masks cost 5 % where they are not needed). */
static inline __attribute__((always_inline)) __m512 load16(const float *row, uint32_t c0, uint32_t k, const int ragged)
{
	if (!ragged)
		return _mm512_loadu_ps(row + c0);
	const uint32_t rem = k > c0 ? k - c0 : 0;
	return _mm512_maskz_loadu_ps(rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1), row + c0);
}

/* Block b's maxima of the sixteen rows → their scales and 1/scales (xs, xinv: [block][row]). */
static inline __attribute__((always_inline)) void tile_block_scales(const op_fp4_linear *L, const float *const rowp[QT],
								      uint32_t b, float S, float *xs, float *xinv, const int ragged)
{
	const uint32_t bl = op_fp4_block(L->w.format), vpb = bl / 16;
	const __m512 absmask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff)), zero = _mm512_setzero_ps();
	__m512 v[QT];
#pragma GCC unroll 16
	for (int i = 0; i < QT; i++) { /* max(|x|, 0) turns NaN into 0: skipped, as in the reference */
		const float *x = rowp[hmax_row[i]];
		__m512 a = _mm512_max_ps(_mm512_and_ps(load16(x, b * bl, L->k, ragged), absmask), zero);
		if (vpb == 2 && b * bl + 16 < L->k)
			a = _mm512_max_ps(_mm512_and_ps(load16(x, b * bl + 16, L->k, ragged), absmask), a);
		v[i] = a;
	}
	__m512 inv, s = tile_scales(hmax16(v), L->w.format, L->mx_mode, S, &inv);
	_mm512_store_ps(xs + b * QT, s);
	_mm512_store_ps(xinv + b * QT, inv);
}

/* Block b's codes of the sixteen rows, as the kernel reads them (see quantize_tile16). */
static inline __attribute__((always_inline)) void tile_block_codes(const op_fp4_linear *L, const float *const rowp[QT],
								     uint32_t b, uint32_t *xu, const float *xinv, const int ragged)
{
	const uint32_t bl = op_fp4_block(L->w.format), vpb = bl / 16;
	for (uint32_t c = 0; c < vpb && (c == 0 || b * bl + 16 < L->k); c++) {
		uint32_t *dst = xu + (size_t)(b * vpb + c) * 4 * 16;
		const float *inv_row = xinv + b * QT;
#pragma GCC unroll 4
		for (int g = 0; g < 4; g++) {
			__m512i q[4];
#pragma GCC unroll 4
			for (int r = 0; r < 4; r++)
				q[r] = code12(load16(rowp[4 * g + r], b * bl + c * 16, L->k, ragged), _mm512_set1_ps(inv_row[4 * g + r]));
			/* −12 … 12 (no saturation), + 12 a byte */
			_mm512_store_si512((__m512i *)(dst + g * 16),
					   _mm512_add_epi8(_mm512_packs_epi16(_mm512_packs_epi32(q[0], q[1]), _mm512_packs_epi32(q[2], q[3])),
							   _mm512_set1_epi8(12)));
		}
	}
}

/*
 * Sixteen rows (rowp[j]: k readable floats; load16 reads none past k) → their codes (+12,
 * 0 … 24) and scales in the kernel's order: for each sixteen-column chunk c, four groups of
 * four rows, each 64 bytes = [quad of the chunk (4)][row of the group (4)] words of four codes
 * (what two saturating packs of four rows leave, unpermuted): row j's quad q of chunk c at word
 * (4c + j/4)·16 + 4q + j%4. xs[b·16 + j]: row j's scale of block b. The blocks below nfull lie
 * wholly below k and are read with plain loads; only those that reach past it are masked (at
 * K = 136, with every load masked, 4,096 rows took 122 µs, against 73-76 at K = 128; now 78).
 */
static void quantize_tile16(const op_fp4_linear *L, const float *const rowp[QT], uint32_t *xu, float *xs, float *xinv,
			    uint32_t nfull)
{
	const uint32_t nb = L->w.cols / op_fp4_block(L->w.format);
	const float S = 1.0f / L->act_scale;
	/* every block's scales first: their divisions (long, on one port) then overlap each other,
	 * and the codes below read 1/scale long after it was stored */
	for (uint32_t b = 0; b < nfull; b++)
		tile_block_scales(L, rowp, b, S, xs, xinv, 0);
	for (uint32_t b = nfull; b < nb; b++)
		tile_block_scales(L, rowp, b, S, xs, xinv, 1);
	for (uint32_t b = 0; b < nfull; b++)
		tile_block_codes(L, rowp, b, xu, xinv, 0);
	for (uint32_t b = nfull; b < nb; b++)
		tile_block_codes(L, rowp, b, xu, xinv, 1);
}

/* How many blocks lie wholly below k and have whole sixteens (the quantizer reads them with plain
 * loads): all nb unless k is not a multiple of 16 or a block lies wholly past it; the only
 * padding then is MXFP4's second sixteen of the last block, which is never read. */
static uint32_t full_blocks(const op_fp4_linear *L)
{
	const uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format);
	return L->k % 16 != 0 || kp != (L->k + bl - 1) / bl * bl ? L->k / bl : kp / bl;
}

/* Sixteen row pointers of the tile at m0 (rows past M read a zero row). */
static void tile_rows(const float *X, size_t ldx, uint32_t M, uint32_t m0, const float *zero, const float *rowp[QT])
{
	for (uint32_t j = 0; j < QT; j++) {
		/* the quantizer's loads stop at k: no copy padded to whole blocks (it cost 12 % at
		 * K = 136, the event network's head.0) */
		rowp[j] = m0 + j >= M ? zero : X + (size_t)(m0 + j) * ldx;
	}
}

int op_fp4_w4a4_quantize_avx512(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M)
{
	const uint32_t kp = L->w.cols, nb = kp / op_fp4_block(L->w.format), nfull = full_blocks(L);
	uint32_t *xu = aligned_alloc(64, (size_t)kp / 4 * QT * sizeof(uint32_t));
	float *xs = aligned_alloc(64, (size_t)nb * QT * sizeof(float)), *xinv = aligned_alloc(64, (size_t)nb * QT * sizeof(float));
	float *zero = calloc(kp, sizeof(float));
	int rc = -ENOMEM;
	if (xu && xs && xinv && zero) {
		for (uint32_t m0 = 0; m0 < M; m0 += QT) {
			const float *rowp[QT];
			tile_rows(X, ldx, M, m0, zero, rowp);
			quantize_tile16(L, rowp, xu, xs, xinv, nfull);
			__asm__ volatile("" : : "r"(xu), "r"(xs) : "memory"); /* the codes count as used */
		}
		rc = 0;
	}
	free(xu), free(xs), free(xinv), free(zero);
	return rc;
}

static int gemm_w4a4(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	const uint32_t kp = L->w.cols, bl = op_fp4_block(L->w.format), nb = kp / bl, quads = bl / 4, nq = kp / 4;
	const uint32_t ngroups = (L->n + NG - 1) / NG;
	int rc = -ENOMEM;
	/* weights: [group][quad][16 outputs] words; scales and corrections: [group][block][16] —
	 * prepared by op_fp4_linear_init; laid out here only when that could not be done */
	const int32_t *wq = L->g16q, *wc = L->g16c;
	const float *ws = L->g16s, *bias = L->g16b;
	int32_t *own_q = NULL, *own_c = NULL;
	float *own_s = NULL, *own_b = NULL;
	uint32_t *xu = aligned_alloc(64, (size_t)nq * QT * sizeof(uint32_t));
	float *xs = aligned_alloc(64, (size_t)nb * QT * sizeof(float)), *xinv = aligned_alloc(64, (size_t)nb * QT * sizeof(float));
	float *zero = calloc(kp, sizeof(float));
	if (!xu || !xs || !xinv || !zero)
		goto out;
	if (!wq) {
		own_q = aligned_alloc(64, (size_t)ngroups * nq * NG * sizeof(int32_t));
		own_s = aligned_alloc(64, (size_t)ngroups * nb * NG * sizeof(float));
		own_c = aligned_alloc(64, (size_t)ngroups * nb * NG * sizeof(int32_t));
		own_b = aligned_alloc(64, (size_t)ngroups * NG * sizeof(float));
		if (!own_q || !own_s || !own_c || !own_b)
			goto out;
		op_fp4_layout_g16(L, own_q, own_c, own_s, own_b, NULL);
		wq = own_q, wc = own_c, ws = own_s, bias = own_b;
	}
	const float fa = (0.25f * (L->w.format == OP_FP4_NVFP4 ? L->act_scale : 1.0f)) * L->w.tensor_scale;
	const __m512 alpha = _mm512_set1_ps(fa), zerov = _mm512_setzero_ps();
	const __m512 sum_bias = _mm512_castsi512_ps(_mm512_set1_epi32(OP_G16_SUM_BIAS));
	const uint32_t nfull = full_blocks(L);
	for (uint32_t m0 = 0; m0 < M; m0 += QT) {
		const uint32_t rows = M - m0 < QT ? M - m0 : QT;
		const float *rowp[QT];
		tile_rows(X, ldx, M, m0, zero, rowp);
		quantize_tile16(L, rowp, xu, xs, xinv, nfull);
		/* The next tile's rows go into cache while this one is computed, a few lines per output
		 * group (a burst of them would stall on the line-fill buffers): the quantizer walks
		 * sixteen rows K floats apart, streams too short for the hardware prefetcher (measured:
		 * 40-70 % of the kernel was the quantizer waiting for X). */
		const uint32_t lines_per_row = (L->k + 15) / 16, pf_rows = M - m0 > 2 * QT ? QT : (M - m0 > QT ? M - m0 - QT : 0);
		const uint32_t pf_total = pf_rows * lines_per_row, pf_step = (pf_total + ngroups - 1) / ngroups;
		uint32_t pr = 0, pl = 0; /* the next line to fetch: row, line (no division in this loop) */
		for (uint32_t g = 0; g < ngroups; g++) {
			for (uint32_t e = 0; e < pf_step && pr < pf_rows; e++) {
				_mm_prefetch((const char *)(X + (size_t)(m0 + QT + pr) * ldx + pl * 16), _MM_HINT_T0);
				if (++pl == lines_per_row)
					pl = 0, pr++;
			}
			const __m512i *wg = (const __m512i *)(wq + (size_t)g * nq * NG);
			for (uint32_t h = 0; h * KR < rows; h++) { /* two passes of eight rows */
				__m512 f0 = zerov, f1 = zerov, f2 = zerov, f3 = zerov, f4 = zerov, f5 = zerov, f6 = zerov, f7 = zerov;
				for (uint32_t b = 0; b < nb; b++) {
					const __m512i c = _mm512_load_si512(wc + ((size_t)g * nb + b) * NG);
					__m512i s0 = c, s1 = c, s2 = c, s3 = c, s4 = c, s5 = c, s6 = c, s7 = c;
					/* rows 8h … 8h+3 and 8h+4 … 8h+7 of quad q: xq[q][0…3] and xq[q][16…19] */
					const uint32_t *xq = xu + (size_t)b * bl * 4 + h * 32;
					const __m512i *wb = wg + (size_t)b * quads;
#define OP_DP(q)                                                                                           \
	do {                                                                                                 \
		const __m512i w = _mm512_load_si512(wb + (q));                                               \
		const uint32_t *xr = xq + (q) / 4 * 64 + (q) % 4 * 4;                                        \
		s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32((int)xr[0]), w);                              \
		s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32((int)xr[1]), w);                              \
		s2 = _mm512_dpbusd_epi32(s2, _mm512_set1_epi32((int)xr[2]), w);                              \
		s3 = _mm512_dpbusd_epi32(s3, _mm512_set1_epi32((int)xr[3]), w);                              \
		s4 = _mm512_dpbusd_epi32(s4, _mm512_set1_epi32((int)xr[16]), w);                             \
		s5 = _mm512_dpbusd_epi32(s5, _mm512_set1_epi32((int)xr[17]), w);                             \
		s6 = _mm512_dpbusd_epi32(s6, _mm512_set1_epi32((int)xr[18]), w);                             \
		s7 = _mm512_dpbusd_epi32(s7, _mm512_set1_epi32((int)xr[19]), w);                             \
		__asm__("" : "+v"(s0), "+v"(s1), "+v"(s2), "+v"(s3), "+v"(s4), "+v"(s5), "+v"(s6), "+v"(s7)); \
	} while (0)
					/* quads is 4 (NVFP4) or 8 (MXFP4), unrolled; the empty asm keeps the eight
					 * accumulators in place (GCC otherwise rotates them through copies) */
					OP_DP(0);
					OP_DP(1);
					OP_DP(2);
					OP_DP(3);
					/* MXFP4's second sixteen, unless they are all padding (K = 16, 144, …):
					 * zeros times zeros, skipped — what was summed is unchanged */
					if (quads == 8 && b * bl + 16 < L->k) {
						OP_DP(4);
						OP_DP(5);
						OP_DP(6);
						OP_DP(7);
					}
#undef OP_DP
					/* once per block: the exact integer sums to FP32 (read as floats, less the
					 * starting bias: a subtraction, which either FP port runs, where a
					 * conversion would queue behind vpdpbusd on port 0), times sx·sw, in block
					 * order, as the reference does */
					const __m512 sw = _mm512_load_ps(ws + ((size_t)g * nb + b) * NG);
					const float *sx = xs + (size_t)b * QT + h * KR;
#define OP_SUM(s) _mm512_sub_ps(_mm512_castsi512_ps(s), sum_bias)
					f0 = _mm512_fmadd_ps(OP_SUM(s0), _mm512_mul_ps(_mm512_set1_ps(sx[0]), sw), f0);
					f1 = _mm512_fmadd_ps(OP_SUM(s1), _mm512_mul_ps(_mm512_set1_ps(sx[1]), sw), f1);
					f2 = _mm512_fmadd_ps(OP_SUM(s2), _mm512_mul_ps(_mm512_set1_ps(sx[2]), sw), f2);
					f3 = _mm512_fmadd_ps(OP_SUM(s3), _mm512_mul_ps(_mm512_set1_ps(sx[3]), sw), f3);
					f4 = _mm512_fmadd_ps(OP_SUM(s4), _mm512_mul_ps(_mm512_set1_ps(sx[4]), sw), f4);
					f5 = _mm512_fmadd_ps(OP_SUM(s5), _mm512_mul_ps(_mm512_set1_ps(sx[5]), sw), f5);
					f6 = _mm512_fmadd_ps(OP_SUM(s6), _mm512_mul_ps(_mm512_set1_ps(sx[6]), sw), f6);
					f7 = _mm512_fmadd_ps(OP_SUM(s7), _mm512_mul_ps(_mm512_set1_ps(sx[7]), sw), f7);
#undef OP_SUM
				}
				/* y = fma(acc, alpha, bias), ReLU as the reference: max(y, +0) gives +0 for
				 * y ≤ 0 and for NaN (the second operand wins); one row per store, straight-line
				 * when the pass has all eight rows (an indexed array would live on the stack) */
				const uint32_t n0 = g * NG, nn = L->n - n0 < NG ? L->n - n0 : NG;
				const __mmask16 mask = (__mmask16)(nn == 16 ? 0xffffu : (1u << nn) - 1u);
				const __m512 bv = _mm512_load_ps(bias + (size_t)g * NG);
				float *yr = Y + (size_t)(m0 + h * KR) * ldy + n0;
#define OP_OUT(j, f)                                                                                       \
	do {                                                                                                 \
		__m512 y = _mm512_fmadd_ps((f), alpha, bv);                                                  \
		_mm512_mask_storeu_ps(yr + (size_t)(j) * ldy, mask, L->relu ? _mm512_max_ps(y, zerov) : y); \
	} while (0)
				if (rows - h * KR >= KR) {
					OP_OUT(0, f0);
					OP_OUT(1, f1);
					OP_OUT(2, f2);
					OP_OUT(3, f3);
					OP_OUT(4, f4);
					OP_OUT(5, f5);
					OP_OUT(6, f6);
					OP_OUT(7, f7);
				} else {
					const __m512 f[KR] = {f0, f1, f2, f3, f4, f5, f6, f7};
					for (uint32_t j = 0; h * KR + j < rows; j++)
						OP_OUT(j, f[j]);
				}
#undef OP_OUT
			}
		}
	}
	rc = 0;
out:
	free(own_q), free(own_s), free(own_c), free(own_b), free(xu), free(xs), free(xinv), free(zero);
	return rc;
}

/* ---- W4A16 GEMM ------------------------------------------------------------------------ */
/*
 * The exact weights (op_fp4_linear.g16w, [group][k][16]) against broadcast activations: an
 * outer product of up to twelve rows by two groups of sixteen outputs, 24 accumulators, each
 * summing acc = fma(x_k, w_k, acc) for k in order — the reference's arithmetic, so bit-exact.
 */
#define WR 12 /* rows per W4A16 pass */

static inline __attribute__((always_inline)) void w4a16_tile(const op_fp4_linear *L, const float *X, size_t ldx,
							       uint32_t g, const int G, const int R, float *Y,
							       size_t ldy)
{
	const uint32_t kp = L->w.cols, kk = L->k;
	const float *w0 = L->g16w + (size_t)g * kp * 16, *w1 = w0 + (size_t)kp * 16;
	__m512 a0[WR], a1[WR];
#pragma GCC unroll 12
	for (int r = 0; r < R; r++)
		a0[r] = a1[r] = _mm512_setzero_ps();
	for (uint32_t k = 0; k < kk; k++) {
		const __m512 wa = _mm512_load_ps(w0 + (size_t)k * 16), wb = G == 2 ? _mm512_load_ps(w1 + (size_t)k * 16) : wa;
#pragma GCC unroll 12
		for (int r = 0; r < R; r++) {
			const __m512 x = _mm512_set1_ps(X[(size_t)r * ldx + k]);
			a0[r] = _mm512_fmadd_ps(x, wa, a0[r]);
			if (G == 2)
				a1[r] = _mm512_fmadd_ps(x, wb, a1[r]);
		}
	}
	const __m512 gw = _mm512_set1_ps(L->w.tensor_scale), zero = _mm512_setzero_ps();
	for (int h = 0; h < G; h++) {
		const uint32_t n0 = (g + (uint32_t)h) * NG, nn = L->n - n0 < NG ? L->n - n0 : NG;
		const __mmask16 mask = (__mmask16)(nn == 16 ? 0xffffu : (1u << nn) - 1u);
		const __m512 bv = _mm512_load_ps(L->g16b + (size_t)(g + (uint32_t)h) * NG);
#pragma GCC unroll 12
		for (int r = 0; r < R; r++) {
			const __m512 y = _mm512_fmadd_ps(h ? a1[r] : a0[r], gw, bv); /* y = fma(acc, gw, bias) */
			_mm512_mask_storeu_ps(Y + (size_t)r * ldy + n0, mask, L->relu ? _mm512_max_ps(y, zero) : y);
		}
	}
}

static void w4a16_rows(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t g, int G, int R, float *Y,
		       size_t ldy)
{
#define OP_W16(r)                                                                                  \
	do {                                                                                         \
		if (G == 2)                                                                          \
			w4a16_tile(L, X, ldx, g, 2, (r), Y, ldy);                                     \
		else                                                                                 \
			w4a16_tile(L, X, ldx, g, 1, (r), Y, ldy);                                     \
	} while (0)
	switch (R) {
	case 12: OP_W16(12); break;
	case 8: OP_W16(8); break;
	case 4: OP_W16(4); break;
	case 2: OP_W16(2); break;
	default: OP_W16(1); break;
	}
#undef OP_W16
}

static int gemm_w4a16(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy)
{
	if (!L->g16w || !L->g16b)
		return op_fp4_gemm_avx2(L, OP_W4A16, X, ldx, M, Y, ldy);
	const uint32_t ngroups = (L->n + NG - 1) / NG;
	for (uint32_t m0 = 0; m0 < M;) { /* twelve rows at a time, the rest by 8, 4, 2, 1 */
		const uint32_t left = M - m0;
		const int R = left >= 12 ? 12 : left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
		for (uint32_t g = 0; g < ngroups; g += 2)
			w4a16_rows(L, X + (size_t)m0 * ldx, ldx, g, g + 1 < ngroups ? 2 : 1, R, Y + (size_t)m0 * ldy, ldy);
		m0 += (uint32_t)R;
	}
	return 0;
}

/* Whether n scale bytes hold an E8M0 code 0 (2^-127, a subnormal): shifted into a float's
 * exponent it would read as 0. The W4A4 GEMV looks once per row and chunk and only then pays for
 * the fix-up (an instruction per step, 4-5 % at M = 1; the look costs nothing measurable there).
 * The quantizers never write code 0; a model file may hold it. The W4A16 GEMV with X in 16 bits
 * also looks for a scale above OP_A16_MAX_SCALE_CODE (fp4_gemm.h), which it cannot carry.
 * Bit 0: a code 0; bit 1: a code above that. */
static int e8m0_scan(const uint8_t *sc, size_t n)
{
	int f = 0;
	for (size_t i = 0; i < n; i += 64) {
		const __mmask64 in = n - i >= 64 ? ~0ull : (1ull << (n - i)) - 1;
		const __m512i v = _mm512_maskz_loadu_epi8(in, sc + i);
		f |= _mm512_mask_testn_epi8_mask(in, v, _mm512_set1_epi8(-1)) ? 1 : 0;
		f |= _mm512_mask_cmpgt_epu8_mask(in, v, _mm512_set1_epi8((char)OP_A16_MAX_SCALE_CODE)) ? 2 : 0;
	}
	return f;
}

/* ---- W4A4 GEMV: 128 weights per step --------------------------------------------------- */
/*
 * One 512-bit load brings 128 codes; one vpshufb per nibble half turns them into doubled signed
 * weights (even elements from the low nibbles, odd from the high). The activations are laid out
 * once per call in the same order as magnitudes (unsigned) with their signs as a 64-bit mask
 * that moves onto the weights (a masked negate), so one vpdpbusd sums four exact products per
 * int32 lane; lane l holds elements 8l … 8l+7 of the step (half in each vector), so each lane's
 * sum is inside one block and becomes FP32 once, times its block's scales. Sums in another
 * order than the reference: equal to rounding.
 */
#define GV_ROWS 4 /* rows of X per pass over the weights */

/*
 * The GEMVs take the rows of X in passes of four, then the rest (M % 4) in one last pass, and
 * K in chunks: once a pass's activations (step_bytes a row per 128-step) exceed 32 KiB, each
 * chunk holds as many steps as keep them in 16 KiB, so they stay in L1 while every output of the
 * range passes over them (whole rows came from L2 on every output: at K = 16,384 the W4A4 GEMV
 * ran 10-20 % slower per weight at two to five rows). The width follows the pass's rows: a
 * fixed 1,024-wide chunk cut one row's codes into 512-byte pieces a row apart, and the W4A16
 * GEMV ran at 42 % of its speed at K = 16,384. W4A16 with X in 16 bits (384 bytes a step): four
 * rows 10 steps, one 42; in FP32 (512): four rows 8, one 32; W4A4 (208): four rows 19, one 78.
 */
/*
 * Every loop over the rows of a pass (MM, a constant per call site) is unrolled by pragma:
 * left to itself GCC 12 unrolled it for one row but not for two to four, and kept those rows'
 * accumulators on the stack, a store and a reload on every step. The W4A4 GEMV at K = N =
 * 4,096 took 896 µs for two rows against 240 µs for one (one core, AMD EPYC with AVX-512,
 * 2026-12-02); unrolled, 372 µs. docs/benchmarks.md, "AMD EPYC with AVX-512".
 */
static inline uint32_t gemv_pass_rows(uint32_t left)
{
	return left >= GV_ROWS ? left / GV_ROWS * GV_ROWS : left;
}

static inline uint32_t gemv_chunk_steps(uint32_t pass_rows, uint32_t steps, size_t step_bytes)
{
	const size_t rows = pass_rows < GV_ROWS ? pass_rows : GV_ROWS;
	return rows * steps * step_bytes <= 32768 ? steps : (uint32_t)(16384 / (rows * step_bytes));
}

/* Row n's codes and scales from step G0 on, and the next row's (row n's own for the last of the
 * range), which the row kernels prefetch. */
typedef struct gemv_rowp {
	const uint8_t *codes, *sc, *next_codes, *next_sc;
} gemv_rowp;

static inline gemv_rowp gemv_row_ptrs(const op_fp4_tensor *W, uint32_t n, uint32_t n1, uint32_t G0)
{
	const uint32_t K = W->cols, nb = K / op_fp4_block(W->format);
	const uint32_t sco = G0 * (W->format == OP_FP4_NVFP4 ? 8u : 4u); /* step G0's first scale of a row */
	const uint32_t nx = n + 1 < n1 ? n + 1 : n;
	return (gemv_rowp){W->codes + (size_t)n * K / 2 + (size_t)G0 * 64, W->scales + (size_t)n * nb + sco,
			   W->codes + (size_t)nx * K / 2 + (size_t)G0 * 64, W->scales + (size_t)nx * nb + sco};
}

/* A pass's outputs of row n, times g: written by the first chunk, added to by the others. */
static inline void gemv_store(float *Y, const op_fp4_tensor *W, uint32_t m0, uint32_t mm, uint32_t n, uint32_t G0,
			      const float *out, float g)
{
	for (uint32_t m = 0; m < mm; m++) {
		float *y = &Y[(size_t)(m0 + m) * W->rows + n];
		*y = G0 ? *y + out[m] * g : out[m] * g;
	}
}

static inline __attribute__((always_inline)) void gemv_row(const uint8_t *codes, const uint8_t *sc, int nv,
							     int z0, uint32_t steps, uint32_t stride, const uint8_t *xa,
							     const __mmask64 *xneg, const float *xsv, float *out, const int MM,
							     const uint8_t *next_codes, const uint8_t *next_sc)
{
	const __m512i tab = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12));
	const __m512i lo4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
	const __m512i idx = nv ? _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)
			       : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
	const __m512 two120 = _mm512_set1_ps(0x1p120f);
	__m512 alo[GV_ROWS], ahi[GV_ROWS];
	_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++)
		alo[m] = ahi[m] = _mm512_setzero_ps();
	for (uint32_t G = 0; G < steps; G++) {
		/* the next row's codes and scales, a line per step: one core streams a row at a time
		 * and would otherwise wait on each line in turn */
		_mm_prefetch((const char *)(next_codes + (size_t)G * 64), _MM_HINT_T0);
		if (G * 64 < steps * (nv ? 8u : 4u))
			_mm_prefetch((const char *)(next_sc + (size_t)G * 64), _MM_HINT_T0);
		const __m512i c = _mm512_loadu_si512(codes + (size_t)G * 64);
		const __m512i wl = _mm512_shuffle_epi8(tab, _mm512_and_si512(c, lo4));
		const __m512i wh = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(c, 4), lo4));
		__m512 ws;
		if (nv) { /* E4M3 code << 20 read as a float is the value · 2^-120 (subnormals too) */
			__m512i b = _mm512_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + (size_t)G * 8)));
			ws = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_permutexvar_epi32(idx, b), 20)), two120);
		} else { /* E8M0 code << 23 is the value; code 0 (z0: 2^-127, a subnormal) is 0x00400000 */
			int32_t four;
			memcpy(&four, sc + (size_t)G * 4, 4);
			__m512i b = _mm512_slli_epi32(_mm512_permutexvar_epi32(idx, _mm512_cvtepu8_epi32(_mm_cvtsi32_si128(four))), 23);
			ws = _mm512_castsi512_ps(z0 ? _mm512_max_epu32(b, _mm512_set1_epi32(0x400000)) : b);
		}
		_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++) {
			const size_t at = ((size_t)m * stride + G) * 128;
			const __mmask64 nl = xneg[((size_t)m * stride + G) * 2], nh = xneg[((size_t)m * stride + G) * 2 + 1];
			const __m512i pl = _mm512_dpbusd_epi32(zero, _mm512_load_si512(xa + at), _mm512_mask_sub_epi8(wl, nl, zero, wl));
			const __m512i ph = _mm512_dpbusd_epi32(zero, _mm512_load_si512(xa + at + 64), _mm512_mask_sub_epi8(wh, nh, zero, wh));
			const __m512 sv = _mm512_mul_ps(_mm512_load_ps(xsv + ((size_t)m * stride + G) * 16), ws);
			alo[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pl), sv, alo[m]);
			ahi[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ph), sv, ahi[m]);
		}
	}
	_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++)
		out[m] = _mm512_reduce_add_ps(_mm512_add_ps(alo[m], ahi[m]));
}

/* ---- W4A16 GEMV: 128 weights per step, FP32 products (X that 16 bits cannot carry) ------- */
/*
 * vpermps reads the low four bits of each 32-bit index, so a step's 128 codes (64 bytes, eight
 * per 32-bit lane) become eight vectors of weights by lookups in a 16-float table of E2M1
 * values: vector j, lane l holds element 8l + j. The even elements need no shift: a load at
 * byte offset o puts byte 4l + o at the bottom of lane l, so its low nibble (element 8l + 2o)
 * is the index; one shift by 4 gives the odd neighbour. Four loads and four shifts instead of
 * one load and seven shifts: the loop is bound by its instructions, not by memory
 * (gemv_core_rate in outpost-bench kernels), and the loads go to ports the shifts and lookups
 * do not use. Lane l's eight elements lie in one block (16 or 32 long), so one scale vector
 * serves the step: its products are summed in one chain, then scaled once. The scales of two
 * steps are decoded together (sixteen NVFP4 or eight MXFP4 bytes) and spread to their lanes by
 * one lookup per step. The activations are laid out once per call in the same order
 * (xp[m][step][j][l]). Sums in another order than the reference: equal to rounding.
 */
static inline __attribute__((always_inline)) void w16_step(const uint8_t *c8, int last, __m512 ws, const float *xp,
							     size_t xstride, __m512 *acc, const int MM)
{
	const __m512 lut = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f,
					  -3.0f, -4.0f, -6.0f);
	__m512 w[8];
#pragma GCC unroll 4
	for (int o = 0; o < 4; o++) {
		/* the tensor's last step: a load at offset o would read o bytes past its codes (bytes
		 * that only reach the ignored top of lane 15), so those are masked off */
		const __m512i c = last && o ? _mm512_maskz_loadu_epi8(~0ull >> o, c8 + o) : _mm512_loadu_si512(c8 + o);
		w[2 * o] = _mm512_permutexvar_ps(c, lut);
		w[2 * o + 1] = _mm512_permutexvar_ps(_mm512_srli_epi32(c, 4), lut);
	}
	_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++) {
		const float *x = xp + (size_t)m * xstride;
		__m512 p = _mm512_mul_ps(w[0], _mm512_load_ps(x));
#pragma GCC unroll 7
		for (int j = 1; j < 8; j++)
			p = _mm512_fmadd_ps(w[j], _mm512_load_ps(x + 16 * j), p);
		acc[m] = _mm512_fmadd_ps(p, ws, acc[m]);
	}
}

/* Steps G and G + 1 (when two): their scales decoded together, sixteen NVFP4 or eight MXFP4
 * bytes, spread to the lanes by one lookup per step. last: these end the tensor. */
static inline __attribute__((always_inline)) void w16_steps(const uint8_t *codes, const uint8_t *sc, const int nv,
							      uint32_t G, int two, int last, const float *xp, size_t xstride,
							      __m512 *acc, const int MM)
{
	/* lane l of a step reads scale l / 2 (NVFP4) or l / 4 (MXFP4) of the step's own */
	const __m512i dup0 = nv ? _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)
				: _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
	const __m512i dup1 = _mm512_add_epi32(dup0, _mm512_set1_epi32(nv ? 8 : 4));
	__m128i b;
	if (nv)
		b = two ? _mm_loadu_si128((const __m128i *)(sc + (size_t)G * 8))
			: _mm_loadl_epi64((const __m128i *)(sc + (size_t)G * 8));
	else if (two)
		b = _mm_loadl_epi64((const __m128i *)(sc + (size_t)G * 4));
	else {
		int32_t four;
		memcpy(&four, sc + (size_t)G * 4, 4);
		b = _mm_cvtsi32_si128(four);
	}
	__m512 s;
	if (nv) /* E4M3 code << 20 read as a float is the value · 2^-120 (subnormals too) */
		s = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu8_epi32(b), 20)), _mm512_set1_ps(0x1p120f));
	else /* E8M0 code << 23 is the value; code 0 (2^-127, a subnormal) is 0x00400000, the least. The
	      * max costs MXFP4 2-3 % at M = 1, as much as looking for code 0 in each row's scales. */
		s = _mm512_castsi512_ps(_mm512_max_epu32(_mm512_slli_epi32(_mm512_cvtepu8_epi32(b), 23), _mm512_set1_epi32(0x400000)));
	w16_step(codes + (size_t)G * 64, last && !two, _mm512_permutexvar_ps(dup0, s), xp + (size_t)G * 128, xstride, acc,
		 MM);
	if (two)
		w16_step(codes + (size_t)G * 64 + 64, last, _mm512_permutexvar_ps(dup1, s), xp + (size_t)G * 128 + 128, xstride,
			 acc, MM);
}

/* A row's (or a chunk of it) outputs for MM rows of X; last: this chunk ends the tensor. */
static inline __attribute__((always_inline)) void gemv16_row(const uint8_t *codes, const uint8_t *sc, const int nv,
							       uint32_t steps, int last, const float *xp, size_t xstride,
							       float *out, const int MM, const uint8_t *next_codes,
							       const uint8_t *next_sc)
{
	const uint32_t scb = steps * (nv ? 8u : 4u); /* scale bytes of the chunk */
	__m512 acc[GV_ROWS];
	_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++)
		acc[m] = _mm512_setzero_ps();
	uint32_t G = 0;
	for (; G + 2 < steps; G += 2) {
		/* the next row's codes and scales, a line per step: one core streams a row at a time
		 * and would otherwise wait on each line in turn */
		_mm_prefetch((const char *)(next_codes + (size_t)G * 64), _MM_HINT_T0);
		_mm_prefetch((const char *)(next_codes + (size_t)G * 64 + 64), _MM_HINT_T0);
		if (G * 32 < scb)
			_mm_prefetch((const char *)(next_sc + (size_t)G * 32), _MM_HINT_T0);
		w16_steps(codes, sc, nv, G, 1, 0, xp, xstride, acc, MM);
	}
	/* the last one or two steps */
	_mm_prefetch((const char *)(next_codes + (size_t)G * 64), _MM_HINT_T0);
	_mm_prefetch((const char *)(next_codes + (size_t)steps * 64 - 64), _MM_HINT_T0);
	w16_steps(codes, sc, nv, G, steps - G == 2, last, xp, xstride, acc, MM);
	_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++)
		out[m] = _mm512_reduce_add_ps(acc[m]);
}

static int gemv_w4a16(const op_fp4_tensor *W, const float *X, uint32_t M, float *Y, uint32_t n0, uint32_t n1)
{
	const uint32_t K = W->cols, steps = K / 128;
	const int nv = W->format == OP_FP4_NVFP4;
	float *xp = aligned_alloc(64, (size_t)M * K * sizeof(float));
	if (!xp)
		return -ENOMEM;
	const __m512i by8 = _mm512_setr_epi32(0, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120);
	for (uint32_t m = 0; m < M; m++)
		for (uint32_t G = 0; G < steps; G++)
			for (uint32_t j = 0; j < 8; j++) /* lane l: element 8l + j */
				_mm512_store_ps(xp + ((size_t)m * steps + G) * 128 + j * 16,
						_mm512_i32gather_ps(by8, X + (size_t)m * K + G * 128 + j, 4));
	/* passes of rows and chunks of K: gemv_chunk_steps */
	float out[GV_ROWS];
	for (uint32_t r0 = 0; r0 < M;) {
		const uint32_t rows = gemv_pass_rows(M - r0), cs = gemv_chunk_steps(rows, steps, 128 * sizeof(float));
		for (uint32_t G0 = 0; G0 < steps; G0 += cs) {
			const uint32_t gs = steps - G0 < cs ? steps - G0 : cs;
			for (uint32_t m0 = r0; m0 < r0 + rows; m0 += GV_ROWS) {
				const uint32_t mm = r0 + rows - m0 < GV_ROWS ? r0 + rows - m0 : GV_ROWS;
				const float *a = xp + (size_t)m0 * K + (size_t)G0 * 128;
				for (uint32_t n = n0; n < n1; n++) {
					const gemv_rowp rp = gemv_row_ptrs(W, n, n1, G0);
					const uint8_t *codes = rp.codes, *sc = rp.sc, *pc = rp.next_codes, *ps = rp.next_sc;
					const int last = n + 1 == W->rows && G0 + gs == steps;
#define ROW(NV, MM) gemv16_row(codes, sc, NV, gs, last, a, K, out, MM, pc, ps)
					switch (mm * 2 + nv) {
					case 9: ROW(1, 4); break;
					case 8: ROW(0, 4); break;
					case 7: ROW(1, 3); break;
					case 6: ROW(0, 3); break;
					case 5: ROW(1, 2); break;
					case 4: ROW(0, 2); break;
					case 3: ROW(1, 1); break;
					default: ROW(0, 1); break;
					}
#undef ROW
					gemv_store(Y, W, m0, mm, n, G0, out, W->tensor_scale);
				}
			}
		}
		r0 += rows;
	}
	free(xp);
	return 0;
}

/* ---- W4A16 GEMV with X in 16 bits: 128 weights per step, vpdpbusd ----------------------- */
/*
 * The AVX2 rung's 16-bit activations (fp4_gemm_avx2.c, gemv_a16_prepare: per weight block
 * q = round(x / sx), |q| ≤ 32,512, sx = max|x| / 32,512, q = 256·h + l in signed bytes), here
 * against a step's 128 codes: the doubled codes + 12 (unsigned bytes, by one in-lane lookup for
 * the low nibbles and one for the high) meet l and h in four vpdpbusd a row, where the FP32 path
 * spends eight lookups shared by the rows and eight FMAs a row (a Xeon with AVX-512, 2026-12-03,
 * K = N = 4,096, one row: one core 25.6-26.3 G weights/s in FP32, bound by those instructions;
 * 34.9 this way. docs/benchmarks.md, "Intel Xeon with AMX").
 * Lane L holds elements 8L … 8L+7, of one block; its l sum starts from −12·Σq of them (the +12
 * taken back), h's is shifted into place, and one FMA applies sx·sw. Same numbers as the AVX2
 * rung's, summed in another order: the error bound of fp4_gemm.h.
 */
static int a16_prepare(const float *X, uint32_t M, uint32_t K, uint32_t bl, int8_t *xq, int32_t *xc, float *xsv)
{
	const uint32_t steps = K / 128;
	const __m128i split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
	for (uint32_t m = 0; m < M; m++)
		for (uint32_t G = 0; G < steps; G++) {
			const float *v = X + (size_t)m * K + (size_t)G * 128;
			int8_t *d = xq + ((size_t)m * steps + G) * 256; /* l evens, l odds, h evens, h odds */
			int32_t q[128];
			float sx[8];
			for (uint32_t b = 0; b < 128 / bl; b++) {
				__m512 a = _mm512_abs_ps(_mm512_loadu_ps(v + b * bl));
				if (bl == 32)
					a = _mm512_max_ps(a, _mm512_abs_ps(_mm512_loadu_ps(v + b * bl + 16)));
				/* NaN and ∞ (16 bits cannot carry them) and blocks out of range: the FP32 path */
				if (_mm512_cmp_ps_mask(a, _mm512_set1_ps(FLT_MAX), _CMP_NLE_UQ))
					return 1;
				const float amax = _mm512_reduce_max_ps(a);
				if (amax != 0.0f && (amax < 0x1p-40f || amax > 0x1p40f))
					return 1;
				sx[b] = amax / 32512.0f; /* q rounds against the very scale it is rebuilt with */
				const __m512d inv = _mm512_set1_pd(amax > 0.0f ? 1.0 / (double)sx[b] : 0.0);
				const __m512d lim = _mm512_set1_pd(32512.0);
				for (uint32_t i = 0; i < bl; i += 8) {
					__m512d r = _mm512_roundscale_pd(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(v + b * bl + i)), inv),
									 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
					r = _mm512_min_pd(_mm512_max_pd(r, _mm512_sub_pd(_mm512_setzero_pd(), lim)), lim);
					_mm256_storeu_si256((__m256i *)(q + b * bl + i), _mm512_cvtpd_epi32(r));
				}
			}
			for (uint32_t j = 0; j < 8; j++) { /* sixteen elements: lanes 2j and 2j + 1 */
				const __m512i qv = _mm512_loadu_si512(q + 16 * j);
				const __m512i h = _mm512_srai_epi32(_mm512_add_epi32(qv, _mm512_set1_epi32(128)), 8);
				const __m512i l = _mm512_sub_epi32(qv, _mm512_slli_epi32(h, 8));
				const __m128i lb = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(l), split);
				const __m128i hb = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(h), split);
				_mm_storel_epi64((__m128i *)(d + 8 * j), lb);
				_mm_storel_epi64((__m128i *)(d + 64 + 8 * j), _mm_unpackhi_epi64(lb, lb));
				_mm_storel_epi64((__m128i *)(d + 128 + 8 * j), hb);
				_mm_storel_epi64((__m128i *)(d + 192 + 8 * j), _mm_unpackhi_epi64(hb, hb));
			}
			for (uint32_t L = 0; L < 16; L++) {
				int32_t s = 0;
				for (uint32_t e = 0; e < 8; e++)
					s += q[8 * L + e];
				xc[((size_t)m * steps + G) * 16 + L] = -12 * s;
				xsv[((size_t)m * steps + G) * 16 + L] = sx[8 * L / bl] * 0x1p31f;
			}
		}
	return 0;
}

static inline __attribute__((always_inline)) void gemv16q_row(const uint8_t *codes, const uint8_t *sc, int nv, int z0,
								uint32_t steps, uint32_t stride, const int8_t *xq,
								const int32_t *xc, const float *xsv, float *out, const int MM,
								const uint8_t *next_codes, const uint8_t *next_sc)
{
	const __m512i tab = _mm512_broadcast_i32x4(_mm_setr_epi8(12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0));
	const __m512i lo4 = _mm512_set1_epi8(0x0f), zero = _mm512_setzero_si512();
	const __m512i idx = nv ? _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)
			       : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
	const __m512 two120 = _mm512_set1_ps(0x1p120f);
	__m512 acc[GV_ROWS];
	_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++)
		acc[m] = _mm512_setzero_ps();
	for (uint32_t G = 0; G < steps; G++) {
		_mm_prefetch((const char *)(next_codes + (size_t)G * 64), _MM_HINT_T0);
		if (G * 64 < steps * (nv ? 8u : 4u))
			_mm_prefetch((const char *)(next_sc + (size_t)G * 64), _MM_HINT_T0);
		const __m512i c = _mm512_loadu_si512(codes + (size_t)G * 64);
		const __m512i wl = _mm512_shuffle_epi8(tab, _mm512_and_si512(c, lo4));
		const __m512i wh = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(c, 4), lo4));
		__m512 ws;
		if (nv) { /* as gemv_row */
			__m512i b = _mm512_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(sc + (size_t)G * 8)));
			ws = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_permutexvar_epi32(idx, b), 20)), two120);
		} else {
			int32_t four;
			memcpy(&four, sc + (size_t)G * 4, 4);
			__m512i b = _mm512_slli_epi32(_mm512_permutexvar_epi32(idx, _mm512_cvtepu8_epi32(_mm_cvtsi32_si128(four))), 23);
			ws = _mm512_castsi512_ps(z0 ? _mm512_max_epu32(b, _mm512_set1_epi32(0x400000)) : b);
		}
		_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++) {
			const size_t at = (size_t)m * stride + G;
			const int8_t *x = xq + at * 256;
			__m512i dl = _mm512_dpbusd_epi32(_mm512_load_si512(xc + at * 16), wl, _mm512_load_si512(x));
			dl = _mm512_dpbusd_epi32(dl, wh, _mm512_load_si512(x + 64));
			__m512i dh = _mm512_dpbusd_epi32(zero, wl, _mm512_load_si512(x + 128));
			dh = _mm512_dpbusd_epi32(dh, wh, _mm512_load_si512(x + 192));
			const __m512 sv = _mm512_mul_ps(_mm512_load_ps(xsv + at * 16), ws);
			acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_slli_epi32(dh, 8), dl)), sv, acc[m]);
		}
	}
	_Pragma("GCC unroll 4") for (int m = 0; m < MM; m++)
		out[m] = _mm512_reduce_add_ps(acc[m]);
}

/* 1: X, or a block scale of W, cannot be carried this way (gemv_w4a16 then runs); else 0 or
 * -ENOMEM. */
static int gemv_w4a16_q(const op_fp4_tensor *W, const float *X, uint32_t M, float *Y, uint32_t n0, uint32_t n1)
{
	const uint32_t K = W->cols, steps = K / 128;
	const int nv = W->format == OP_FP4_NVFP4;
	int8_t *xq = aligned_alloc(64, (size_t)M * steps * 256);
	int32_t *xc = aligned_alloc(64, (size_t)M * steps * 16 * sizeof(int32_t));
	float *xsv = aligned_alloc(64, (size_t)M * steps * 16 * sizeof(float));
	int rc = -ENOMEM;
	if (!xq || !xc || !xsv)
		goto out;
	rc = a16_prepare(X, M, K, op_fp4_block(W->format), xq, xc, xsv);
	if (rc)
		goto out;
	const float g = 0x1p-32f * W->tensor_scale; /* doubled codes, sx · 2^31: exact */
	const size_t step_bytes = 256 + 16 * (sizeof(int32_t) + sizeof(float));
	float out[GV_ROWS];
	for (uint32_t r0 = 0; r0 < M;) {
		const uint32_t rows = gemv_pass_rows(M - r0), cs = gemv_chunk_steps(rows, steps, step_bytes);
		for (uint32_t G0 = 0; G0 < steps; G0 += cs) {
			const uint32_t gs = steps - G0 < cs ? steps - G0 : cs;
			for (uint32_t m0 = r0; m0 < r0 + rows; m0 += GV_ROWS) {
				const uint32_t mm = r0 + rows - m0 < GV_ROWS ? r0 + rows - m0 : GV_ROWS;
				const size_t at = (size_t)m0 * steps + G0;
				const int8_t *a = xq + at * 256;
				const int32_t *xcc = xc + at * 16;
				const float *sv = xsv + at * 16;
				for (uint32_t n = n0; n < n1; n++) {
					const gemv_rowp rp = gemv_row_ptrs(W, n, n1, G0);
					const uint8_t *codes = rp.codes, *sc = rp.sc, *pc = rp.next_codes, *ps = rp.next_sc;
					const int f = nv ? 0 : e8m0_scan(sc, (size_t)gs * 4), z0 = f & 1;
					if (f & 2) { /* the FP32 path, for the whole call (it writes every output) */
						rc = 1;
						goto out;
					}
					switch (mm) {
					case 4: gemv16q_row(codes, sc, nv, z0, gs, steps, a, xcc, sv, out, 4, pc, ps); break;
					case 3: gemv16q_row(codes, sc, nv, z0, gs, steps, a, xcc, sv, out, 3, pc, ps); break;
					case 2: gemv16q_row(codes, sc, nv, z0, gs, steps, a, xcc, sv, out, 2, pc, ps); break;
					default: gemv16q_row(codes, sc, nv, z0, gs, steps, a, xcc, sv, out, 1, pc, ps); break;
					}
					gemv_store(Y, W, m0, mm, n, G0, out, g);
				}
			}
		}
		r0 += rows;
	}
	rc = 0;
out:
	free(xq), free(xc), free(xsv);
	return rc;
}

int op_fp4_gemv_avx512(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		       float *Y, uint32_t n0, uint32_t n1)
{
	const uint32_t K = W->cols, bl = op_fp4_block(W->format), nb = K / bl, steps = K / 128;
	if (K % 128)
		return op_fp4_gemv_avx2(W, mode, act_scale, mx_mode, X, M, Y, n0, n1);
	if (mode == OP_W4A16) {
		const int rc = gemv_w4a16_q(W, X, M, Y, n0, n1);
		return rc <= 0 ? rc : gemv_w4a16(W, X, M, Y, n0, n1);
	}
	const int nv = W->format == OP_FP4_NVFP4;
	int rc = -ENOMEM;
	uint8_t *xa = aligned_alloc(64, (size_t)M * K);
	/* aligned_alloc wants a size that is a multiple of the alignment */
	__mmask64 *xneg = aligned_alloc(64, ((size_t)M * steps * 2 * sizeof(__mmask64) + 63) / 64 * 64);
	float *xsv = aligned_alloc(64, (size_t)M * steps * 16 * sizeof(float));
	int8_t *q2 = malloc(K);
	float *xs = malloc(nb * sizeof(float)), *pad = malloc(K * sizeof(float));
	if (!xa || !xneg || !xsv || !q2 || !xs || !pad)
		goto out;
	const op_fp4_linear shape = {.w = *W, .k = K, .mx_mode = mx_mode, .act_scale = act_scale > 0 ? act_scale : 1.0f};
	for (uint32_t m = 0; m < M; m++) {
		op_fp4_quantize_row_avx2(&shape, X + (size_t)m * K, q2, xs, pad);
		/* per step: the 64 even elements (low nibbles) then the 64 odd ones, as magnitudes, and
		 * their signs as two masks: an in-lane byte shuffle puts each 16 bytes' evens before
		 * their odds, a qword permute gathers them */
		const __m512i split = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
		const __m512i ev = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), od = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
		for (uint32_t G = 0; G < steps; G++) {
			uint8_t *da = xa + ((size_t)m * steps + G) * 128;
			__m512i a = _mm512_shuffle_epi8(_mm512_loadu_si512(q2 + G * 128), split);
			__m512i b = _mm512_shuffle_epi8(_mm512_loadu_si512(q2 + G * 128 + 64), split);
			__m512i e = _mm512_permutex2var_epi64(a, ev, b), o = _mm512_permutex2var_epi64(a, od, b);
			_mm512_store_si512(da, _mm512_abs_epi8(e));
			_mm512_store_si512(da + 64, _mm512_abs_epi8(o));
			xneg[((size_t)m * steps + G) * 2] = _mm512_movepi8_mask(e);
			xneg[((size_t)m * steps + G) * 2 + 1] = _mm512_movepi8_mask(o);
			for (uint32_t l = 0; l < 16; l++) /* lane l: elements 8l … 8l+7 of the step */
				xsv[((size_t)m * steps + G) * 16 + l] = xs[(G * 128 + 8 * l) / bl];
		}
	}
	const float g = 0.25f * (nv ? shape.act_scale : 1.0f) * W->tensor_scale;
	/* passes of rows and chunks of K: gemv_chunk_steps; a step's activations take 208 bytes a row
	 * (128 magnitudes, two sign masks, 16 scales) */
	const size_t step_bytes = 128 + 2 * sizeof(__mmask64) + 16 * sizeof(float);
	float out[GV_ROWS];
	for (uint32_t r0 = 0; r0 < M;) {
		const uint32_t rows = gemv_pass_rows(M - r0), cs = gemv_chunk_steps(rows, steps, step_bytes);
		for (uint32_t G0 = 0; G0 < steps; G0 += cs) {
			const uint32_t gs = steps - G0 < cs ? steps - G0 : cs;
			for (uint32_t m0 = r0; m0 < r0 + rows; m0 += GV_ROWS) {
				const uint32_t mm = r0 + rows - m0 < GV_ROWS ? r0 + rows - m0 : GV_ROWS;
				const uint8_t *a = xa + ((size_t)m0 * steps + G0) * 128;
				const __mmask64 *ng = xneg + ((size_t)m0 * steps + G0) * 2;
				const float *sv = xsv + ((size_t)m0 * steps + G0) * 16;
				for (uint32_t n = n0; n < n1; n++) {
					const gemv_rowp rp = gemv_row_ptrs(W, n, n1, G0);
					const uint8_t *codes = rp.codes, *sc = rp.sc, *pc = rp.next_codes, *ps = rp.next_sc;
					const int z0 = !nv && (e8m0_scan(sc, (size_t)gs * 4) & 1);
					switch (mm) {
					case 4: gemv_row(codes, sc, nv, z0, gs, steps, a, ng, sv, out, 4, pc, ps); break;
					case 3: gemv_row(codes, sc, nv, z0, gs, steps, a, ng, sv, out, 3, pc, ps); break;
					case 2: gemv_row(codes, sc, nv, z0, gs, steps, a, ng, sv, out, 2, pc, ps); break;
					default: gemv_row(codes, sc, nv, z0, gs, steps, a, ng, sv, out, 1, pc, ps); break;
					}
					gemv_store(Y, W, m0, mm, n, G0, out, g);
				}
			}
		}
		r0 += rows;
	}
	rc = 0;
out:
	free(xa), free(xneg), free(xsv), free(q2), free(xs), free(pad);
	return rc;
}

int op_fp4_gemm_avx512(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y,
		       size_t ldy)
{
	if (mode == OP_W4A4)
		return gemm_w4a4(L, X, ldx, M, Y, ldy);
	return gemm_w4a16(L, X, ldx, M, Y, ldy);
}
#endif
