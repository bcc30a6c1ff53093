/*
 * test_fp4_kernels.c — FP4 tensors and the kernel ladder.
 *  - scalar conversions at their documented values (runs everywhere, qemu-aarch64 included);
 *  - quantize/dequantize: the packing convention, exact round trips of representable tensors,
 *    error bounds on random ones, both MXFP4 scale modes;
 *  - the 128×4 scale tiling against the formula written out independently;
 *  - the scalar W4A4 reference against the same products computed in double from dequantized
 *    operands (so the reference itself is right);
 *  - every rung the machine has against the scalar reference, bit for bit, for GEMM in both
 *    modes and formats and for pooling, on shapes with ragged edges; GEMV to rounding.
 */
#include <math.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/fp4_gemm.h"

static uint64_t rs = 88172645463325252ull;
static float frand(void) /* roughly N(0,1)-ish, heavy enough tails to exercise saturation */
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	float u = (float)(rs >> 40) / (float)(1u << 24);
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	float v = (float)(rs >> 40) / (float)(1u << 24);
	return (u - 0.5f) * 4 * (v < 0.05f ? 20.0f : 1.0f);
}

static float *frand_array(size_t n) /* n values of frand(), in order; free() it */
{
	float *a = malloc(n * sizeof(float));
	for (size_t i = 0; a && i < n; i++)
		a[i] = frand();
	return a;
}

static void test_scalars(void)
{
	static const float in[] = {0.25f, 0.26f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 5.01f, 100.0f, -0.1f, -3.0f};
	static const uint8_t want[] = {0, 1, 2, 2, 4, 4, 6, 6, 7, 7, 8, 13};
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		CHECK_EQ_U64(op_e2m1_from_float(in[i]), want[i]);
	CHECK_EQ_U64(op_e2m1_from_float(NAN), 7);
	CHECK_EQ_U64(op_e4m3_from_float(448.0f), 0x7e);
	CHECK_EQ_U64(op_e4m3_from_float(1e9f), 0x7e);
	CHECK_EQ_U64(op_e4m3_from_float(-1e9f), 0xfe);
	CHECK_EQ_U64(op_e4m3_from_float(1.0f), 0x38);
	CHECK_EQ_U64(op_e4m3_from_float(1.0f / 512), 0x01); /* smallest subnormal */
	CHECK_EQ_U64(op_e4m3_from_float(1.0f / 1024), 0x00);  /* tie to even: 0 */
	CHECK_EQ_U64(op_e4m3_from_float(NAN), 0x7f);
	CHECK(op_e4m3_to_float(0x7e) == 448.0f);
	CHECK(isnan(op_e4m3_to_float(0x7f)));
	CHECK_EQ_U64(op_e8m0_from_float(1.0f, OP_E8M0_RZ, 1), 127);
	CHECK_EQ_U64(op_e8m0_from_float(1.5f, OP_E8M0_RZ, 1), 127);
	CHECK_EQ_U64(op_e8m0_from_float(1.5f, OP_E8M0_RP, 1), 128);
	CHECK_EQ_U64(op_e8m0_from_float(INFINITY, OP_E8M0_RZ, 1), 254);
	CHECK(op_e8m0_to_float(130) == 8.0f);
	CHECK_EQ_U64(op_bf16_from_float(1.0f), 0x3f80);
	CHECK(op_bf16_to_float(op_bf16_from_float(3.140625f)) == 3.140625f);
}

static void test_tensor(int format)
{
	uint32_t bl = op_fp4_block(format), rows = 5, cols = 4 * bl;
	op_fp4_tensor t;
	float src[5 * 128], back[5 * 128];
	CHECK(op_fp4_tensor_alloc(&t, format, rows, cols) == 0);
	/* representable values with a power-of-two amax round-trip exactly */
	for (uint32_t i = 0; i < rows * cols; i++)
		src[i] = op_e2m1_to_float((uint8_t)(i % 16));
	CHECK(op_fp4_quantize(&t, src, cols, cols, OP_MX_SCALE_CEIL) == 0);
	op_fp4_dequantize(&t, back);
	int exact = 1;
	for (uint32_t i = 0; i < rows * cols; i++)
		exact &= fabsf(back[i] - src[i]) <= 1e-6f * fabsf(src[i]);
	CHECK(exact);
	/* packing: element 2i low nibble */
	/* src[i] = value of code i % 16 and the block's max is 6, so each code is its own index:
	 * element 2 (code 2) in byte 1's low nibble, element 3 (code 3) in its high nibble */
	CHECK_EQ_U64(t.codes[1] & 0xf, 2);
	CHECK_EQ_U64(t.codes[1] >> 4, 3);
	CHECK_EQ_U64(op_fp4_code(&t, 0, 3), 3);
	/* random values: bounded relative error; short rows are zero-padded */
	for (int mode = 0; mode < 2; mode++) {
		double num = 0, den = 0;
		for (uint32_t i = 0; i < rows * cols; i++)
			src[i] = frand();
		CHECK(op_fp4_quantize(&t, src, cols - 3, cols, mode) == 0);
		op_fp4_dequantize(&t, back);
		for (uint32_t r = 0; r < rows; r++)
			for (uint32_t c = 0; c < cols; c++) {
				float want = c < cols - 3 ? src[r * cols + c] : 0.0f;
				num += (back[r * cols + c] - want) * (double)(back[r * cols + c] - want);
				den += (double)want * want;
				if (c >= cols - 3)
					CHECK(back[r * cols + c] == 0.0f);
			}
		fprintf(stderr, "format %d mode %d: rms relative error %.4f\n", format, mode, sqrt(num / den));
		/* E2M1 with E4M3 scales: ~0.09 on this heavy-tailed mix; OCP's floored power-of-two
		 * scales clip the outliers, ~0.2 */
		CHECK(sqrt(num / den) < (format == OP_FP4_NVFP4 ? 0.12 : 0.25));
	}
	src[7] = NAN;
	CHECK(op_fp4_quantize(&t, src, cols, cols, 0) < 0);
	op_fp4_tensor_free(&t);
}

static void test_tiling(void)
{
	uint32_t rows = 300, cols = 7;
	uint8_t *lin = malloc(rows * cols), *til = malloc(op_fp4_scale_tiled_size(rows, cols));
	CHECK_EQ_U64(op_fp4_scale_tiled_size(rows, cols), 384 * 8);
	for (uint32_t i = 0; i < rows * cols; i++)
		lin[i] = (uint8_t)(1 + i % 251);
	op_fp4_scales_tile(til, lin, rows, cols);
	int ok = 1;
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++) {
			/* written out from cuBLAS's description: 128-row × 4-column tiles of 512 bytes,
			 * row-block-major; inside, 32 rows × (4 row groups × 4 columns) */
			size_t tile = (r / 128) * 2 + c / 4;
			size_t inner = (r % 32) * 16 + ((r / 32) % 4) * 4 + (c % 4);
			ok &= til[tile * 512 + inner] == lin[r * cols + c];
		}
	CHECK(ok);
	CHECK(til[op_fp4_scale_tiled_offset(299, 7, cols)] == 0); /* padding is zero */
	free(lin);
	free(til);
}

static int make_layer_mx(op_fp4_linear *L, int format, uint32_t n, uint32_t k, int relu, int mx_mode);
static int make_layer(op_fp4_linear *L, int format, uint32_t n, uint32_t k, int relu)
{
	return make_layer_mx(L, format, n, k, relu, OP_MX_SCALE_FLOOR);
}

static int make_layer_mx(op_fp4_linear *L, int format, uint32_t n, uint32_t k, int relu, int mx_mode)
{
	uint32_t bl = op_fp4_block(format), kp = (k + bl - 1) / bl * bl;
	op_fp4_tensor w;
	float *src = malloc((size_t)n * k * sizeof(float)), *bias = malloc(n * sizeof(float));
	for (size_t i = 0; i < (size_t)n * k; i++)
		src[i] = frand();
	for (uint32_t i = 0; i < n; i++)
		bias[i] = frand();
	int rc = op_fp4_tensor_alloc(&w, format, n, kp);
	rc = rc ? rc : op_fp4_quantize(&w, src, k, k, OP_MX_SCALE_FLOOR);
	rc = rc ? rc : op_fp4_linear_init(L, &w, k, bias, relu, 20.0f / 2688, mx_mode);
	free(src);
	free(bias);
	return rc;
}

static void test_reference(int format)
{
	op_fp4_linear L;
	uint32_t M = 7, N = 9, K = 70;
	CHECK(make_layer(&L, format, N, K, 0) == 0);
	float *X = malloc(M * K * sizeof(float)), *Y = malloc(M * N * sizeof(float));
	float *wd = malloc((size_t)N * L.w.cols * sizeof(float));
	for (uint32_t i = 0; i < M * K; i++)
		X[i] = frand();
	CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, OP_W4A4, X, K, M, Y, N) == 0);
	op_fp4_dequantize(&L.w, wd);
	int8_t q2[128];
	float xs[8];
	double worst = 0;
	for (uint32_t m = 0; m < M; m++) {
		op_fp4_quantize_row(&L, X + m * K, q2, xs);
		for (uint32_t n = 0; n < N; n++) {
			double s = L.bias[n];
			double gx = format == OP_FP4_NVFP4 ? L.act_scale : 1.0;
			for (uint32_t k = 0; k < L.w.cols; k++)
				s += (q2[k] * 0.5 * xs[k / op_fp4_block(format)] * gx) * wd[n * L.w.cols + k];
			double e = fabs(s - Y[m * N + n]) / (fabs(s) + 1);
			worst = e > worst ? e : worst;
		}
	}
	CHECK(worst < 1e-5);
	/* and W4A4 approximates the FP32 product of the dequantized weights */
	CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, OP_W4A16, X, K, M, Y, N) == 0);
	worst = 0;
	for (uint32_t m = 0; m < M; m++)
		for (uint32_t n = 0; n < N; n++) {
			double s = L.bias[n];
			for (uint32_t k = 0; k < K; k++)
				s += (double)X[m * K + k] * wd[n * L.w.cols + k];
			double e = fabs(s - Y[m * N + n]) / (fabs(s) + 1);
			worst = e > worst ? e : worst;
		}
	CHECK(worst < 1e-5);
	free(X), free(Y), free(wd);
	op_fp4_linear_free(&L);
}

/* GCC 12's aarch64 vectorizer crashes on the functions marked NO_VEC (an internal compiler
 * error in vect_transform_reduction, on their fmax reductions); the test loops gain nothing
 * from vectorizing anyway. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_VEC __attribute__((optimize("no-tree-vectorize")))
#else
#define NO_VEC
#endif

/* Does this rung's GEMV carry X in 16 bits for this call (fp4_gemm.h)? */
static int gemv_a16(int rung, int mode, uint32_t K)
{
	return mode == OP_W4A16 && (rung == OP_RUNG_AVX2 || rung == OP_RUNG_AVX512) && K % 64 == 0;
}

/*
 * What a W4A16 GEMV that carries X in 16 bits may add to FP32 rounding (fp4_gemm.h): each
 * element within half its block's step, max|x_b| / 65,024, so output (m, n) within
 * Σ_b max|x_b| · Σ_{k∈b} |w_k| / 65,024 (and a hair for the step's own rounding). wdq: W
 * dequantized.
 */
NO_VEC static double a16_bound(const float *wdq, const float *X, uint32_t K, uint32_t bl, uint32_t m, uint32_t n)
{
	double s = 0;
	for (uint32_t b = 0; b < K / bl; b++) {
		double amax = 0, sw = 0;
		for (uint32_t i = 0; i < bl; i++) {
			amax = fmax(amax, fabs(X[(size_t)m * K + b * bl + i]));
			sw += fabs(wdq[(size_t)n * K + b * bl + i]);
		}
		s += amax * sw;
	}
	return s / 65024.0 * 1.001;
}

/* Y1 (from rung) against the reference Y0 over rows < M, outputs [n0, n1): within
 * rel · max|Y0| (FP32 rounding in another order), plus a16_bound where the rung carries X in
 * 16 bits. Prints the first miss. */
NO_VEC static int gemv_close(int rung, const op_fp4_tensor *w, int mode, const float *X, uint32_t M,
			     const float *Y0, const float *Y1, uint32_t n0, uint32_t n1, double rel)
{
	const int a16 = gemv_a16(rung, mode, w->cols);
	uint32_t K = w->cols, N = w->rows;
	float *wdq = malloc((size_t)N * K * sizeof(float));
	if (!wdq)
		return 0;
	op_fp4_dequantize(w, wdq);
	double mag = 0;
	for (uint32_t m = 0; m < M; m++)
		for (uint32_t n = n0; n < n1; n++)
			mag = fmax(mag, fabs(Y0[(size_t)m * N + n]));
	int ok = 1;
	for (uint32_t m = 0; m < M && ok; m++)
		for (uint32_t n = n0; n < n1 && ok; n++) {
			double tol = rel * mag + (a16 ? a16_bound(wdq, X, K, op_fp4_block(w->format), m, n) : 0);
			if (!(fabs((double)Y0[(size_t)m * N + n] - Y1[(size_t)m * N + n]) <= tol)) {
				fprintf(stderr, "GEMV mode %d format %d K %u M %u: out (%u, %u) %.9g, reference %.9g, allowed %.3g\n",
					mode, w->format, K, M, m, n, Y1[(size_t)m * N + n], Y0[(size_t)m * N + n], tol);
				ok = 0;
			}
		}
	free(wdq);
	return ok;
}

NO_VEC static void test_rungs(int rung)
{
	static const uint32_t shapes[][3] = {{1, 16, 16}, {15, 16, 16}, {16, 16, 32}, {17, 11, 7}, {33, 64, 64},
					     {100, 5, 136}, {64, 128, 256}, {3, 256, 100}, {50, 33, 40},
					     {41, 100, 272}, {9, 17, 16}, {24, 20, 64}, {40, 24, 16}, {20, 16, 48},
					     /* two outputs left over (N % 4 = 2), and three with several blocks */
					     {16, 6, 16}, {32, 10, 64}, {48, 14, 128}, {32, 7, 64}};
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
			for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
				uint32_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
				op_fp4_linear L;
				if (make_layer_mx(&L, format, N, K, (int)(s & 1), (int)(s % 3 == 1)) != 0) {
					CHECK(0);
					continue;
				}
				size_t ldx = K + 3, ldy = N + 1;
				float *X = malloc(M * ldx * sizeof(float)), *Y0 = calloc(M * ldy, sizeof(float)),
				      *Y1 = calloc(M * ldy, sizeof(float));
				for (size_t i = 0; i < M * ldx; i++)
					X[i] = frand();
				/* values at and around the rounding edges: exact E2M1 ties after scaling,
				 * tiny and huge magnitudes, zeros of both signs */
				static const float edge[] = {0.25f, -0.75f, 1.25f, 1.75f, -2.5f, 3.5f, 5.0f, 1e-30f, -1e-30f,
							     3e4f, -0.0f, 0.0f, 1e-7f, 6.0f};
				for (size_t i = 0; i < M * ldx; i += 7)
					X[i] = edge[(i / 7) % (sizeof(edge) / sizeof(edge[0]))];
				CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, mode, X, ldx, M, Y0, ldy) == 0);
				CHECK(op_fp4_gemm_rung(rung, &L, mode, X, ldx, M, Y1, ldy) == 0);
				if (memcmp(Y0, Y1, M * ldy * sizeof(float)) != 0) {
					fprintf(stderr, "%s differs: format %d mode %d M %u N %u K %u\n",
						op_fp4_rung_name(rung), format, mode, M, N, K);
					CHECK(0);
				}
				if (mode == OP_W4A16) { /* BF16 activations = their exact FP32 widening */
					uint16_t *Xb = malloc(M * ldx * sizeof(uint16_t));
					float *Xw = malloc(M * ldx * sizeof(float)), *Yb = calloc(M * ldy, sizeof(float));
					for (size_t i = 0; i < M * ldx; i++) {
						Xb[i] = op_bf16_from_float(X[i]);
						Xw[i] = op_bf16_to_float(Xb[i]);
					}
					CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, mode, Xw, ldx, M, Y1, ldy) == 0);
					CHECK(op_fp4_gemm_bf16(&L, Xb, ldx, M, Yb, ldy, 2) == 0);
					CHECK(memcmp(Y1, Yb, M * ldy * sizeof(float)) == 0);
					free(Xb), free(Xw), free(Yb);
				}
				/* threads split rows without changing a bit */
				memset(Y1, 0, M * ldy * sizeof(float));
				CHECK(op_fp4_gemm(&L, mode, X, ldx, M, Y1, ldy, 3) == 0);
				CHECK(memcmp(Y0, Y1, M * ldy * sizeof(float)) == 0);
				free(X), free(Y0), free(Y1);
				op_fp4_linear_free(&L);
			}
	/* non-finite activations (a broken upstream layer) give the same bits on every rung: nine
	 * rows without ReLU (partial tiles), then 32 rows with it (whole tiles; NaN and -0 through
	 * ReLU), K = 64 and 16 (several blocks, one) */
	for (int round = 0; round < 36; round++)
		for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++) {
			int mx = round & 1, big = round >= 24;
			op_fp4_linear L;
			uint32_t M = big ? 32 : 9, N = 8, K = big && (round & 2) ? 16 : 64;
			float X[32 * 64], Y0[32 * 8], Y1[32 * 8];
			CHECK(make_layer_mx(&L, format, N, K, big, mx) == 0);
			for (uint32_t i = 0; i < M * K; i++)
				X[i] = frand();
			/* every position of a block in turn */
			X[(5 + 3 * round) % K] = INFINITY, X[K + (40 + 5 * round) % K] = -INFINITY;
			X[2 * K + (3 + 7 * round) % K] = NAN, X[4 * K + (11 * round) % K] = NAN, X[300 % (M * K)] = 1e38f;
			CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, OP_W4A4, X, K, M, Y0, N) == 0);
			CHECK(op_fp4_gemm_rung(rung, &L, OP_W4A4, X, K, M, Y1, N) == 0);
			int same = 1;
			for (uint32_t i = 0; i < M * N; i++) {
				int ok = (isnan(Y0[i]) && isnan(Y1[i])) || !memcmp(&Y0[i], &Y1[i], sizeof(float));
				if (!ok)
					fprintf(stderr, "non-finite input, format %d mx %d: row %u col %u: %g vs %g\n", format, mx,
						i / N, i % N, Y0[i], Y1[i]);
				same &= ok;
			}
			CHECK(same);
			op_fp4_linear_free(&L);
		}
	/* an extreme activation scale: with act_scale 2^-118, a block whose largest element is
	 * near FLT_MIN gets the smallest E4M3 scale and an inverse of 2^127, whose double is
	 * infinite; a zero times it must stay 0 (a rung that doubles the inverse makes it NaN and
	 * the code +6). Blocks of zeros and tiny values, of normal values, one of each per row */
	for (int round = 0; round < 4; round++) {
		op_fp4_linear L;
		const uint32_t M = 19, N = 8, K = 64;
		float X[19 * 64], Y0[19 * 8], Y1[19 * 8];
		op_fp4_tensor w;
		float *src = frand_array(N * K);
		CHECK(op_fp4_tensor_alloc(&w, OP_FP4_NVFP4, N, K) == 0);
		CHECK(op_fp4_quantize(&w, src, K, K, OP_MX_SCALE_FLOOR) == 0);
		/* no bias: sums this small would vanish under one */
		CHECK(op_fp4_linear_init(&L, &w, K, NULL, round & 1, 0x1p-118f, OP_MX_SCALE_FLOOR) == 0);
		free(src);
		for (uint32_t i = 0; i < M * K; i++) {
			uint32_t blk = (i % K) / 16 + round + i / K;
			X[i] = blk % 2 ? frand() : (i % 3 ? 0.0f : 1.8e-38f * (float)(1 + (i % 2)));
		}
		CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, OP_W4A4, X, K, M, Y0, N) == 0);
		CHECK(op_fp4_gemm_rung(rung, &L, OP_W4A4, X, K, M, Y1, N) == 0);
		int same = 1;
		for (uint32_t i = 0; i < M * N; i++)
			same &= (isnan(Y0[i]) && isnan(Y1[i])) || !memcmp(&Y0[i], &Y1[i], sizeof(float));
		CHECK(same);
		op_fp4_linear_free(&L);
	}
	/* MXFP4 values at the ends of FP32's range, where a rung that sums otherwise than the
	 * reference (in BF16 products, flushing subnormals, as AMX's tile unit does) would part from
	 * it: (0) a block of activations near 1e-37 against weights near 1e-3, whose products are
	 * subnormal; (1) activations near 1e-10 against a block of weights near 1e-30, the rest of
	 * those rows zero; (2) a block of +2^125, +2^125, -2^125 against ones, whose exact sum is
	 * finite though its first two terms' is not. Beside ordinary rows; every rung gives the
	 * reference's bits. */
	for (int round = 0; round < 3; round++) {
		op_fp4_linear L;
		op_fp4_tensor w;
		enum { TM = 40, TN = 16, TK = 64 };
		float X[TM * TK], Y0[TM * TN], Y1[TM * TN];
		float *src = frand_array(TN * TK);
		for (uint32_t i = 0; i < TN * TK; i++) {
			if (round == 0)
				src[i] *= 1e-3f;
			if (round == 1 && i % TK < 32)
				src[i] *= 1e-30f;
			if (round == 2 && i % TK < 3)
				src[i] = 1.0f;
		}
		CHECK(op_fp4_tensor_alloc(&w, OP_FP4_MXFP4, TN, TK) == 0);
		CHECK(op_fp4_quantize(&w, src, TK, TK, OP_MX_SCALE_FLOOR) == 0);
		CHECK(op_fp4_linear_init(&L, &w, TK, NULL, 0, 1.0f, OP_MX_SCALE_FLOOR) == 0);
		free(src);
		for (uint32_t i = 0; i < TM * TK; i++) {
			const uint32_t m = i / TK, k = i % TK;
			X[i] = frand();
			if (m >= 16 && m < 32 && m % 3 == 0 && k < 32) /* the second tile, a row in three */
				X[i] = round == 2 ? (k < 3 ? (k == 2 ? -0x1p125f : 0x1p125f) : 0.0f)
							  : X[i] * (round == 0 ? 1e-37f : 1e-10f);
			else if (m >= 16 && m < 32 && m % 3 == 0)
				X[i] = 0.0f;
		}
		CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, OP_W4A4, X, TK, TM, Y0, TN) == 0);
		CHECK(op_fp4_gemm_rung(rung, &L, OP_W4A4, X, TK, TM, Y1, TN) == 0);
		int same = 1, edge = 0;
		for (uint32_t i = 0; i < TM * TN; i++) {
			same &= (isnan(Y0[i]) && isnan(Y1[i])) || !memcmp(&Y0[i], &Y1[i], sizeof(float));
			edge += round == 2 ? isfinite(Y0[i]) && fabsf(Y0[i]) > 0x1p120f : Y0[i] != 0 && fabsf(Y0[i]) < 0x1p-100f;
		}
		if (!same)
			fprintf(stderr, "%s differs at FP32's range ends, round %d\n", op_fp4_rung_name(rung), round);
		CHECK(same);
		CHECK(edge > 0); /* the case is there */
		op_fp4_linear_free(&L);
	}
	/* zeros of both signs: biases of -0 and +0 under rows of X that are all zero (their sums
	 * are +0, times a negative tensor scale -0), ReLU off and on, whole tiles and a partial one, one block and several —
	 * the sign of every zero as the reference gives it */
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
		for (int relu = 0; relu <= 1; relu++)
			for (uint32_t K = 16; K <= 64; K += 48)
				for (uint32_t M = 16; M <= 35; M += 19) {
					const uint32_t N = 8, bl = op_fp4_block(format), kp = (K + bl - 1) / bl * bl;
					const float bias[8] = {-0.0f, 0.0f, -0.0f, -0.0f, 1.0f, -0.0f, -1.0f, 0.0f};
					op_fp4_tensor w;
					op_fp4_linear L;
					float *src = frand_array(N * K), *X = frand_array(M * K);
					float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
					for (uint32_t m = 0; m < M; m += 3)
						for (uint32_t k = 0; k < K; k++)
							X[m * K + k] = (m & 1) ? -0.0f : 0.0f;
					CHECK(op_fp4_tensor_alloc(&w, format, N, kp) == 0);
					CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
					w.tensor_scale = -w.tensor_scale; /* so a zero sum times it is -0 */
					CHECK(op_fp4_linear_init(&L, &w, K, bias, relu, 0.05f, 0) == 0);
					CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, OP_W4A4, X, K, M, Y0, N) == 0);
					CHECK(op_fp4_gemm_rung(rung, &L, OP_W4A4, X, K, M, Y1, N) == 0);
					int negz = 0;
					for (uint32_t i = 0; i < M * N; i++)
						negz += Y0[i] == 0.0f && signbit(Y0[i]);
					CHECK(relu || negz > 0); /* the case is there */
					if (memcmp(Y0, Y1, M * N * sizeof(float)) != 0) {
						fprintf(stderr, "%s: signed zeros differ: format %d relu %d K %u M %u\n",
							op_fp4_rung_name(rung), format, relu, K, M);
						CHECK(0);
					}
					op_fp4_linear_free(&L);
					free(src), free(X), free(Y0), free(Y1);
				}
	/* a weight tensor wider than the layer (k < cols beyond block rounding) whose padding codes
	 * are not zero: the reference meets them with zero activations, so every rung must give its
	 * bits whatever they hold; X is exactly M×k floats, so a read past a row's end is caught by
	 * ASan. NVFP4 64 wide for k = 16, 32 (whole blocks of padding); MXFP4 32 or 64 for k = 16
	 * (half a block, one and a half). */
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
		for (uint32_t cols = 32; cols <= 64; cols += 32)
			for (uint32_t k = 16; k <= 32; k += 16)
				for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
					if (k >= cols || (format == OP_FP4_NVFP4 && cols == 32))
						continue;
					uint32_t M = 21, N = 20;
					float *src = frand_array(N * cols), *X = frand_array(M * k);
					float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
					op_fp4_tensor w;
					op_fp4_linear L;
					CHECK(op_fp4_tensor_alloc(&w, format, N, cols) == 0);
					CHECK(op_fp4_quantize(&w, src, cols, cols, 0) == 0);
					CHECK(op_fp4_linear_init(&L, &w, k, NULL, 1, 0.05f, 0) == 0);
					CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, mode, X, k, M, Y0, N) == 0);
					CHECK(op_fp4_gemm_rung(rung, &L, mode, X, k, M, Y1, N) == 0);
					if (memcmp(Y0, Y1, M * N * sizeof(float)) != 0) {
						fprintf(stderr, "%s differs with padding codes: format %d mode %d cols %u k %u\n",
							op_fp4_rung_name(rung), format, mode, cols, k);
						CHECK(0);
					}
					op_fp4_linear_free(&L);
					free(src), free(X), free(Y0), free(Y1);
				}
	/* a layer whose vector layouts could not be had (no memory at load): every rung falls back
	 * to its own way, with the reference's bits; and laying W4A16 out again replaces the old */
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++) {
		op_fp4_linear L;
		uint32_t M = 21, N = 20, K = 48;
		float *X = frand_array(M * K), *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
		CHECK(make_layer_mx(&L, format, N, K, 1, 0) == 0);
		CHECK(op_fp4_linear_layout_w16(&L) == 0);
		free(L.g16q), free(L.g16c), free(L.g16s), free(L.g16b), free(L.g16w), free(L.g16p);
		L.g16q = L.g16c = L.g16p = NULL, L.g16s = L.g16b = L.g16w = NULL;
		for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
			CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, mode, X, K, M, Y0, N) == 0);
			CHECK(op_fp4_gemm_rung(rung, &L, mode, X, K, M, Y1, N) == 0);
			CHECK(memcmp(Y0, Y1, M * N * sizeof(float)) == 0);
		}
		op_fp4_linear_free(&L);
		free(X), free(Y0), free(Y1);
	}
	/* a layer built by hand from FP32 weights (the model's fp32 layers) runs the laid-out W4A16
	 * path of the vector rungs: the reference's bits */
	{
		uint32_t M = 20, N = 21, K = 37; /* passes of 12 and 8 rows (AVX-512), 8 × 2 + 4 (NEON) */
		float *w = frand_array(N * K), *bias = frand_array(N), *X = frand_array(M * K);
		float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
		op_fp4_linear L;
		memset(&L, 0, sizeof(L));
		L.n = N, L.k = K, L.relu = 1, L.act_scale = 1.0f;
		L.w.rows = N, L.w.cols = K, L.w.tensor_scale = 1.0f;
		L.wdec = malloc(N * K * sizeof(float));
		L.bias = malloc(N * sizeof(float));
		memcpy(L.wdec, w, N * K * sizeof(float));
		memcpy(L.bias, bias, N * sizeof(float));
		CHECK(op_fp4_linear_layout_w16(&L) == 0);
		CHECK(op_fp4_gemm_rung(OP_RUNG_SCALAR, &L, OP_W4A16, X, K, M, Y0, N) == 0);
		CHECK(op_fp4_gemm_rung(rung, &L, OP_W4A16, X, K, M, Y1, N) == 0);
		CHECK(memcmp(Y0, Y1, M * N * sizeof(float)) == 0);
		op_fp4_linear_free(&L);
		free(w), free(bias), free(X), free(Y0), free(Y1);
	}
	/* pooling */
	uint32_t off[6] = {0, 3, 3, 40, 41, 90}, C = 21;
	float *H = malloc(90 * 24 * sizeof(float)), o0[5 * 50], o1[5 * 50];
	for (int i = 0; i < 90 * 24; i++)
		H[i] = frand();
	op_pool_mean_max(OP_RUNG_SCALAR, H, 24, C, off, 5, o0, 50);
	op_pool_mean_max(rung, H, 24, C, off, 5, o1, 50);
	int same = 1;
	for (int e = 0; e < 5; e++)
		same &= memcmp(o0 + e * 50, o1 + e * 50, 2 * C * sizeof(float)) == 0;
	CHECK(same);
	CHECK(o0[50 + 3] == 0.0f && o0[50 + C + 3] == 0.0f); /* the empty event */
	free(H);
	/* GEMV: to rounding */
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
		for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
			for (uint32_t M = 1; M <= 17; M += 4) {
				/* K = 512 and 1,024 take the integer paths (64 weights a step on AVX2, 128 on
				 * AVX-512), 96 and 48 (NVFP4) the FP32 one */
				uint32_t N = 72, K = M % 3 == 0 ? 512 : M == 1 ? 1024 : M % 3 == 1 ? 96 : (format == OP_FP4_NVFP4 ? 48 : 96);
				op_fp4_tensor w;
				float *src = frand_array(N * K), *X = frand_array(M * K);
				float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
				CHECK(op_fp4_tensor_alloc(&w, format, N, K) == 0);
				CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
				CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, mode, 0.01f, 0, X, M, Y0, 0, N) == 0);
				CHECK(op_fp4_gemv_rung(rung, &w, mode, 0.01f, 0, X, M, Y1, 0, N) == 0);
				CHECK(gemv_close(rung, &w, mode, X, M, Y0, Y1, 0, N, 1e-5));
				CHECK(op_fp4_gemv(&w, mode, 0.01f, 0, X, M, Y1, NULL, 0, 2) == 0);
				CHECK(gemv_close(op_fp4_rung_best(), &w, mode, X, M, Y0, Y1, 0, N, 1e-5));
				/* the epilogue: bias, then ReLU (which can only bring a value closer) */
				float bias[72], *Yb = malloc(M * N * sizeof(float));
				for (uint32_t n = 0; n < N; n++)
					bias[n] = frand();
				for (uint32_t m = 0; m < M; m++)
					for (uint32_t n = 0; n < N; n++)
						Yb[m * N + n] = fmaxf(0.0f, Y0[m * N + n] + bias[n]);
				CHECK(op_fp4_gemv(&w, mode, 0.01f, 0, X, M, Y1, bias, 1, 2) == 0);
				CHECK(gemv_close(op_fp4_rung_best(), &w, mode, X, M, Yb, Y1, 0, N, 2e-5));
				free(Yb);
				op_fp4_tensor_free(&w);
				free(src), free(X), free(Y0), free(Y1);
			}
	if (rung == OP_RUNG_SCALAR) /* the edge cases below compare a vector rung with the reference */
		return;
	/* One row, NVFP4, an odd number of blocks: AVX2 takes one row's blocks in pairs, and the
	 * last one alone (K = 48, 80, 208: 3, 5, 13 blocks; 64: an even count, for contrast) */
	static const uint32_t odd_k[4] = {48, 64, 80, 208};
	for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
		for (int ki = 0; ki < 4; ki++) {
			uint32_t N = 9, K = odd_k[ki];
			op_fp4_tensor w;
			float *src = frand_array(N * K), *X = frand_array(K), Y0[9], Y1[9];
			CHECK(op_fp4_tensor_alloc(&w, OP_FP4_NVFP4, N, K) == 0);
			CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
			CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, mode, 0.01f, 0, X, 1, Y0, 0, N) == 0);
			CHECK(op_fp4_gemv_rung(rung, &w, mode, 0.01f, 0, X, 1, Y1, 0, N) == 0);
			CHECK(Y0[0] != 0.0f && gemv_close(rung, &w, mode, X, 1, Y0, Y1, 0, N, 1e-5));
			op_fp4_tensor_free(&w);
			free(src), free(X);
		}
	static const uint32_t gemv_edge_k[17][3] = {{128, 1, 7},   {192, 1, 7},  {256, 1, 7},  {320, 1, 7},
						    {384, 1, 7},   {2176, 4, 7}, {2304, 3, 7}, {2816, 3, 4},
						    {4224, 2, 3},  {8320, 1, 3}, {8320, 5, 5}, {10240, 2, 2},
						    {20480, 1, 1}, {3968, 4, 5}, {3712, 3, 3}, {5504, 2, 2},
						    {16256, 1, 1}};
	/* the vector GEMV paths at their edges, both modes: K with an odd number of 128-steps and
	 * K % 128 = 64 (AVX-512 falls back to the 64-step AVX2 path), one to seven rows (every
	 * row-pass width), both MXFP4 scale modes, and a sub-range of outputs (what a thread gets) */
	for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
		for (int mx = 0; mx <= 1; mx++)
			/* from 2,176 up: the W4A16 GEMV's K chunks (as many 128-steps as keep a pass's rows
			 * of X in 16 KiB, once those rows exceed 32 KiB): four rows 8, 8, 1 (2,176) and 8,
			 * 8, 2 (2,304); three rows 10, 10, 2 (2,816); two 16, 16, 1 (4,224); one 32, 32, 1
			 * (8,320, also as the last pass of five rows, after a pass of four in 8-step
			 * chunks); up to seven rows at 2,176 and 2,304 (passes of four, then the rest).
			 * The W4A4 GEMV chunks once a pass's activations (208 bytes a row per 128-step)
			 * exceed 32 KiB: at 8,320 (65 steps) three rows go in 26, 26, 13 steps and the
			 * four-row pass of five in 19, 19, 19, 8, then the fifth row whole; two rows at
			 * 10,240 in 39, 39, 2; one row at 20,480 in 78, 78, 4 (W4A16 there: 32-step
			 * chunks). The AVX-512 W4A16 GEMV with X in 16 bits takes 384 bytes a row per
			 * 128-step: four rows at 2,816 in 10, 10, 2 steps and at 3,968 in 10, 10, 10, 1
			 * (and the fifth row whole); three rows at 3,712 in 14, 14, 1; two at 5,504 in 21,
			 * 21, 1; one at 16,256 in 42, 42, 42, 1 and at 20,480 in 42, 42, 42, 34.
			 * Each on all outputs (the last one ends the tensor) and on a sub-range.
			 * The outputs in range start as NaN: a chunk that added to them instead of
			 * writing them first would show. */
			for (size_t ki = 0; ki < 17; ki++)
				for (uint32_t M = gemv_edge_k[ki][1], K = gemv_edge_k[ki][0]; M <= gemv_edge_k[ki][2]; M++)
				for (int part = 0; part <= 1; part++) {
					uint32_t N = 40, n0 = part ? 3 : 0, n1 = part ? 30 : N;
					op_fp4_tensor w;
					float *src = frand_array(N * K), *X = frand_array(M * K);
					float *Y0 = calloc(M * N, sizeof(float)), *Y1 = calloc(M * N, sizeof(float));
					for (uint32_t m = 0; m < M; m++)
						for (uint32_t n = n0; n < n1; n++)
							Y1[m * N + n] = NAN;
					for (uint32_t i = 0; i < M * K; i += 37) /* a few large activations */
						X[i] *= 50.0f;
					if (part) /* a block under 2^-40: the W4A16 GEMVs' FP32 path, chunked as its own */
						for (uint32_t i = 0; i < 32; i++)
							X[(M - 1) * K + i] *= 1e-13f;
					CHECK(op_fp4_tensor_alloc(&w, format, N, K) == 0);
					CHECK(op_fp4_quantize(&w, src, K, K, mx) == 0);
					CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, mode, 0.01f, mx, X, M, Y0, n0, n1) == 0);
					CHECK(op_fp4_gemv_rung(rung, &w, mode, 0.01f, mx, X, M, Y1, n0, n1) == 0);
					int written = 1;
					for (uint32_t m = 0; m < M; m++)
						for (uint32_t n = n0; n < n1; n++)
							written &= isfinite(Y1[m * N + n]);
					CHECK(written);
					CHECK(gemv_close(rung, &w, mode, X, M, Y0, Y1, n0, n1, 1e-5));
					int untouched = 1; /* outputs outside [n0, n1) are not written */
					for (uint32_t m = 0; m < M; m++)
						for (uint32_t n = 0; n < N; n++)
							if (n < n0 || n >= n1)
								untouched &= Y1[m * N + n] == 0.0f;
					CHECK(untouched);
					op_fp4_tensor_free(&w);
					free(src), free(X), free(Y0), free(Y1);
				}
	/* An MXFP4 row whose block scales are all E8M0 code 0, 2^-127 (a subnormal; the vector GEMVs
	 * shift codes into a float's exponent, where 0 would read as 0). Activations of about 2^20
	 * keep its products normal, so the row's outputs, about 2^-100, are checked against its own
	 * size: read as 0 they would be wrong by all of it. */
	for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
		for (uint32_t K = 256; K <= 512; K += 256)
			for (uint32_t M = 1; M <= 5; M += 4) {
				const uint32_t N = 8, tiny = 3;
				op_fp4_tensor w;
				float *src = frand_array(N * K), *X = frand_array(M * K);
				float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
				for (uint32_t i = 0; i < M * K; i++)
					X[i] = ldexpf(X[i], 20);
				CHECK(op_fp4_tensor_alloc(&w, OP_FP4_MXFP4, N, K) == 0);
				CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
				memset(w.scales + tiny * (K / 32), 0, K / 32);
				CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, mode, 0.01f, 0, X, M, Y0, 0, N) == 0);
				CHECK(op_fp4_gemv_rung(rung, &w, mode, 0.01f, 0, X, M, Y1, 0, N) == 0);
				op_fp4_dequantize(&w, src);
				int close = 1, seen_all = 1, seen_any = 0;
				for (uint32_t m = 0; m < M; m++) {
					double mag = 0;
					for (uint32_t k = 0; k < K; k++)
						mag += fabs((double)src[tiny * K + k] * X[m * K + k]);
					/* the case is there (every row; in W4A4 a row's sum of quantized
					 * products may be an exact 0, so one row there) */
					const int s = mag > 0x1p-110 && fabs(Y0[m * N + tiny]) > 0x1p-120;
					seen_all &= s, seen_any |= s;
					double a16 = gemv_a16(rung, mode, K) ? a16_bound(src, X, K, 32, m, tiny) : 0;
					close &= fabs(Y0[m * N + tiny] - Y1[m * N + tiny]) <= 1e-5 * mag + a16;
				}
				if (!close)
					fprintf(stderr, "%s GEMV mode %d K %u M %u: E8M0 code 0 row %g, not %g\n",
						op_fp4_rung_name(rung), mode, K, M, Y1[tiny], Y0[tiny]);
				CHECK(mode == OP_W4A4 ? seen_any : seen_all);
				CHECK(close);
				op_fp4_tensor_free(&w);
				free(src), free(X), free(Y0), free(Y1);
			}
	/* MXFP4 rows whose block scales are 2^100 (E8M0 code 227), beside ordinary ones: their
	 * outputs, about 2^100, are finite in the reference; a GEMV that sums X in 16 bits (2^32
	 * times the true sums) would overflow them, and must take the FP32 path instead */
	for (uint32_t M = 1; M <= 5; M += 4) {
		const uint32_t N = 8, K = 512, big = 5;
		op_fp4_tensor w;
		float *src = frand_array(N * K), *X = frand_array(M * K);
		float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
		CHECK(op_fp4_tensor_alloc(&w, OP_FP4_MXFP4, N, K) == 0);
		CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
		memset(w.scales + big * (K / 32), 227, K / 32);
		CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, OP_W4A16, 0.01f, 0, X, M, Y0, 0, N) == 0);
		CHECK(op_fp4_gemv_rung(rung, &w, OP_W4A16, 0.01f, 0, X, M, Y1, 0, N) == 0);
		int fin = 1, close = 1;
		for (uint32_t m = 0; m < M; m++) {
			fin &= isfinite(Y0[m * N + big]) && fabsf(Y0[m * N + big]) > 0x1p90f; /* the case is there */
			close &= isfinite(Y1[m * N + big]) && fabs(Y0[m * N + big] - Y1[m * N + big]) <= 1e-5 * fabs(Y0[m * N + big]) + 0x1p80;
		}
		if (!close)
			fprintf(stderr, "%s GEMV W4A16 M %u: a row of scales 2^100 gives %g, not %g\n", op_fp4_rung_name(rung), M,
				Y1[big], Y0[big]);
		CHECK(fin);
		CHECK(close);
		op_fp4_tensor_free(&w);
		free(src), free(X), free(Y0), free(Y1);
	}
	/* GEMV rows whose weights are 2^-16 of the others': their NVFP4 block scales are E4M3
	 * subnormals (the vector rungs decode scale codes by shifting them into a float), their
	 * MXFP4 scales sixteen binades lower. Each output is checked against its own row's size, so an
	 * error there is not hidden by the large rows. */
	for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
		for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
			for (uint32_t K = 128; K <= 512; K += 384)
				for (uint32_t M = 1; M <= 4; M += 3) {
					const uint32_t N = 24;
					op_fp4_tensor w;
					float *src = frand_array(N * K), *X = frand_array(M * K);
					float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
					for (uint32_t n = 1; n < N; n += 3)
						for (uint32_t k = 0; k < K; k++)
							src[n * K + k] = ldexpf(src[n * K + k], -16);
					CHECK(op_fp4_tensor_alloc(&w, format, N, K) == 0);
					CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
					int sub = 0;
					for (uint32_t b = 0; b < N * (K / op_fp4_block(format)); b++)
						sub |= format == OP_FP4_NVFP4 && w.scales[b] > 0 && w.scales[b] < 8;
					CHECK(format == OP_FP4_MXFP4 || sub); /* the case is really there */
					CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, mode, 0.01f, 0, X, M, Y0, 0, N) == 0);
					CHECK(op_fp4_gemv_rung(rung, &w, mode, 0.01f, 0, X, M, Y1, 0, N) == 0);
					op_fp4_dequantize(&w, src); /* the weights as the kernels see them */
					int close = 1;
					for (uint32_t n = 0; n < N; n++)
						for (uint32_t m = 0; m < M; m++) {
							/* rounding is relative to the sum of the magnitudes */
							double mag = 0;
							for (uint32_t k = 0; k < K; k++)
								mag += fabs((double)src[n * K + k] * X[m * K + k]);
							if (gemv_a16(rung, mode, K))
								mag += 1e5 * a16_bound(src, X, K, op_fp4_block(format), m, n);
							if (fabs(Y0[m * N + n] - Y1[m * N + n]) > 1e-5 * mag) {
								fprintf(stderr, "%s GEMV mode %d format %d K %u M %u: row %u: %g, not %g\n",
									op_fp4_rung_name(rung), mode, format, K, M, n, Y1[m * N + n],
									Y0[m * N + n]);
								close = 0;
							}
					}
					CHECK(close);
					op_fp4_tensor_free(&w);
					free(src), free(X), free(Y0), free(Y1);
				}
	/* W4A16: X's 16-bit form is scaled per block, not per row. Block 0 of X is a million times
	 * the rest and the even rows' weights there are zero: their outputs must keep the small
	 * blocks' precision (a16_bound leaves block 0 out), which a row-wide scale would lose
	 * (errors of about 1e6 / 65,024 per element). */
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
		for (uint32_t M = 1; M <= 5; M += 2) {
			const uint32_t N = 16, K = 256, bl = op_fp4_block(format);
			op_fp4_tensor w;
			float *src = frand_array(N * K), *X = frand_array(M * K);
			float *Y0 = malloc(M * N * sizeof(float)), *Y1 = malloc(M * N * sizeof(float));
			for (uint32_t m = 0; m < M; m++)
				for (uint32_t i = 0; i < bl; i++)
					X[m * K + i] *= 1e6f;
			for (uint32_t n = 0; n < N; n += 2)
				memset(src + n * K, 0, bl * sizeof(float));
			CHECK(op_fp4_tensor_alloc(&w, format, N, K) == 0);
			CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
			CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, OP_W4A16, 0.01f, 0, X, M, Y0, 0, N) == 0);
			CHECK(op_fp4_gemv_rung(rung, &w, OP_W4A16, 0.01f, 0, X, M, Y1, 0, N) == 0);
			op_fp4_dequantize(&w, src);
			int close = 1;
			for (uint32_t m = 0; m < M; m++)
				for (uint32_t n = 0; n < N; n += 2) {
					double mag = 0;
					for (uint32_t k = 0; k < K; k++)
						mag += fabs((double)src[n * K + k] * X[m * K + k]);
					double tol = 1e-5 * mag + (gemv_a16(rung, OP_W4A16, K) ? a16_bound(src, X, K, bl, m, n) : 0);
					if (!(fabs((double)Y0[m * N + n] - Y1[m * N + n]) <= tol)) {
						fprintf(stderr, "%s W4A16 GEMV format %d M %u row %u: %.9g, reference %.9g\n",
							op_fp4_rung_name(rung), format, M, n, Y1[m * N + n], Y0[m * N + n]);
						close = 0;
					}
				}
			CHECK(close);
			/* and the odd rows, which do see block 0, within theirs */
			CHECK(gemv_close(rung, &w, OP_W4A16, X, M, Y0, Y1, 0, N, 1e-5));
			op_fp4_tensor_free(&w);
			free(src), free(X), free(Y0), free(Y1);
		}
	/* Activations of 1e-37 (normal floats, but their 16-bit step would be subnormal and lose
	 * the bound: measured 5x over it for MXFP4) are summed in FP32: to rounding. */
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++) {
		const uint32_t N = 8, K = 512;
		op_fp4_tensor w;
		float *src = frand_array(N * K), *X = frand_array(K), Y0[8], Y1[8];
		for (uint32_t k = 0; k < K; k++)
			X[k] *= 1e-37f;
		CHECK(op_fp4_tensor_alloc(&w, format, N, K) == 0);
		CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
		CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, OP_W4A16, 0.01f, 0, X, 1, Y0, 0, N) == 0);
		CHECK(op_fp4_gemv_rung(rung, &w, OP_W4A16, 0.01f, 0, X, 1, Y1, 0, N) == 0);
		double worst = 0, mag = 0;
		for (uint32_t n = 0; n < N; n++)
			worst = fmax(worst, fabs((double)Y0[n] - Y1[n])), mag = fmax(mag, fabs(Y0[n]));
		CHECK(mag > 0 && worst <= 1e-5 * mag);
		op_fp4_tensor_free(&w);
		free(src), free(X);
	}
	/* A NaN or an infinity in X cannot be carried in 16 bits: the W4A16 GEMV must still show it
	 * in the outputs, where the reference does (row 1 of X has an infinity, row 2 a NaN). */
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++) {
		const uint32_t N = 8, K = 128, M = 3;
		op_fp4_tensor w;
		float *src = frand_array(N * K), *X = frand_array(M * K), Y0[24], Y1[24];
		X[K + 70] = INFINITY;
		X[2 * K + 5] = NAN;
		CHECK(op_fp4_tensor_alloc(&w, format, N, K) == 0);
		CHECK(op_fp4_quantize(&w, src, K, K, 0) == 0);
		CHECK(op_fp4_gemv_rung(OP_RUNG_SCALAR, &w, OP_W4A16, 0.01f, 0, X, M, Y0, 0, N) == 0);
		CHECK(op_fp4_gemv_rung(rung, &w, OP_W4A16, 0.01f, 0, X, M, Y1, 0, N) == 0);
		int agree = 1, seen = 0;
		for (uint32_t i = 0; i < M * N; i++) {
			agree &= isnan(Y0[i]) == isnan(Y1[i]) && isinf(Y0[i]) == isinf(Y1[i]);
			seen += !isfinite(Y0[i]);
		}
		CHECK(seen == 2 * (int)N && agree); /* all of rows 1 and 2 (inf · 0 is NaN) */
		CHECK(gemv_close(rung, &w, OP_W4A16, X, 1, Y0, Y1, 0, N, 1e-5)); /* row 0 as usual */
		op_fp4_tensor_free(&w);
		free(src), free(X);
	}
}

int main(void)
{
	test_scalars();
	test_tensor(OP_FP4_NVFP4);
	test_tensor(OP_FP4_MXFP4);
	test_tiling();
	test_reference(OP_FP4_NVFP4);
	test_reference(OP_FP4_MXFP4);
	int rungs = 0;
	for (int r = OP_RUNG_SCALAR; r <= OP_RUNG_LAST; r++)
		if (op_fp4_rung_available(r)) {
			fprintf(stderr, "testing rung %s\n", op_fp4_rung_name(r));
			test_rungs(r);
			rungs++;
		}
	CHECK(rungs >= 1);
	/* a child of fork() after the worker pool has started (it has none of the parent's
	 * workers) still gets its threaded GEMM done. Not under qemu-user (tools/cross-test.sh
	 * sets OUTPOST_UNDER_QEMU): qemu 7.2 cannot fork a process that has threads. */
	if (!getenv("OUTPOST_UNDER_QEMU")) {
		op_fp4_linear L;
		float X[200 * 64], Y[200 * 8];
		CHECK(make_layer(&L, OP_FP4_NVFP4, 8, 64, 0) == 0);
		for (int i = 0; i < 200 * 64; i++)
			X[i] = frand();
		CHECK(op_fp4_gemm(&L, OP_W4A4, X, 64, 200, Y, 8, 2) == 0); /* pool started here */
		pid_t pid = fork();
		if (pid == 0) {
			alarm(20); /* a hang would be the failure */
			_exit(op_fp4_gemm(&L, OP_W4A4, X, 64, 200, Y, 8, 2) == 0 ? 0 : 1);
		}
		int st = 0;
		CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
		op_fp4_linear_free(&L);
	}
	return check_finish("test_fp4_kernels");
}
