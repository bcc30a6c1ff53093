/*
 * fp4_tensor.h — NVFP4 and MXFP4 tensors on the CPU: quantize, dequantize, the scale tiling
 * cuBLASLt wants. Formats and layouts: fp4.h. Library code: never logs, never exits.
 *
 * Quantization recipes (docs/model-format.md):
 *   NVFP4  tensor encode scale S = 448·6 / amax(tensor) (1 when amax is 0), decode scale
 *          g = amax / (448·6); per block s = ue4m3((amax_block · S) / 6); codes
 *          q = e2m1(x · (S / s)) (0 when s is 0).
 *   MXFP4  per block: FLOOR (OCP v1.0): scale exponent floor(log2 amax_block) − 2, values above
 *          6·2^e saturate; CEIL: the smallest power of two ≥ amax_block / 6, nothing clips.
 *          Codes q = e2m1(x · 2^−e). Scale codes are kept in [1, 253] so that 2^−e is a normal
 *          float (an all-zero block gets 2^−126).
 */
#ifndef OP_KERNELS_FP4_TENSOR_H
#define OP_KERNELS_FP4_TENSOR_H
#include <stddef.h>
#include <stdint.h>

#include "kernels/fp4.h"

typedef struct op_fp4_tensor {
	int format;          /* op_fp4_format */
	uint32_t rows, cols; /* cols: a multiple of the block size */
	uint8_t *codes;      /* rows × cols/2: element 2i in the low nibble */
	uint8_t *scales;     /* rows × cols/block, row-major ("linear") */
	float tensor_scale;  /* decode: NVFP4 g = amax/(448·6); MXFP4 1 */
} op_fp4_tensor;

/* Zeroed storage; cols must be a multiple of the block. 0, -EINVAL or -ENOMEM. */
int op_fp4_tensor_alloc(op_fp4_tensor *t, int format, uint32_t rows, uint32_t cols);
void op_fp4_tensor_free(op_fp4_tensor *t);

/*
 * Quantize rows × src_cols floats (leading dimension ld) into t (allocated by the caller with
 * t->cols ≥ src_cols; the extra columns are zero). -EINVAL on a NaN or infinite input.
 */
int op_fp4_quantize(op_fp4_tensor *t, const float *src, uint32_t src_cols, size_t ld, int mx_mode);
/* dst: rows × cols floats, the exact values the codes stand for (times the tensor scale). */
void op_fp4_dequantize(const op_fp4_tensor *t, float *dst);
/* Code of element (r, c). */
uint8_t op_fp4_code(const op_fp4_tensor *t, uint32_t r, uint32_t c);

/*
 * One block: n (16 or 32) values → one scale code and n doubled signed E2M1 values (−12..12),
 * returning the decoded block scale (e4m3 value, or 2^e). enc_scale: NVFP4's S (ignored for
 * MXFP4). The single definition shared by weights and by activations quantized on the fly.
 */
float op_fp4_quantize_block(const float *x, uint32_t n, int format, float enc_scale, int mx_mode,
			    uint8_t *scale_code, int8_t *doubled);
/* Decoded value of a block scale code. */
float op_fp4_scale_value(int format, uint8_t code);

/* Linear [rows][cols] scales → cuBLASLt's 128×4 tiles (dst: op_fp4_scale_tiled_size bytes). */
void op_fp4_scales_tile(uint8_t *dst, const uint8_t *linear, uint32_t rows, uint32_t cols);

#endif
