/*
 * kernels/cuda/lt.h — cuBLASLt products for the model's layers: descriptors, algorithm choice,
 * the call. Host C; the descriptor set-up needs no GPU (tests/unit/test_gpu_host.c reads every
 * attribute back on a machine without one).
 *
 * Our layers compute Y[M][N] = X[M][K] · W[N][K]ᵀ with everything row-major and K-major. In
 * cuBLASLt's column-major terms that is D (N × M, ld N) = Aᵀ · B with A = W (K × N, ld K) and
 * B = X (K × M, ld K): the "TN" layout, the only one block-scaled FP4 accepts on CUDA 12.x and
 * 13.x before cuBLAS 13.6. So A's block scales are the weights' ([N][K/block]) and B's the
 * activations' ([M][K/block]), both in the 128×4 tile layout (fp4.h). A wrapper that swaps
 * operands must swap the scale pointers with them (a known trap).
 *
 * Kinds:
 *   OP_LT_NVFP4  A, B CUDA_R_4F_E2M1, scales VEC16_UE4M3; alpha = gx · gw.
 *   OP_LT_MXFP4  A, B CUDA_R_4F_E2M1, scales VEC32_UE8M0; alpha = 1.
 *   OP_LT_BF16   A, B CUDA_R_16BF (FP4 weights dequantized exactly); alpha = gw.
 * D is FP32 in every kind (C = D, beta = 0); compute FP32.
 */
#ifndef OP_KERNELS_CUDA_LT_H
#define OP_KERNELS_CUDA_LT_H
#include <stddef.h>
#include <stdint.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum op_lt_kind { OP_LT_NVFP4 = 1, OP_LT_MXFP4 = 2, OP_LT_BF16 = 3 };

#define OP_LT_WORKSPACE (32u << 20) /* the usual choice for block-scaled FP4 */
#define OP_LT_MAX_CANDIDATES 8

typedef struct op_lt_plan {
	int kind;
	uint32_t M, N, K; /* ours: X rows, outputs, inputs (K padded as stored) */
	cublasLtMatmulDesc_t op;
	cublasLtMatrixLayout_t a, b, d;
	cublasLtMatmulAlgo_t algo; /* the chosen one (valid when chosen) */
	int chosen;
	int candidates;  /* how many the heuristic offered */
	float best_us;   /* measured time of the winner */
	size_t workspace; /* what the winner needs */
} op_lt_plan;

/* Kind name for reports ("nvfp4", "mxfp4", "bf16"). */
const char *op_lt_kind_name(int kind);

/*
 * Descriptors for one shape (no GPU needed). K must be a multiple of 32 for the FP4 kinds and
 * of 8 for BF16 (16-byte rows). 0, or -EINVAL/-ENOTSUP with the reason in why.
 */
int op_lt_plan_init(op_lt_plan *p, int kind, uint32_t M, uint32_t N, uint32_t K, char *why, size_t whylen);
/* FP4 kinds: the device pointers of A's (weights') and B's (activations') tiled scales. */
int op_lt_plan_scales(op_lt_plan *p, const void *a_scale, const void *b_scale, char *why, size_t whylen);
void op_lt_plan_free(op_lt_plan *p);

/*
 * Ask the heuristic for up to OP_LT_MAX_CANDIDATES algorithms, time each (a warm-up and three
 * runs with events on `stream`) and keep the fastest. When the heuristic offers nothing — FP4 on
 * a GPU without FP4 tensor cores, for one — returns -ENOTSUP with a sentence saying so; the
 * caller falls back to our own kernels. A, B, D: device buffers of the plan's shape.
 */
int op_lt_plan_choose(op_lt_plan *p, cublasLtHandle_t h, const void *A, const void *B, float *D, float alpha,
		      void *workspace, size_t ws_size, cudaStream_t stream, char *why, size_t whylen);
/* D = alpha · op(A)·op(B) with the chosen algorithm (stream-capturable). */
int op_lt_plan_run(const op_lt_plan *p, cublasLtHandle_t h, const void *A, const void *B, float *D, float alpha,
		   void *workspace, size_t ws_size, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
