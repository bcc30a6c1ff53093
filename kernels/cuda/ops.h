/*
 * kernels/cuda/ops.h — our CUDA kernels, callable from C (the plugin, the tests, the bench).
 *
 * Every kernel reproduces the CPU reference's arithmetic (kernels/fp4_gemm.h) where the order
 * of operations allows it, because the reference defines the answer:
 *   op_cuda_quantize_act   the same block quantizer as the CPU (fp4.h: op_fp4_block_quantize),
 *                          one thread per block: bit-exact codes and scales, linear and/or in
 *                          cuBLASLt's 128×4 tiles.
 *   op_cuda_dequant_bf16   FP4 weights → BF16, exact (an FP4 value times its block scale needs
 *                          at most 5 significant bits); the tensor scale goes into alpha.
 *   op_cuda_linear         Y = act(X·Wᵀ·g + b) with W kept 4-bit in memory and expanded in
 *                          registers: W4A16, W4A4 (activations quantized per block, integer block
 *                          sums — the CPU's emulation) and FP32 layers. Each output sums in the
 *                          reference's order (k ascending; blocks ascending), so it is bit-exact
 *                          with the scalar reference.
 *   op_cuda_gemv           small M (≤ 16) against a large weight tensor: streams the 4-bit codes
 *                          once, expands them to BF16 in registers and multiplies on the tensor
 *                          cores (mma.sync, FP32 sums); weights exact, W4A4's activations exact,
 *                          W4A16's to 2⁻¹⁶ (a hi + lo BF16 split); sums in another order, so it
 *                          matches to rounding, not bits.
 *   op_cuda_gemv_simt      the same on the CUDA cores (the first version; kept as the baseline
 *                          the tensor-core one is measured and tested against).
 *   op_cuda_pool           masked mean+max per event, in the reference's order (bit-exact).
 * All are asynchronous on the given stream and return the launch error.
 */
#ifndef OP_KERNELS_CUDA_OPS_H
#define OP_KERNELS_CUDA_OPS_H
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

enum op_dev_weights { OP_DEV_W_FP32 = 0, OP_DEV_W_FP4 = 1 };

/* One layer as the device sees it: every pointer is device memory. */
typedef struct op_dev_linear {
	int weights;          /* op_dev_weights */
	int format;           /* OP_FP4_NVFP4 / OP_FP4_MXFP4 (FP4 weights) */
	int mode;             /* OP_W4A4 / OP_W4A16 (FP32 layers run as W4A16) */
	int relu, mx_mode;
	uint32_t n, k, kp;    /* outputs; logical inputs; stored columns (a multiple of the block) */
	const uint8_t *codes; /* FP4: [n][kp/2], element 2i in the low nibble */
	const float *wscale;  /* FP4: [n][kp/block] decoded block scales (the layer kernel) */
	const uint8_t *scodes; /* FP4: [n][kp/block] scale codes (GEMV: one byte per block to read) */
	const float *wf32;    /* FP32: [n][kp] */
	const float *bias;    /* [n] */
	float tensor_scale;   /* gw (1 for MXFP4 and FP32) */
	float act_scale;      /* gx: NVFP4 W4A4's static activation decode scale */
} op_dev_linear;

/*
 * Quantize X[M][k] (leading dimension ldx, zero-padded to kp) per block in `format`.
 * Outputs (any may be NULL): packed codes [M][kp/2]; scale codes [M][kp/block] (linear);
 * scale codes in 128×4 tiles for `tiled_rows` ≥ M rows (the padding is written as zeros);
 * doubled codes q2 [M][kp]; decoded scales xs [M][kp/block].
 */
cudaError_t op_cuda_quantize_act(const float *X, size_t ldx, uint32_t M, uint32_t k, uint32_t kp, int format,
				 float enc_scale, int mx_mode, uint8_t *codes, uint8_t *scales_linear,
				 uint8_t *scales_tiled, uint32_t tiled_rows, int8_t *q2, float *xs,
				 cudaStream_t stream);

/* FP4 [n][kp] (codes + linear scale codes) → BF16 [n][kp] (ld kp): e2m1 · block scale, exact. */
cudaError_t op_cuda_dequant_bf16(const uint8_t *codes, const uint8_t *scales_linear, uint32_t n, uint32_t kp,
				 int format, uint16_t *out, cudaStream_t stream);
/* FP32 [M][k] (ldx) → BF16 [M][kp] (zero-padded), round to nearest even (fp4.h); kp a multiple
 * of 4. */
cudaError_t op_cuda_f32_to_bf16(const float *X, size_t ldx, uint32_t M, uint32_t k, uint32_t kp, uint16_t *out,
				cudaStream_t stream);

/* Reads `bytes` of device memory and writes none: a benchmark's way to leave L2 holding other,
 * clean data before a timed run (a memset would leave it dirty, and the write-backs would be
 * charged to the kernel timed next). */
cudaError_t op_cuda_read_through(const void *buf, size_t bytes, cudaStream_t stream);

/* Scratch op_cuda_linear needs for W4A4 at M rows (bytes); 0 for other modes. */
size_t op_cuda_linear_scratch(const op_dev_linear *L, uint32_t M);
/* Y[M][n] (ldy) = act(X[M][k] (ldx) · Wᵀ · g + b). scratch: op_cuda_linear_scratch bytes. */
cudaError_t op_cuda_linear(const op_dev_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy,
			   void *scratch, cudaStream_t stream);
/* Y = act(Y · alpha + b) in place (the epilogue after a cuBLASLt product without one). */
cudaError_t op_cuda_bias_act(float *Y, size_t ldy, uint32_t M, uint32_t n, float alpha, const float *bias,
			     int relu, cudaStream_t stream);

/* Small-M product, M ≤ OP_CUDA_GEMV_MAX_M; W4A4 needs op_cuda_linear_scratch bytes. */
#define OP_CUDA_GEMV_MAX_M 16u
cudaError_t op_cuda_gemv(const op_dev_linear *L, const float *X, uint32_t M, float *Y, void *scratch,
			 cudaStream_t stream);
cudaError_t op_cuda_gemv_simt(const op_dev_linear *L, const float *X, uint32_t M, float *Y, void *scratch,
			      cudaStream_t stream);

/* out[e] = [mean (C) | max (C)] over rows [off[e], off[e+1]) of H (ldh); ldo ≥ 2C. */
cudaError_t op_cuda_pool(const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events, float *out,
			 size_t ldo, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif
