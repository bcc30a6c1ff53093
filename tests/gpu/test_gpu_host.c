/*
 * test_gpu_host.c — the Blackwell path's host-checkable parts, on any machine (no GPU needed):
 *  - the activation quantizer the GPU runs (op_fp4_act_quantize_at, one call per GPU thread),
 *    run here over the same grid: its doubled codes and block scales equal the CPU W4A4 path's
 *    (op_fp4_quantize_row) bit for bit; its packed codes keep element 2i in the low nibble; its
 *    tiled scales equal op_fp4_scales_tile of its linear ones, padding zeroed, for ragged shapes;
 *    a few tile offsets worked out by hand from cuBLASLt's documented layout;
 *  - the cuBLASLt descriptors for NVFP4, MXFP4 and BF16 products, read back attribute by
 *    attribute (TN, FP4 types, VEC16_UE4M3 / VEC32_UE8M0 scale modes, layouts and leading
 *    dimensions, scale pointers), and the shapes they refuse with a reason.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernels/cuda/lt.h"
#include "kernels/fp4_gemm.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void quantizer_case(int format, int mx_mode, uint32_t M, uint32_t k)
{
	const uint32_t bl = op_fp4_block(format), kp = (k + bl - 1) / bl * bl, nb = kp / bl;
	const uint32_t nbt = (nb + 3) / 4 * 4, tr = (M + 127) / 128 * 128;
	const size_t ldx = k + 3;
	float *X = malloc((size_t)M * ldx * sizeof(float));
	for (size_t i = 0; i < (size_t)M * ldx; i++) {
		float v = frand() * 4.0f;
		X[i] = (i % 97 == 0) ? 0.0f : (i % 89 == 0) ? v * 1000.0f : (i % 83 == 0) ? v * 1e-4f : v;
	}
	/* the layer whose activations these are: its format, scale mode and calibrated scale */
	op_fp4_tensor w;
	op_fp4_linear L;
	CHECK(op_fp4_tensor_alloc(&w, format, 4, kp) == 0);
	CHECK(op_fp4_linear_init(&L, &w, k, NULL, 0, 3.1f / (448.0f * 6.0f), mx_mode) == 0);
	const float enc = 1.0f / L.act_scale;

	uint8_t *codes = malloc((size_t)M * kp / 2), *lin = malloc((size_t)M * nb);
	size_t tsz = op_fp4_scale_tiled_size(tr, nb);
	uint8_t *tiled = malloc(tsz), *want_tiled = malloc(tsz);
	int8_t *q2 = malloc((size_t)M * kp), *rq2 = malloc(kp);
	float *xs = malloc((size_t)M * nb * sizeof(float)), *rxs = malloc(nb * sizeof(float));
	memset(tiled, 0xAA, tsz); /* padding must be written, not assumed */
	for (uint32_t r = 0; r < tr; r++)
		for (uint32_t b = 0; b < nbt; b++)
			op_fp4_act_quantize_at(X, ldx, M, k, kp, format, enc, mx_mode, r, b, codes, lin, tiled, tr, q2, xs);

	int same_q = 1, same_s = 1, pack = 1, dec = 1;
	for (uint32_t r = 0; r < M; r++) {
		op_fp4_quantize_row(&L, X + (size_t)r * ldx, rq2, rxs);
		same_q &= !memcmp(q2 + (size_t)r * kp, rq2, kp);
		same_s &= !memcmp(xs + (size_t)r * nb, rxs, nb * sizeof(float));
		for (uint32_t c = 0; c < kp; c++) {
			uint8_t byte = codes[((size_t)r * kp + c) / 2];
			uint8_t code = (c & 1) ? (uint8_t)(byte >> 4) : (uint8_t)(byte & 15);
			pack &= op_e2m1_doubled(code) == q2[(size_t)r * kp + c];
		}
		for (uint32_t b = 0; b < nb; b++)
			dec &= op_fp4_scale_value(format, lin[(size_t)r * nb + b]) == xs[(size_t)r * nb + b];
	}
	/* the tiles from the linear scales by the CPU's own tiling, padding rows included */
	uint8_t *lin_pad = calloc((size_t)tr * nb, 1);
	memcpy(lin_pad, lin, (size_t)M * nb);
	op_fp4_scales_tile(want_tiled, lin_pad, tr, nb);
	CHECK(same_q);
	CHECK(same_s);
	CHECK(pack);
	CHECK(dec);
	CHECK(!memcmp(tiled, want_tiled, tsz));
	if (!same_q || !same_s || !pack || !dec || memcmp(tiled, want_tiled, tsz))
		fprintf(stderr, "  case: format %d, mode %d, M %u, k %u\n", format, mx_mode, M, k);
	free(X), free(codes), free(lin), free(tiled), free(want_tiled), free(q2), free(rq2), free(xs), free(rxs);
	free(lin_pad);
	op_fp4_linear_free(&L);
}

static int32_t desc_i32(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a)
{
	int32_t v = -1;
	size_t w = 0;
	return cublasLtMatmulDescGetAttribute(d, a, &v, sizeof(v), &w) == CUBLAS_STATUS_SUCCESS ? v : -999;
}

static int64_t layout_i64(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a)
{
	uint64_t v = 0;
	int32_t v32 = 0;
	size_t w = 0;
	if (a == CUBLASLT_MATRIX_LAYOUT_TYPE) {
		if (cublasLtMatrixLayoutGetAttribute(l, a, &v32, sizeof(v32), &w) != CUBLAS_STATUS_SUCCESS)
			return -999;
		return v32;
	}
	if (cublasLtMatrixLayoutGetAttribute(l, a, &v, sizeof(v), &w) != CUBLAS_STATUS_SUCCESS)
		return -999;
	return (int64_t)v;
}

static void plan_case(int kind, uint32_t M, uint32_t N, uint32_t K)
{
	op_lt_plan p;
	char why[256];
	CHECK(op_lt_plan_init(&p, kind, M, N, K, why, sizeof(why)) == 0);
	CHECK_EQ_U64(desc_i32(p.op, CUBLASLT_MATMUL_DESC_TRANSA), CUBLAS_OP_T);
	CHECK_EQ_U64(desc_i32(p.op, CUBLASLT_MATMUL_DESC_TRANSB), CUBLAS_OP_N);
	CHECK_EQ_U64(desc_i32(p.op, CUBLASLT_MATMUL_DESC_COMPUTE_TYPE), CUBLAS_COMPUTE_32F);
	CHECK_EQ_U64(desc_i32(p.op, CUBLASLT_MATMUL_DESC_SCALE_TYPE), CUDA_R_32F);
	int32_t in = kind == OP_LT_BF16 ? CUDA_R_16BF : CUDA_R_4F_E2M1;
	if (kind != OP_LT_BF16) {
		int32_t mode = kind == OP_LT_NVFP4 ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3
						   : CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
		CHECK_EQ_U64(desc_i32(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE), mode);
		CHECK_EQ_U64(desc_i32(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE), mode);
		/* the scale pointers go where they belong: A = weights, B = activations */
		const void *wa = (const void *)0x1000, *xb = (const void *)0x2000, *got = NULL;
		size_t w = 0;
		CHECK(op_lt_plan_scales(&p, wa, xb, why, sizeof(why)) == 0);
		cublasLtMatmulDescGetAttribute(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &got, sizeof(got), &w);
		CHECK(got == wa);
		cublasLtMatmulDescGetAttribute(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &got, sizeof(got), &w);
		CHECK(got == xb);
	}
	/* A = W: K × N (ld K); B = X: K × M (ld K); D: N × M (ld N), FP32 */
	CHECK_EQ_U64(layout_i64(p.a, CUBLASLT_MATRIX_LAYOUT_TYPE), in);
	CHECK_EQ_U64(layout_i64(p.a, CUBLASLT_MATRIX_LAYOUT_ROWS), K);
	CHECK_EQ_U64(layout_i64(p.a, CUBLASLT_MATRIX_LAYOUT_COLS), N);
	CHECK_EQ_U64(layout_i64(p.a, CUBLASLT_MATRIX_LAYOUT_LD), K);
	CHECK_EQ_U64(layout_i64(p.b, CUBLASLT_MATRIX_LAYOUT_TYPE), in);
	CHECK_EQ_U64(layout_i64(p.b, CUBLASLT_MATRIX_LAYOUT_ROWS), K);
	CHECK_EQ_U64(layout_i64(p.b, CUBLASLT_MATRIX_LAYOUT_COLS), M);
	CHECK_EQ_U64(layout_i64(p.b, CUBLASLT_MATRIX_LAYOUT_LD), K);
	CHECK_EQ_U64(layout_i64(p.d, CUBLASLT_MATRIX_LAYOUT_TYPE), CUDA_R_32F);
	CHECK_EQ_U64(layout_i64(p.d, CUBLASLT_MATRIX_LAYOUT_ROWS), N);
	CHECK_EQ_U64(layout_i64(p.d, CUBLASLT_MATRIX_LAYOUT_COLS), M);
	CHECK_EQ_U64(layout_i64(p.d, CUBLASLT_MATRIX_LAYOUT_LD), N);
	op_lt_plan_free(&p);
	CHECK(p.op == NULL && p.a == NULL);
}

int main(void)
{
	/* hand-worked tile offsets: ((r/128)·ceil(cols/4) + c/4)·512 + (r%32)·16 + ((r%128)/32)·4 + c%4 */
	CHECK_EQ_U64(op_fp4_scale_tiled_offset(0, 0, 8), 0);
	CHECK_EQ_U64(op_fp4_scale_tiled_offset(1, 0, 8), 16);
	CHECK_EQ_U64(op_fp4_scale_tiled_offset(32, 0, 8), 4);
	CHECK_EQ_U64(op_fp4_scale_tiled_offset(33, 5, 8), 512 + 16 + 4 + 1);
	CHECK_EQ_U64(op_fp4_scale_tiled_offset(127, 3, 8), 31 * 16 + 3 * 4 + 3);
	CHECK_EQ_U64(op_fp4_scale_tiled_offset(128, 0, 8), 2 * 512);
	CHECK_EQ_U64(op_fp4_scale_tiled_offset(130, 6, 5), (1 * 2 + 1) * 512 + 2 * 16 + 2);
	CHECK_EQ_U64(op_fp4_scale_tiled_size(1, 1), 512);
	CHECK_EQ_U64(op_fp4_scale_tiled_size(129, 5), 256 * 8);

	const uint32_t Ms[] = {1, 7, 128, 130, 300};
	const uint32_t ks[] = {16, 24, 40, 130, 264};
	for (size_t i = 0; i < sizeof(Ms) / sizeof(*Ms); i++)
		for (size_t j = 0; j < sizeof(ks) / sizeof(*ks); j++) {
			quantizer_case(OP_FP4_NVFP4, 0, Ms[i], ks[j]);
			quantizer_case(OP_FP4_MXFP4, OP_MX_SCALE_FLOOR, Ms[i], ks[j]);
			quantizer_case(OP_FP4_MXFP4, OP_MX_SCALE_CEIL, Ms[i], ks[j]);
		}

	plan_case(OP_LT_NVFP4, 4096, 128, 128);
	plan_case(OP_LT_MXFP4, 65536, 256, 288);
	plan_case(OP_LT_NVFP4, 1, 4096, 4096);
	plan_case(OP_LT_BF16, 16, 4096, 4096);
	plan_case(OP_LT_BF16, 4096, 128, 24);

	op_lt_plan p;
	char why[256] = "";
	CHECK(op_lt_plan_init(&p, OP_LT_NVFP4, 64, 128, 48, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "multiple of 32") != NULL);
	CHECK(op_lt_plan_init(&p, OP_LT_BF16, 64, 128, 20, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "multiple of 8") != NULL);
	CHECK(op_lt_plan_init(&p, OP_LT_MXFP4, 0, 128, 64, why, sizeof(why)) == -EINVAL);
	CHECK(strstr(why, "empty") != NULL);
	CHECK(op_lt_plan_init(&p, 9, 1, 1, 32, why, sizeof(why)) == -EINVAL);
	return check_finish("test_gpu_host");
}
