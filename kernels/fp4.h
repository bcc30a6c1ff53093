/*
 * fp4.h — the FP4 number formats and tensor layouts, defined once for the CPU and for nvcc.
 *
 * Scalar conversions (bit-exact with NVIDIA's cuda_fp4.h / cuda_fp8.h host code, checked by
 * tests/unit/test_fp4_oracle.c against those headers):
 *   E2M1  — 4-bit element: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6}; round-to-nearest-even, saturate to ±6,
 *           NaN → +6, |x| ≤ 0.25 → ±0 (the sign survives underflow).
 *   E4M3  — 8-bit float, bias 7, max 448, no infinity, 0x7F/0xFF = NaN; RNE, saturate to ±448
 *           ("satfinite"), NaN → 0x7F. NVFP4's block scales are the
 *           non-negative half (UE4M3).
 *   E8M0  — 8-bit power of two 2^(e−127); 0xFF = NaN. From float: truncate (RZ) or round up (RP).
 *   BF16  — RNE from float, NaN kept quiet.
 *
 * Tensors (two 4-bit codes per byte, element 2i in the LOW nibble; rows are K-major):
 *   NVFP4 — blocks of 16 along K, one UE4M3 scale per block, one FP32 decode scale per tensor:
 *           x ≈ e2m1(q) · e4m3(s) · tensor_scale.
 *   MXFP4 — blocks of 32 along K, one E8M0 scale per block: x ≈ e2m1(q) · 2^(s−127).
 *   Scales are kept row-major [rows][K/block] ("linear"); cuBLASLt wants them in 128×4 tiles,
 *   see op_fp4_scale_tiled_offset().
 *
 * Header-only and dependency-free so that CUDA kernels use exactly the same definitions.
 */
#ifndef OP_KERNELS_FP4_H
#define OP_KERNELS_FP4_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define OP_HD __host__ __device__ __forceinline__
#else
#define OP_HD static inline
#endif

enum op_fp4_format {
	OP_FP4_NVFP4 = 1,
	OP_FP4_MXFP4 = 2,
};
#define OP_NVFP4_BLOCK 16u
#define OP_MXFP4_BLOCK 32u
#define OP_E2M1_MAX 6.0f
#define OP_E4M3_MAX 448.0f

OP_HD uint32_t op_fp4_block(int format)
{
	return format == OP_FP4_MXFP4 ? OP_MXFP4_BLOCK : OP_NVFP4_BLOCK;
}

OP_HD uint32_t op_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}

OP_HD float op_bits_f32(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

/* ---- E2M1 ------------------------------------------------------------------------------ */

/* Magnitudes times two: every E2M1 value doubled is a small integer. */
#define OP_E2M1_DOUBLED_INIT {0, 1, 2, 3, 4, 6, 8, 12}

OP_HD float op_e2m1_to_float(uint8_t code)
{
	const float mag[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
	float v = mag[code & 7u];
	return (code & 8u) ? -v : v;
}

/* Doubled signed value of a code: −12..12. */
OP_HD int op_e2m1_doubled(uint8_t code)
{
	const int8_t d[8] = OP_E2M1_DOUBLED_INIT;
	int v = d[code & 7u];
	return (code & 8u) ? -v : v;
}

/*
 * Round to nearest, ties to even, with saturation. The midpoints between neighbours and the
 * side each tie falls on (the even code): 0.25→0, 0.75→1, 1.25→1, 1.75→2, 2.5→2, 3.5→4, 5→4.
 */
OP_HD uint8_t op_e2m1_from_float(float x)
{
	uint32_t u = op_f32_bits(x);
	uint32_t a = u & 0x7fffffffu;
	uint8_t sign = (uint8_t)((u >> 28) & 8u);
	if (a > 0x7f800000u) /* NaN → +6 */
		return 7u;
	float m = op_bits_f32(a);
	uint8_t c = (uint8_t)((m > 0.25f) + (m >= 0.75f) + (m > 1.25f) + (m >= 1.75f) + (m > 2.5f) +
			      (m >= 3.5f) + (m > 5.0f));
	return (uint8_t)(c | sign);
}

/* ---- E4M3 ------------------------------------------------------------------------------ */

OP_HD float op_e4m3_to_float(uint8_t b)
{
	uint32_t e = (b >> 3) & 0xfu, m = b & 7u;
	float v;
	if (e == 15u && m == 7u)
		v = op_bits_f32(0x7fc00000u);
	else if (e == 0)
		v = (float)m * (1.0f / 512.0f); /* subnormal: m · 2^-9 */
	else
		v = op_bits_f32(((e + 120u) << 23) | (m << 20));
	return (b & 0x80u) ? -v : v;
}

OP_HD uint8_t op_e4m3_from_float(float x)
{
	uint32_t u = op_f32_bits(x);
	uint32_t a = u & 0x7fffffffu;
	uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
	uint8_t r;
	if (a > 0x7f800000u)
		return 0x7fu; /* NaN, whatever its sign */
	if (a <= 0x3a800000u)                    /* ≤ 2^-10: half the smallest subnormal */
		return sign;
	if (a > 0x43e80000u) /* > 464 = 448 + half an ulp: saturate */
		return (uint8_t)(0x7eu | sign);
	if (a >= 0x3c800000u) { /* ≥ 2^-6: normal */
		uint32_t e = (a >> 23) - 120u, m = (a >> 20) & 7u, rest = a & 0xfffffu;
		r = (uint8_t)((e << 3) | m);
		if (rest > 0x80000u || (rest == 0x80000u && (m & 1u)))
			r++;
	} else {
		/* subnormal: value = m · 2^-9, m = round-half-even(a · 2^9), exact in float */
		uint32_t e = a >> 23, mant = (a & 0x7fffffu) | 0x800000u;
		uint32_t shift = 141u - e; /* bits below the kept ones */
		uint32_t keep = mant >> shift, rest = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
		r = (uint8_t)keep;
		if (rest > half || (rest == half && (keep & 1u)))
			r++;
	}
	return (uint8_t)(r | sign);
}

/* ---- E8M0 ------------------------------------------------------------------------------ */

enum op_e8m0_round { OP_E8M0_RZ = 0, OP_E8M0_RP = 1 };

OP_HD float op_e8m0_to_float(uint8_t e)
{
	if (e == 0xffu)
		return op_bits_f32(0x7fc00000u);
	if (e == 0)
		return op_bits_f32(0x00400000u); /* 2^-127, a float subnormal */
	return op_bits_f32((uint32_t)e << 23);
}

/*
 * The exponent of |x| as a scale. RZ truncates (x → 2^floor(log2|x|)), RP rounds up to the next
 * power of two. Following the hardware conversion, the input first passes through BF16 (RZ:
 * truncation; RP: round up), and subnormals below 2^-127 give 0. satfinite turns an overflow
 * (including infinity) into 0xFE; NaN stays 0xFF.
 */
OP_HD uint8_t op_e8m0_from_float(float x, int round_mode, int satfinite)
{
	uint32_t a = op_f32_bits(x) & 0x7fffffffu;
	uint32_t bf;
	if (a > 0x7f800000u)
		return 0xffu; /* NaN */
	if (round_mode == OP_E8M0_RP) {
		bf = a >> 16;
		if ((a & 0xffffu) && a < 0x7f800000u)
			bf++;
	} else {
		bf = a >> 16;
	}
	uint32_t res = (bf >> 7) & 0xffu;
	if (round_mode == OP_E8M0_RP && (bf & 0x7fu) && bf > 0x40u && bf < 0x7f80u)
		res++;
	if (satfinite && bf <= 0x7f80u && res == 0xffu)
		res--;
	return (uint8_t)res;
}

/* ---- BF16 ------------------------------------------------------------------------------ */

OP_HD uint16_t op_bf16_from_float(float x)
{
	uint32_t u = op_f32_bits(x);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((u >> 16) | 0x40u);
	u += 0x7fffu + ((u >> 16) & 1u);
	return (uint16_t)(u >> 16);
}

OP_HD float op_bf16_to_float(uint16_t h)
{
	return op_bits_f32((uint32_t)h << 16);
}

/* ---- one block: the single quantizer ------------------------------------------------- */

enum op_mx_scale_mode { OP_MX_SCALE_FLOOR = 0, OP_MX_SCALE_CEIL = 1 };

/* The code of a doubled signed E2M1 value (−12..12, only representable ones). */
OP_HD uint8_t op_e2m1_code_of_doubled(int d)
{
	const uint8_t c[13] = {0, 1, 2, 3, 4, 0, 5, 0, 6, 0, 0, 0, 7};
	return d < 0 ? (uint8_t)(8u | c[-d]) : c[d];
}

/*
 * One block: n (16 or 32) values → one scale code and n doubled signed E2M1 values (−12..12);
 * returns the decoded block scale. enc_scale: NVFP4's tensor encode scale S (ignored for MXFP4).
 * Weights (fp4_tensor.c) and activations — on the CPU (fp4_gemm.c) and on the GPU
 * (kernels/cuda/) — are all quantized by this one function, so the paths cannot drift apart.
 */
/* A block's scale from its largest magnitude: code, decoded value (returned) and the factor
 * that takes the block's values to E2M1's range (*inv). The vector rungs' row quantizers call
 * it too, so that one definition decides every block scale. */
OP_HD float op_fp4_block_scale(float amax, int format, float enc_scale, int mx_mode, uint8_t *scale_code,
			       float *inv)
{
	float s;
	if (format == OP_FP4_MXFP4) {
		int code;
		if (mx_mode == OP_MX_SCALE_CEIL)
			code = op_e8m0_from_float(amax / 6.0f, OP_E8M0_RP, 1);
		else
			code = (int)op_e8m0_from_float(amax, OP_E8M0_RZ, 1) - 2;
		code = code < 1 ? 1 : code > 253 ? 253 : code;
		*scale_code = (uint8_t)code;
		s = op_bits_f32((uint32_t)code << 23);
		*inv = op_bits_f32((uint32_t)(254 - code) << 23);
	} else {
		*scale_code = op_e4m3_from_float((amax * enc_scale) / 6.0f) & 0x7fu;
		s = op_e4m3_to_float(*scale_code);
		*inv = s > 0 ? enc_scale / s : 0.0f;
	}
	return s;
}

OP_HD float op_fp4_block_quantize(const float *x, uint32_t n, int format, float enc_scale, int mx_mode,
				  uint8_t *scale_code, int8_t *doubled)
{
	float amax = 0, inv;
	for (uint32_t i = 0; i < n; i++) {
		float a = op_bits_f32(op_f32_bits(x[i]) & 0x7fffffffu);
		amax = a > amax ? a : amax;
	}
	float s = op_fp4_block_scale(amax, format, enc_scale, mx_mode, scale_code, &inv);
	for (uint32_t i = 0; i < n; i++)
		doubled[i] = (int8_t)op_e2m1_doubled(op_e2m1_from_float(x[i] * inv));
	return s;
}

/* ---- scale layouts ---------------------------------------------------------------------- */

/*
 * cuBLASLt's block-scale layout: the [rows][cols] scale matrix (cols = K / block) is cut into
 * 128×4 tiles, padded with zeros to whole tiles, tiles stored row-block-major, 512 bytes each;
 * inside a tile, row r and column c sit at (r%32)·16 + ((r%128)/32)·4 + c%4.
 */
OP_HD size_t op_fp4_scale_tiled_size(uint32_t rows, uint32_t cols)
{
	return (size_t)((rows + 127u) / 128u * 128u) * ((cols + 3u) / 4u * 4u);
}

OP_HD size_t op_fp4_scale_tiled_offset(uint32_t r, uint32_t c, uint32_t cols)
{
	size_t tiles_per_row = (cols + 3u) / 4u;
	return ((size_t)(r / 128u) * tiles_per_row + c / 4u) * 512u + (r % 32u) * 16u +
	       ((r % 128u) / 32u) * 4u + c % 4u;
}

/* ---- activations, one (row, block) at a time ------------------------------------------- */

/*
 * The body of the GPU's activation quantizer (kernels/cuda/ops.cu runs one thread per call)
 * and what tests run on the CPU over the same grid: quantize block b of row r of X[M][k]
 * (leading dimension ldx, zeros beyond k, kp/block blocks) in `format`. The grid covers
 * max(M, tiled_rows) rows × the blocks rounded up to 4; calls outside X write the zero padding
 * of the 128×4 tiles. Outputs may be NULL: packed codes [M][kp/2], scale codes [M][kp/block],
 * tiled scale codes (tiled_rows rows), doubled codes q2 [M][kp], decoded scales xs [M][kp/block].
 */
OP_HD void op_fp4_act_quantize_at(const float *X, size_t ldx, uint32_t M, uint32_t k, uint32_t kp, int format,
				  float enc_scale, int mx_mode, uint32_t r, uint32_t b, uint8_t *codes,
				  uint8_t *scales_linear, uint8_t *scales_tiled, uint32_t tiled_rows, int8_t *q2,
				  float *xs)
{
	const uint32_t bl = op_fp4_block(format), nb = kp / bl;
	if (r >= M || b >= nb) {
		if (scales_tiled && r < tiled_rows)
			scales_tiled[op_fp4_scale_tiled_offset(r, b, nb)] = 0;
		return;
	}
	float buf[OP_MXFP4_BLOCK];
	int8_t d[OP_MXFP4_BLOCK];
	uint8_t code;
	for (uint32_t j = 0; j < bl; j++) {
		uint32_t c = b * bl + j;
		buf[j] = c < k ? X[(size_t)r * ldx + c] : 0.0f;
	}
	float s = op_fp4_block_quantize(buf, bl, format, enc_scale, mx_mode, &code, d);
	if (codes) {
		uint8_t *o = codes + ((size_t)r * kp + (size_t)b * bl) / 2;
		for (uint32_t j = 0; j < bl; j += 2)
			o[j / 2] = (uint8_t)(op_e2m1_code_of_doubled(d[j]) | (op_e2m1_code_of_doubled(d[j + 1]) << 4));
	}
	if (scales_linear)
		scales_linear[(size_t)r * nb + b] = code;
	if (scales_tiled)
		scales_tiled[op_fp4_scale_tiled_offset(r, b, nb)] = code;
	if (q2)
		for (uint32_t j = 0; j < bl; j++)
			q2[(size_t)r * kp + (size_t)b * bl + j] = d[j];
	if (xs)
		xs[(size_t)r * nb + b] = s;
}

#endif
