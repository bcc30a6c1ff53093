/*
 * fp4_tensor.c — NVFP4/MXFP4 quantization, dequantization and scale tiling (fp4_tensor.h).
 */
#include "kernels/fp4_tensor.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int op_fp4_tensor_alloc(op_fp4_tensor *t, int format, uint32_t rows, uint32_t cols)
{
	memset(t, 0, sizeof(*t));
	if ((format != OP_FP4_NVFP4 && format != OP_FP4_MXFP4) || rows == 0 || cols == 0 ||
	    cols % op_fp4_block(format))
		return -EINVAL;
	t->format = format;
	t->rows = rows;
	t->cols = cols;
	t->tensor_scale = 1.0f;
	t->codes = calloc((size_t)rows * cols / 2, 1);
	t->scales = calloc((size_t)rows * (cols / op_fp4_block(format)), 1);
	if (!t->codes || !t->scales) {
		op_fp4_tensor_free(t);
		return -ENOMEM;
	}
	return 0;
}

void op_fp4_tensor_free(op_fp4_tensor *t)
{
	if (!t)
		return;
	free(t->codes);
	free(t->scales);
	t->codes = t->scales = NULL;
}

float op_fp4_scale_value(int format, uint8_t code)
{
	return format == OP_FP4_MXFP4 ? op_e8m0_to_float(code) : op_e4m3_to_float(code);
}

float op_fp4_quantize_block(const float *x, uint32_t n, int format, float enc_scale, int mx_mode,
			    uint8_t *scale_code, int8_t *doubled)
{
	return op_fp4_block_quantize(x, n, format, enc_scale, mx_mode, scale_code, doubled);
}

int op_fp4_quantize(op_fp4_tensor *t, const float *src, uint32_t src_cols, size_t ld, int mx_mode)
{
	uint32_t bl = op_fp4_block(t->format), nb = t->cols / bl;
	float amax = 0, buf[OP_MXFP4_BLOCK];
	int8_t d[OP_MXFP4_BLOCK];

	if (src_cols > t->cols)
		return -EINVAL;
	for (uint32_t r = 0; r < t->rows; r++)
		for (uint32_t c = 0; c < src_cols; c++) {
			float v = src[(size_t)r * ld + c];
			if (!isfinite(v))
				return -EINVAL;
			amax = fabsf(v) > amax ? fabsf(v) : amax;
		}
	float S = 1.0f;
	t->tensor_scale = 1.0f;
	if (t->format == OP_FP4_NVFP4 && amax > 0) {
		S = (OP_E4M3_MAX * OP_E2M1_MAX) / amax;
		t->tensor_scale = amax / (OP_E4M3_MAX * OP_E2M1_MAX);
	}
	for (uint32_t r = 0; r < t->rows; r++)
		for (uint32_t b = 0; b < nb; b++) {
			for (uint32_t i = 0; i < bl; i++) {
				uint32_t c = b * bl + i;
				buf[i] = c < src_cols ? src[(size_t)r * ld + c] : 0.0f;
			}
			op_fp4_quantize_block(buf, bl, t->format, S, mx_mode, &t->scales[(size_t)r * nb + b], d);
			uint8_t *out = t->codes + ((size_t)r * t->cols + b * bl) / 2;
			for (uint32_t i = 0; i < bl; i += 2)
				out[i / 2] = (uint8_t)(op_e2m1_code_of_doubled(d[i]) | (op_e2m1_code_of_doubled(d[i + 1]) << 4));
		}
	return 0;
}

uint8_t op_fp4_code(const op_fp4_tensor *t, uint32_t r, uint32_t c)
{
	uint8_t b = t->codes[((size_t)r * t->cols + c) / 2];
	return (c & 1u) ? (uint8_t)(b >> 4) : (uint8_t)(b & 0xfu);
}

void op_fp4_dequantize(const op_fp4_tensor *t, float *dst)
{
	uint32_t bl = op_fp4_block(t->format), nb = t->cols / bl;
	for (uint32_t r = 0; r < t->rows; r++)
		for (uint32_t c = 0; c < t->cols; c++) {
			float s = op_fp4_scale_value(t->format, t->scales[(size_t)r * nb + c / bl]);
			dst[(size_t)r * t->cols + c] = op_e2m1_to_float(op_fp4_code(t, r, c)) * s * t->tensor_scale;
		}
}

void op_fp4_scales_tile(uint8_t *dst, const uint8_t *linear, uint32_t rows, uint32_t cols)
{
	memset(dst, 0, op_fp4_scale_tiled_size(rows, cols));
	for (uint32_t r = 0; r < rows; r++)
		for (uint32_t c = 0; c < cols; c++)
			dst[op_fp4_scale_tiled_offset(r, c, cols)] = linear[(size_t)r * cols + c];
}
