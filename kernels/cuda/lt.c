/*
 * kernels/cuda/lt.c — cuBLASLt plans (lt.h).
 */
#include "kernels/cuda/lt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *op_lt_kind_name(int kind)
{
	return kind == OP_LT_NVFP4 ? "nvfp4" : kind == OP_LT_MXFP4 ? "mxfp4" : kind == OP_LT_BF16 ? "bf16" : "?";
}

static int lt_fail(char *why, size_t whylen, const char *what, cublasStatus_t st)
{
	snprintf(why, whylen, "cuBLASLt: %s failed (status %d)", what, (int)st);
	return -EINVAL;
}

#define SET(obj, fn, attr, val)                                                                                \
	do {                                                                                                   \
		cublasStatus_t st_ = fn(obj, attr, &(val), sizeof(val));                                       \
		if (st_ != CUBLAS_STATUS_SUCCESS) {                                                           \
			op_lt_plan_free(p);                                                                    \
			return lt_fail(why, whylen, #attr, st_);                                               \
		}                                                                                              \
	} while (0)

int op_lt_plan_init(op_lt_plan *p, int kind, uint32_t M, uint32_t N, uint32_t K, char *why, size_t whylen)
{
	memset(p, 0, sizeof(*p));
	if (kind != OP_LT_NVFP4 && kind != OP_LT_MXFP4 && kind != OP_LT_BF16) {
		snprintf(why, whylen, "unknown cuBLASLt product kind %d", kind);
		return -EINVAL;
	}
	if (!M || !N || !K) {
		snprintf(why, whylen, "empty product %u×%u×%u", M, N, K);
		return -EINVAL;
	}
	if (kind != OP_LT_BF16 && K % 32u) {
		snprintf(why, whylen, "%s product needs K a multiple of 32, not %u", op_lt_kind_name(kind), K);
		return -EINVAL;
	}
	if (kind == OP_LT_BF16 && K % 8u) {
		snprintf(why, whylen, "bf16 product needs K a multiple of 8 (16-byte rows), not %u", K);
		return -EINVAL;
	}
	p->kind = kind;
	p->M = M, p->N = N, p->K = K;

	cublasStatus_t st = cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
	if (st != CUBLAS_STATUS_SUCCESS)
		return lt_fail(why, whylen, "cublasLtMatmulDescCreate", st);
	int32_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
	SET(p->op, cublasLtMatmulDescSetAttribute, CUBLASLT_MATMUL_DESC_TRANSA, ta);
	SET(p->op, cublasLtMatmulDescSetAttribute, CUBLASLT_MATMUL_DESC_TRANSB, tb);
	cudaDataType_t in = CUDA_R_16BF;
	if (kind != OP_LT_BF16) {
		int32_t mode = kind == OP_LT_NVFP4 ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3
						   : CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
		SET(p->op, cublasLtMatmulDescSetAttribute, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, mode);
		SET(p->op, cublasLtMatmulDescSetAttribute, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, mode);
		in = CUDA_R_4F_E2M1;
	}
	if ((st = cublasLtMatrixLayoutCreate(&p->a, in, K, N, K)) != CUBLAS_STATUS_SUCCESS ||
	    (st = cublasLtMatrixLayoutCreate(&p->b, in, K, M, K)) != CUBLAS_STATUS_SUCCESS ||
	    (st = cublasLtMatrixLayoutCreate(&p->d, CUDA_R_32F, N, M, N)) != CUBLAS_STATUS_SUCCESS) {
		op_lt_plan_free(p);
		return lt_fail(why, whylen, "cublasLtMatrixLayoutCreate", st);
	}
	return 0;
}

int op_lt_plan_scales(op_lt_plan *p, const void *a_scale, const void *b_scale, char *why, size_t whylen)
{
	if (p->kind == OP_LT_BF16)
		return 0;
	cublasStatus_t st;
	if ((st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale,
						 sizeof(a_scale))) != CUBLAS_STATUS_SUCCESS ||
	    (st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale,
						 sizeof(b_scale))) != CUBLAS_STATUS_SUCCESS)
		return lt_fail(why, whylen, "setting the block-scale pointers", st);
	return 0;
}

void op_lt_plan_free(op_lt_plan *p)
{
	if (p->op)
		cublasLtMatmulDescDestroy(p->op);
	if (p->a)
		cublasLtMatrixLayoutDestroy(p->a);
	if (p->b)
		cublasLtMatrixLayoutDestroy(p->b);
	if (p->d)
		cublasLtMatrixLayoutDestroy(p->d);
	p->op = NULL;
	p->a = p->b = p->d = NULL;
	p->chosen = 0;
}

static cublasStatus_t run_algo(const op_lt_plan *p, cublasLtHandle_t h, const cublasLtMatmulAlgo_t *algo,
			       const void *A, const void *B, float *D, float alpha, void *ws, size_t ws_size,
			       cudaStream_t stream)
{
	const float beta = 0.0f;
	return cublasLtMatmul(h, p->op, &alpha, A, p->a, B, p->b, &beta, D, p->d, D, p->d, algo, ws, ws_size,
			      stream);
}

int op_lt_plan_choose(op_lt_plan *p, cublasLtHandle_t h, const void *A, const void *B, float *D, float alpha,
		      void *workspace, size_t ws_size, cudaStream_t stream, char *why, size_t whylen)
{
	cublasLtMatmulPreference_t pref = NULL;
	cublasLtMatmulHeuristicResult_t res[OP_LT_MAX_CANDIDATES];
	int found = 0;
	cublasStatus_t st = cublasLtMatmulPreferenceCreate(&pref);
	if (st == CUBLAS_STATUS_SUCCESS)
		st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_size,
							  sizeof(ws_size));
	if (st == CUBLAS_STATUS_SUCCESS)
		st = cublasLtMatmulAlgoGetHeuristic(h, p->op, p->a, p->b, p->d, p->d, pref, OP_LT_MAX_CANDIDATES, res,
						    &found);
	if (pref)
		cublasLtMatmulPreferenceDestroy(pref);
	p->candidates = found;
	if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
		snprintf(why, whylen,
			 "cuBLASLt offers no algorithm for the %s product %u×%u×%u here (heuristic status %d, "
			 "%d results)%s",
			 op_lt_kind_name(p->kind), p->M, p->N, p->K, (int)st, found,
			 p->kind != OP_LT_BF16 ? ": block-scaled FP4 needs FP4 tensor cores (compute capability 10.0 "
						 "or later) and a shape they take"
					       : "");
		return -ENOTSUP;
	}
	cudaEvent_t t0 = NULL, t1 = NULL;
	if (cudaEventCreate(&t0) != cudaSuccess || cudaEventCreate(&t1) != cudaSuccess) {
		snprintf(why, whylen, "cudaEventCreate failed");
		if (t0)
			cudaEventDestroy(t0);
		return -EIO;
	}
	float best = -1;
	int besti = -1;
	for (int i = 0; i < found; i++) {
		if (res[i].state != CUBLAS_STATUS_SUCCESS || res[i].workspaceSize > ws_size)
			continue;
		if (run_algo(p, h, &res[i].algo, A, B, D, alpha, workspace, ws_size, stream) != CUBLAS_STATUS_SUCCESS)
			continue; /* a candidate that fails to run is not a candidate */
		cudaEventRecord(t0, stream);
		int ok = 1;
		for (int r = 0; r < 3 && ok; r++)
			ok = run_algo(p, h, &res[i].algo, A, B, D, alpha, workspace, ws_size, stream) ==
			     CUBLAS_STATUS_SUCCESS;
		cudaEventRecord(t1, stream);
		float ms = 0;
		if (!ok || cudaEventSynchronize(t1) != cudaSuccess || cudaEventElapsedTime(&ms, t0, t1) != cudaSuccess)
			continue;
		if (besti < 0 || ms < best)
			best = ms, besti = i;
	}
	cudaEventDestroy(t0);
	cudaEventDestroy(t1);
	if (besti < 0) {
		snprintf(why, whylen, "none of cuBLASLt's %d algorithms for the %s product %u×%u×%u ran on this GPU",
			 found, op_lt_kind_name(p->kind), p->M, p->N, p->K);
		return -ENOTSUP;
	}
	p->algo = res[besti].algo;
	p->workspace = res[besti].workspaceSize;
	p->best_us = best * 1000.0f / 3.0f;
	p->chosen = 1;
	return 0;
}

int op_lt_plan_run(const op_lt_plan *p, cublasLtHandle_t h, const void *A, const void *B, float *D, float alpha,
		   void *workspace, size_t ws_size, cudaStream_t stream)
{
	if (!p->chosen)
		return -EINVAL;
	return run_algo(p, h, &p->algo, A, B, D, alpha, workspace, ws_size, stream) == CUBLAS_STATUS_SUCCESS ? 0
														: -EIO;
}
