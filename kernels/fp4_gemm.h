/*
 * fp4_gemm.h — FP4 linear layers on the CPU: Y = act(X · Wᵀ + b), W an NVFP4 or MXFP4 tensor
 * [N][K] (K-major, like cuBLASLt's "TN" A operand), X and Y row-major FP32.
 *
 * Two modes:
 *   W4A4  X is quantized per block along K on the fly, in W's format (NVFP4 with the layer's
 *         static activation decode scale; MXFP4 with the layer's scale mode); each block's
 *         product is an exact integer sum of doubled E2M1 values, scaled in FP32.
 *   W4A16 X stays FP32; W's values are exact in FP32 (a code times its block scale).
 * The arithmetic, which every rung reproduces bit for bit (per output, in this order):
 *   W4A4:  acc = 0; for each block b: acc = fma((float)Σ qx·qw, sx_b · sw_b, acc)
 *          y = fma(acc, (0.25 · gx) · gw, bias)            (qx, qw doubled integers)
 *   W4A16: acc = 0; for k in order: acc = fma(x_k, w_k, acc)   (w_k = qw/2 · sw_b, exact)
 *          y = fma(acc, gw, bias)
 *   then ReLU when asked. GEMV (op_fp4_gemv, for large K and N) streams the 4-bit codes
 *   instead and sums in a different order: it matches the reference to rounding, not bits.
 *   Its W4A16 may carry X in 16 bits (the AVX2 and AVX-512 GEMVs when K is a multiple of 64;
 *   the AVX-512 rung runs the AVX2 one when K % 128 = 64): per weight block, integers within 1/65,024 of
 *   the block's largest |x|, so an output may differ from the FP32 sum by
 *   Σ_b max|x_b| · Σ_{k∈b} |w_k| / 65,024 beyond rounding (BF16 activations, off by up to 2^-8
 *   of each element, err about a hundred times more on well-spread data, less where a block
 *   holds an outlier). When any row of X holds a NaN or an infinity, or a block's largest |x|
 *   is neither 0 nor within [2^-40, 2^40], or an MXFP4 block scale of W exceeds 2^24, the whole
 *   call sums in FP32 instead (so NaN and infinities show in the outputs as in the reference;
 *   the 16-bit sums, 2^32 times the true ones to keep tiny scales normal, would overflow on
 *   outputs the reference holds).
 *
 * Rungs: scalar reference; AVX2+FMA (x86-64); AVX-512 VNNI (x86-64: its own GEMMs and GEMVs, the
 * AVX2 rung's pooling); NEON (aarch64); NEON with the dot-product instructions (aarch64: its own W4A4
 * GEMM, the NEON rung's other ops). op_fp4_rung_best() picks the
 * best the machine has at run time; the _rung variants let tests pin one.
 */
#ifndef OP_KERNELS_FP4_GEMM_H
#define OP_KERNELS_FP4_GEMM_H
#include <stddef.h>
#include <stdint.h>

#include "kernels/fp4_tensor.h"

enum op_fp4_mode { OP_W4A4 = 1, OP_W4A16 = 2 };
/* The largest E8M0 scale code (2^24) the W4A16 GEMV with X in 16 bits takes (above). */
#define OP_A16_MAX_SCALE_CODE 151
enum op_rung { OP_RUNG_SCALAR = 0, OP_RUNG_AVX2 = 1, OP_RUNG_NEON = 2, OP_RUNG_AVX512 = 3, OP_RUNG_NEON_DOT = 4 };
#define OP_RUNG_LAST OP_RUNG_NEON_DOT

/* One prepared layer. Build with op_fp4_linear_init, free with op_fp4_linear_free. */
typedef struct op_fp4_linear {
	op_fp4_tensor w;  /* N × Kp, Kp = w.cols ≥ k */
	uint32_t n, k;    /* outputs; logical inputs (X has k columns) */
	float *bias;      /* n (zeros when the layer has none) */
	int relu;
	int mx_mode;      /* MXFP4 scale mode for activations (W4A4) */
	float act_scale;  /* NVFP4 W4A4: the activation tensor's decode scale (calibrated) */
	/* prepared forms, filled by init */
	int8_t *w2;       /* N × Kp doubled signed codes */
	float *wscale;    /* N × nb decoded block scales */
	int32_t *wcorr;   /* N × nb: int16 pair (−12·Σ w2 over k%4 ∈ {0,1}, the same over {2,3}) */
	float *wdec;      /* N × Kp exact values qw/2 · sw (no tensor scale) for W4A16 */
	/* the AVX-512 rung's layout, outputs in groups of 16 (64-byte aligned; NULL when it could
	 * not be built — the rungs then lay the weights out per call): g16q [group][k/4][16] words
	 * of four doubled codes, g16s [group][block][16] scales, g16c [group][block][16] the
	 * block sums' starting values −12·Σw + OP_G16_SUM_BIAS, g16b [group][16] biases. The AVX2
	 * rung reads g16q and g16s four outputs at a time, with g16p [group][block][16]: wcorr */
	int32_t *g16q, *g16c, *g16p;
	float *g16s, *g16b;
	float *g16w;      /* W4A16 on the AVX-512 and NEON rungs: wdec as [group][Kp][16] (NULL: their
			   * fallbacks run) */
} op_fp4_linear;

/* Takes ownership of *w (zeroed on return). bias may be NULL. 0 or -ENOMEM/-EINVAL. */
int op_fp4_linear_init(op_fp4_linear *L, op_fp4_tensor *w, uint32_t k, const float *bias, int relu,
		       float act_scale, int mx_mode);
void op_fp4_linear_free(op_fp4_linear *L);
/* Lay out wdec (and the biases, when not yet) for the vector rungs' W4A16: done by init; a layer
 * built by hand from FP32 weights (wdec, bias, n, k, w.cols) calls it itself. 0 or -ENOMEM
 * (the rungs then take their slower paths). */
int op_fp4_linear_layout_w16(op_fp4_linear *L);

int op_fp4_rung_best(void);
const char *op_fp4_rung_name(int rung);
/* Is this rung usable on this machine? */
int op_fp4_rung_available(int rung);

/*
 * Y[M][n] (leading dimension ldy) from X[M][k] (ldx). threads ≥ 1 splits the rows.
 * Returns 0, -EINVAL (bad mode/rung) or -ENOMEM.
 */
int op_fp4_gemm(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y,
		size_t ldy, int threads);
int op_fp4_gemm_rung(int rung, const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M,
		     float *Y, size_t ldy);

/*
 * W4A16 with BF16 activations (raw bf16 bits, row-major, leading dimension ldx): each row is
 * widened to FP32 — exactly, BF16 being FP32's upper half — and multiplied as above, so the
 * result is bit-identical to op_fp4_gemm on the widened rows.
 */
int op_fp4_gemm_bf16(const op_fp4_linear *L, const uint16_t *X, size_t ldx, uint32_t M, float *Y, size_t ldy,
		     int threads);

/*
 * Small-M products against a large weight tensor used as stored (no prepared forms needed):
 * Y[M][N] = act(X[M][K] · Wᵀ · g + bias), M ≤ 16 expected, threads split N. bias may be NULL;
 * relu applies max(·, 0). act_scale as above for NVFP4 W4A4.
 */
int op_fp4_gemv(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		float *Y, const float *bias, int relu, int threads);
int op_fp4_gemv_rung(int rung, const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X,
		     uint32_t M, float *Y, uint32_t n0, uint32_t n1);

/*
 * Mean and max over each event's rows: H rows [off[e], off[e+1]) of C channels (ldh) →
 * out[e] = [mean (C) | max (C)] (ldo). An event with no rows gets zeros.
 */
void op_pool_mean_max(int rung, const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events,
		      float *out, size_t ldo);

/* Internal: the rung entry points (fp4_gemm_avx2.c, fp4_gemm_avx512.c, fp4_gemm_neon.c,
 * fp4_gemm_neondot.c). */
int op_fp4_gemm_avx2(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy);
int op_fp4_gemm_neon(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy);
int op_fp4_gemm_neondot(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y,
			size_t ldy);
/* The NEON rungs' W4A4 row quantizer (doubled codes q2, block scales xs; pad: kp floats). */
void op_fp4_quantize_row_neon(const op_fp4_linear *L, const float *x, int8_t *q2, float *xs, float *pad);
int op_fp4_gemm_avx512(const op_fp4_linear *L, int mode, const float *X, size_t ldx, uint32_t M, float *Y,
		       size_t ldy);
/*
 * The AVX-512 layout above, into the given buffers (sizes as in op_fp4_linear; wc, wb and wp
 * may be NULL when the caller needs no g16c, g16b or g16p). A block's integer
 * sum starts from OP_G16_SUM_BIAS, the bits of the float 1.5·2^23: |Σ| < 2^22 always (at most
 * 32 products of doubled codes ≤ 12), so the int32 sum read as a float is exactly 1.5·2^23 + Σ
 * and one subtraction gives Σ as a float — an exact conversion that any FP port can run.
 */
#define OP_G16_SUM_BIAS 0x4b400000
/* The AVX-512 W4A4 GEMM's activation quantizer alone, over M rows of X, its output thrown away:
 * for outpost-bench, what quantizing costs of a call. 0 or -ENOMEM; op_fp4_w4a4_quantize_rung
 * answers -EINVAL for a rung that has no such entry (all but OP_RUNG_AVX512) or is unavailable. */
int op_fp4_w4a4_quantize_avx512(const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M);
int op_fp4_w4a4_quantize_rung(int rung, const op_fp4_linear *L, const float *X, size_t ldx, uint32_t M);
void op_fp4_layout_g16(const op_fp4_linear *L, int32_t *wq, int32_t *wc, float *ws, float *wb, int32_t *wp);
/* One activation row for the W4A4 GEMV (doubled codes q2, block scales xs; pad: kp floats). */
void op_fp4_quantize_row_avx2(const op_fp4_linear *L, const float *x, int8_t *q2, float *xs, float *pad);
int op_fp4_gemv_avx512(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		       float *Y, uint32_t n0, uint32_t n1);
int op_fp4_gemv_avx2(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		     float *Y, uint32_t n0, uint32_t n1);
int op_fp4_gemv_neon(const op_fp4_tensor *W, int mode, float act_scale, int mx_mode, const float *X, uint32_t M,
		     float *Y, uint32_t n0, uint32_t n1);
void op_pool_avx2(const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events, float *out,
		  size_t ldo);
void op_pool_neon(const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events, float *out,
		  size_t ldo);
/* The reference pooling of channels [c0, C): the scalar rung, and the vector rungs' tails. */
void op_pool_channels(const float *H, size_t ldh, uint32_t C, uint32_t c0, const uint32_t *off, uint32_t n_events,
		      float *out, size_t ldo);
/* Quantize one activation row (k values, zero-padded to Kp) for W4A4: doubled codes and scales. */
void op_fp4_quantize_row(const op_fp4_linear *L, const float *x, int8_t *q2, float *xs);

#endif
