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
	float amax = 0, s, inv;
	for (uint32_t i = 0; i < n; i++) {
		float a = fabsf(x[i]);
		amax = a > amax ? a : amax;
	}
	if (format == OP_FP4_MXFP4) {
		int code;
		if (mx_mode == OP_MX_SCALE_CEIL)
			code = op_e8m0_from_float(amax / 6.0f, OP_E8M0_RP, 1);
		else
			code = (int)op_e8m0_from_float(amax, OP_E8M0_RZ, 1) - 2;
		code = code < 1 ? 1 : code > 253 ? 253 : code;
		*scale_code = (uint8_t)code;
		s = op_bits_f32((uint32_t)code << 23);
		inv = op_bits_f32((uint32_t)(254 - code) << 23);
	} else {
		*scale_code = op_e4m3_from_float((amax * enc_scale) / 6.0f) & 0x7fu;
		s = op_e4m3_to_float(*scale_code);
		inv = s > 0 ? enc_scale / s : 0.0f;
	}
	for (uint32_t i = 0; i < n; i++)
		doubled[i] = (int8_t)op_e2m1_doubled(op_e2m1_from_float(x[i] * inv));
	return s;
}

static uint8_t code_of_doubled(int d)
{
	static const uint8_t c[13] = {0, 1, 2, 3, 4, 0, 5, 0, 6, 0, 0, 0, 7};
	return d < 0 ? (uint8_t)(8u | c[-d]) : c[d];
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
				out[i / 2] = (uint8_t)(code_of_doubled(d[i]) | (code_of_doubled(d[i + 1]) << 4));
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
