/*
 * kernels/cuda/ops.cu — our CUDA kernels (ops.h). The numerics come from kernels/fp4.h, the
 * same header the CPU uses, so a code or a scale cannot mean two different things.
 */
#include "kernels/cuda/ops.h"

#include "kernels/fp4.h"
#include "kernels/fp4_gemm.h"

namespace {

constexpr unsigned QUANT_THREADS = 128;

/* ---- activation quantizer: one thread per (row, block) ---------------------------------- */

__global__ void quantize_act_kernel(const float *__restrict__ X, size_t ldx, uint32_t M, uint32_t k, uint32_t kp,
				    int format, float enc_scale, int mx_mode, uint8_t *codes, uint8_t *scales_linear,
				    uint8_t *scales_tiled, uint32_t tiled_rows, int8_t *q2, float *xs)
{
	const uint32_t nb = kp / op_fp4_block(format), nbt = (nb + 3u) / 4u * 4u; /* tiled columns */
	uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	uint64_t rows = tiled_rows > M ? tiled_rows : M;
	if (i >= rows * nbt)
		return;
	op_fp4_act_quantize_at(X, ldx, M, k, kp, format, enc_scale, mx_mode, (uint32_t)(i / nbt), (uint32_t)(i % nbt),
			       codes, scales_linear, scales_tiled, tiled_rows, q2, xs);
}

/* ---- dequantize / convert ---------------------------------------------------------------- */

__global__ void dequant_bf16_kernel(const uint8_t *__restrict__ codes, const uint8_t *__restrict__ scales,
				    uint32_t n, uint32_t kp, int format, uint16_t *out)
{
	uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; /* one byte = two elements */
	if (i >= (uint64_t)n * kp / 2)
		return;
	uint32_t bl = op_fp4_block(format), nb = kp / bl;
	uint32_t r = (uint32_t)(i / (kp / 2)), c = (uint32_t)(i % (kp / 2)) * 2;
	float s = format == OP_FP4_MXFP4 ? op_e8m0_to_float(scales[(size_t)r * nb + c / bl])
					 : op_e4m3_to_float(scales[(size_t)r * nb + c / bl]);
	uint8_t b = codes[i];
	out[(size_t)r * kp + c] = op_bf16_from_float(op_e2m1_to_float(b & 0xfu) * s);
	out[(size_t)r * kp + c + 1] = op_bf16_from_float(op_e2m1_to_float(b >> 4) * s);
}

__global__ void f32_to_bf16_kernel(const float *__restrict__ X, size_t ldx, uint32_t M, uint32_t k, uint32_t kp,
				   uint16_t *out)
{
	uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (uint64_t)M * kp)
		return;
	uint32_t r = (uint32_t)(i / kp), c = (uint32_t)(i % kp);
	out[i] = c < k ? op_bf16_from_float(X[(size_t)r * ldx + c]) : 0;
}

/* ---- the layer kernel: 64×64 outputs per block of 256 threads, 4×4 per thread ----------- */

constexpr int TM = 64, TN = 64, TK = 32;

__device__ __forceinline__ float epilogue(float acc, float alpha, float bias, int relu)
{
	float y = fmaf(acc, alpha, bias);
	return relu && !(y > 0.0f) ? 0.0f : y;
}

/* W4A16 and FP32 layers: acc = fma(x_k, w_k, acc) for k ascending, exactly the reference's order. */
__global__ void __launch_bounds__(256) linear_f32_kernel(op_dev_linear L, const float *__restrict__ X, size_t ldx,
							 uint32_t M, float *__restrict__ Y, size_t ldy)
{
	__shared__ float xs[TM][TK + 1];
	__shared__ float ws[TN][TK + 1];
	const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
	const uint32_t m0 = blockIdx.x * TM, n0 = blockIdx.y * TN; /* rows on x: up to 2³¹ tiles */
	const uint32_t bl = L.weights == OP_DEV_W_FP4 ? op_fp4_block(L.format) : 1u, nb = L.kp / bl;
	float acc[4][4] = {};
	for (uint32_t k0 = 0; k0 < L.k; k0 += TK) {
		for (int i = threadIdx.x; i < TM * TK; i += 256) {
			int r = i / TK, c = i % TK;
			uint32_t gm = m0 + r, gk = k0 + c;
			xs[r][c] = gm < M && gk < L.k ? X[(size_t)gm * ldx + gk] : 0.0f;
		}
		for (int i = threadIdx.x; i < TN * TK; i += 256) {
			int r = i / TK, c = i % TK;
			uint32_t gn = n0 + r, gk = k0 + c;
			float w = 0.0f;
			if (gn < L.n && gk < L.kp) {
				if (L.weights == OP_DEV_W_FP4) {
					uint8_t b = L.codes[((size_t)gn * L.kp + gk) / 2];
					int d = op_e2m1_doubled((gk & 1u) ? (uint8_t)(b >> 4) : (uint8_t)(b & 0xfu));
					w = ((float)d * 0.5f) * L.wscale[(size_t)gn * nb + gk / bl];
				} else {
					w = L.wf32[(size_t)gn * L.kp + gk];
				}
			}
			ws[r][c] = w;
		}
		__syncthreads();
		const int kk_end = L.k - k0 < (uint32_t)TK ? (int)(L.k - k0) : TK;
		for (int kk = 0; kk < kk_end; kk++) {
			float a[4], b[4];
			for (int i = 0; i < 4; i++)
				a[i] = xs[ty * 4 + i][kk];
			for (int j = 0; j < 4; j++)
				b[j] = ws[tx * 4 + j][kk];
			for (int i = 0; i < 4; i++)
				for (int j = 0; j < 4; j++)
					acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
		}
		__syncthreads();
	}
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) {
			uint32_t gm = m0 + ty * 4 + i, gn = n0 + tx * 4 + j;
			if (gm < M && gn < L.n)
				Y[(size_t)gm * ldy + gn] = epilogue(acc[i][j], L.tensor_scale, L.bias[gn], L.relu);
		}
}

/*
 * W4A4 emulation: per block an exact integer sum of doubled codes, then
 * acc = fma((float)isum, sx_b · sw_b, acc) for blocks ascending; y = fma(acc, ¼·gx·gw, b).
 */
__global__ void __launch_bounds__(256) linear_w4a4_kernel(op_dev_linear L, const int8_t *__restrict__ q2,
							  const float *__restrict__ xsc, uint32_t M,
							  float *__restrict__ Y, size_t ldy, float alpha)
{
	__shared__ int8_t qx[TM][TK + 4];
	__shared__ int8_t qw[TN][TK + 4];
	__shared__ float sx[TM][2], sw[TN][2];
	const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
	const uint32_t m0 = blockIdx.x * TM, n0 = blockIdx.y * TN; /* rows on x: up to 2³¹ tiles */
	const uint32_t bl = op_fp4_block(L.format), nb = L.kp / bl;
	const int bpc = TK / (int)bl; /* blocks per chunk: 2 (NVFP4) or 1 (MXFP4) */
	float acc[4][4] = {};
	for (uint32_t k0 = 0; k0 < L.kp; k0 += TK) {
		for (int i = threadIdx.x; i < TM * TK; i += 256) {
			int r = i / TK, c = i % TK;
			uint32_t gm = m0 + r, gk = k0 + c;
			qx[r][c] = gm < M && gk < L.kp ? q2[(size_t)gm * L.kp + gk] : 0;
		}
		for (int i = threadIdx.x; i < TN * TK; i += 256) {
			int r = i / TK, c = i % TK;
			uint32_t gn = n0 + r, gk = k0 + c;
			int8_t d = 0;
			if (gn < L.n && gk < L.kp) {
				uint8_t b = L.codes[((size_t)gn * L.kp + gk) / 2];
				d = (int8_t)op_e2m1_doubled((gk & 1u) ? (uint8_t)(b >> 4) : (uint8_t)(b & 0xfu));
			}
			qw[r][c] = d;
		}
		for (int i = threadIdx.x; i < TM * 2; i += 256) {
			int r = i / 2, j = i % 2;
			uint32_t gm = m0 + r, gb = k0 / bl + j;
			sx[r][j] = gm < M && j < bpc && gb < nb ? xsc[(size_t)gm * nb + gb] : 0.0f;
		}
		for (int i = threadIdx.x; i < TN * 2; i += 256) {
			int r = i / 2, j = i % 2;
			uint32_t gn = n0 + r, gb = k0 / bl + j;
			sw[r][j] = gn < L.n && j < bpc && gb < nb ? L.wscale[(size_t)gn * nb + gb] : 0.0f;
		}
		__syncthreads();
		for (int j = 0; j < bpc && k0 + (uint32_t)j * bl < L.kp; j++) {
			int isum[4][4] = {};
			for (uint32_t e = j * bl; e < (j + 1) * bl; e++)
				for (int a = 0; a < 4; a++)
					for (int c = 0; c < 4; c++)
						isum[a][c] += qx[ty * 4 + a][e] * qw[tx * 4 + c][e];
			for (int a = 0; a < 4; a++)
				for (int c = 0; c < 4; c++)
					acc[a][c] = fmaf((float)isum[a][c], sx[ty * 4 + a][j] * sw[tx * 4 + c][j], acc[a][c]);
		}
		__syncthreads();
	}
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++) {
			uint32_t gm = m0 + ty * 4 + i, gn = n0 + tx * 4 + j;
			if (gm < M && gn < L.n)
				Y[(size_t)gm * ldy + gn] = epilogue(acc[i][j], alpha, L.bias[gn], L.relu);
		}
}

__global__ void bias_act_kernel(float *Y, size_t ldy, uint32_t M, uint32_t n, float alpha, const float *bias,
				int relu)
{
	uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (uint64_t)M * n)
		return;
	uint32_t r = (uint32_t)(i / n), c = (uint32_t)(i % n);
	float *y = &Y[(size_t)r * ldy + c];
	*y = epilogue(*y, alpha, bias ? bias[c] : 0.0f, relu);
}

/* ---- GEMV: M ≤ 16 rows against a large FP4 tensor --------------------------------------- */
/*
 * Eight warps per block, each warp two output columns; the block stages a K-chunk of the
 * activations (all M rows) in shared memory and every lane takes whole blocks of the weight
 * row — 8 bytes (NVFP4) or 16 bytes (MXFP4) per load — straight from global memory into
 * registers, where the nibbles are expanded. Partial sums meet in a warp shuffle at the end.
 */
constexpr int GV_WARPS = 8, GV_COLS = 2, GV_KC = 512; /* 256 blocks at N = 4096: two per SM on H100 */

template <int BL, bool A4, int MM>
__global__ void __launch_bounds__(GV_WARPS * 32) gemv_kernel(op_dev_linear L, const float *__restrict__ X,
							     const int8_t *__restrict__ q2,
							     const float *__restrict__ xsc, uint32_t M,
							     float *__restrict__ Y, float alpha)
{
	__shared__ float xf[A4 ? 1 : OP_CUDA_GEMV_MAX_M * GV_KC];
	__shared__ int8_t xq[A4 ? OP_CUDA_GEMV_MAX_M * GV_KC : 1];
	__shared__ float xb[A4 ? OP_CUDA_GEMV_MAX_M * (GV_KC / BL) : 1];
	const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
	const uint32_t nb = L.kp / BL;
	const uint32_t col0 = (blockIdx.x * GV_WARPS + warp) * GV_COLS;
	float part[GV_COLS][MM] = {}; /* MM: M rounded up to 1, 2, 4, 8 or 16, so this stays in registers */

	for (uint32_t k0 = 0; k0 < L.kp; k0 += GV_KC) {
		const uint32_t kc = L.kp - k0 < (uint32_t)GV_KC ? L.kp - k0 : (uint32_t)GV_KC;
		__syncthreads();
		for (uint32_t i = threadIdx.x; i < M * kc; i += blockDim.x) {
			uint32_t m = i / kc, c = i % kc;
			if (A4)
				xq[m * GV_KC + c] = q2[(size_t)m * L.kp + k0 + c];
			else
				xf[m * GV_KC + c] = k0 + c < L.k ? X[(size_t)m * L.k + k0 + c] : 0.0f;
		}
		if (A4)
			for (uint32_t i = threadIdx.x; i < M * (kc / BL); i += blockDim.x) {
				uint32_t m = i / (kc / BL), b = i % (kc / BL);
				xb[m * (GV_KC / BL) + b] = xsc[(size_t)m * nb + k0 / BL + b];
			}
		__syncthreads();
#pragma unroll
		for (int j = 0; j < GV_COLS; j++) {
			const uint32_t n = col0 + j;
			if (n >= L.n)
				continue;
			for (uint32_t b = lane; b < kc / BL; b += 32) {
				const uint8_t *src = L.codes + ((size_t)n * L.kp + k0 + (size_t)b * BL) / 2;
				uint32_t w32[BL / 8];
				if (BL == 16) {
					uint2 v = *reinterpret_cast<const uint2 *>(src);
					w32[0] = v.x, w32[1] = v.y;
				} else {
					uint4 v = *reinterpret_cast<const uint4 *>(src);
					w32[0] = v.x, w32[1] = v.y, w32[2 % (BL / 8)] = v.z, w32[3 % (BL / 8)] = v.w;
				}
				const uint8_t sc = L.scodes[(size_t)n * nb + k0 / BL + b];
				const float s = BL == 16 ? op_e4m3_to_float(sc) : op_e8m0_to_float(sc);
#pragma unroll
				for (int m = 0; m < MM; m++) {
					if ((uint32_t)m >= M)
						break;
					if (A4) {
						int isum = 0;
						for (int e = 0; e < BL; e++) {
							int d = op_e2m1_doubled((uint8_t)((w32[e / 8] >> ((e % 8) * 4)) & 0xfu));
							isum += d * xq[m * GV_KC + b * BL + e];
						}
						part[j][m] = fmaf((float)isum, xb[m * (GV_KC / BL) + b] * s, part[j][m]);
					} else {
						float acc = 0.0f;
						for (int e = 0; e < BL; e++) {
							int d = op_e2m1_doubled((uint8_t)((w32[e / 8] >> ((e % 8) * 4)) & 0xfu));
							acc = fmaf((float)d, xf[m * GV_KC + b * BL + e], acc);
						}
						part[j][m] = fmaf(acc, 0.5f * s, part[j][m]);
					}
				}
			}
		}
	}
#pragma unroll
	for (int j = 0; j < GV_COLS; j++) {
		const uint32_t n = col0 + j;
#pragma unroll
		for (int m = 0; m < MM; m++) {
			if ((uint32_t)m >= M)
				break;
			float v = part[j][m];
			for (int o = 16; o > 0; o /= 2)
				v += __shfl_xor_sync(0xffffffffu, v, o);
			if (lane == 0 && n < L.n)
				Y[(size_t)m * L.n + n] = epilogue(v, alpha, L.bias[n], L.relu);
		}
	}
}

/* ---- pooling: one thread per (event, channel), rows in order ------------------------------ */

__global__ void pool_kernel(const float *__restrict__ H, size_t ldh, uint32_t C, const uint32_t *__restrict__ off,
			    uint32_t n_events, float *__restrict__ out, size_t ldo)
{
	uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (uint64_t)n_events * C)
		return;
	uint32_t e = (uint32_t)(i / C), c = (uint32_t)(i % C);
	uint32_t lo = off[e], hi = off[e + 1];
	float sum = 0.0f, mx = hi > lo ? H[(size_t)lo * ldh + c] : 0.0f;
	for (uint32_t r = lo; r < hi; r++) {
		float v = H[(size_t)r * ldh + c];
		sum += v;
		mx = v > mx ? v : mx;
	}
	out[(size_t)e * ldo + c] = hi > lo ? sum / (float)(hi - lo) : 0.0f;
	out[(size_t)e * ldo + C + c] = mx;
}

template <int BL, bool A4>
void launch_gemv_m(int mm, unsigned grid, cudaStream_t st, const op_dev_linear &L, const float *X, const int8_t *q2,
		   const float *xs, uint32_t M, float *Y, float alpha)
{
	switch (mm) {
	case 1: gemv_kernel<BL, A4, 1><<<grid, GV_WARPS * 32, 0, st>>>(L, X, q2, xs, M, Y, alpha); break;
	case 2: gemv_kernel<BL, A4, 2><<<grid, GV_WARPS * 32, 0, st>>>(L, X, q2, xs, M, Y, alpha); break;
	case 4: gemv_kernel<BL, A4, 4><<<grid, GV_WARPS * 32, 0, st>>>(L, X, q2, xs, M, Y, alpha); break;
	case 8: gemv_kernel<BL, A4, 8><<<grid, GV_WARPS * 32, 0, st>>>(L, X, q2, xs, M, Y, alpha); break;
	default: gemv_kernel<BL, A4, 16><<<grid, GV_WARPS * 32, 0, st>>>(L, X, q2, xs, M, Y, alpha); break;
	}
}

void launch_gemv(int nv, int a4, int mm, unsigned grid, cudaStream_t st, const op_dev_linear &L, const float *X,
		 const int8_t *q2, const float *xs, uint32_t M, float *Y, float alpha)
{
	if (nv && a4)
		launch_gemv_m<16, true>(mm, grid, st, L, X, q2, xs, M, Y, alpha);
	else if (a4)
		launch_gemv_m<32, true>(mm, grid, st, L, X, q2, xs, M, Y, alpha);
	else if (nv)
		launch_gemv_m<16, false>(mm, grid, st, L, X, q2, xs, M, Y, alpha);
	else
		launch_gemv_m<32, false>(mm, grid, st, L, X, q2, xs, M, Y, alpha);
}

unsigned blocks_for(uint64_t n, unsigned threads)
{
	return (unsigned)((n + threads - 1) / threads);
}

float w4a4_alpha(const op_dev_linear *L)
{
	float gx = L->format == OP_FP4_NVFP4 ? L->act_scale : 1.0f;
	return (0.25f * gx) * L->tensor_scale;
}

cudaError_t quantize_for(const op_dev_linear *L, const float *X, size_t ldx, uint32_t M, void *scratch,
			 cudaStream_t stream)
{
	int8_t *q2 = (int8_t *)scratch;
	float *xs = (float *)(q2 + ((size_t)M * L->kp + 15) / 16 * 16);
	return op_cuda_quantize_act(X, ldx, M, L->k, L->kp, L->format, 1.0f / L->act_scale, L->mx_mode, nullptr,
				    nullptr, nullptr, 0, q2, xs, stream);
}

} /* namespace */

extern "C" {

cudaError_t op_cuda_quantize_act(const float *X, size_t ldx, uint32_t M, uint32_t k, uint32_t kp, int format,
				 float enc_scale, int mx_mode, uint8_t *codes, uint8_t *scales_linear,
				 uint8_t *scales_tiled, uint32_t tiled_rows, int8_t *q2, float *xs,
				 cudaStream_t stream)
{
	uint32_t nb = kp / op_fp4_block(format), nbt = (nb + 3u) / 4u * 4u;
	uint64_t rows = tiled_rows > M ? tiled_rows : M, n = rows * nbt;
	if (!n)
		return cudaSuccess;
	quantize_act_kernel<<<blocks_for(n, QUANT_THREADS), QUANT_THREADS, 0, stream>>>(
		X, ldx, M, k, kp, format, enc_scale, mx_mode, codes, scales_linear, scales_tiled, tiled_rows, q2, xs);
	return cudaGetLastError();
}

cudaError_t op_cuda_dequant_bf16(const uint8_t *codes, const uint8_t *scales_linear, uint32_t n, uint32_t kp,
				 int format, uint16_t *out, cudaStream_t stream)
{
	uint64_t bytes = (uint64_t)n * kp / 2;
	if (!bytes)
		return cudaSuccess;
	dequant_bf16_kernel<<<blocks_for(bytes, 256), 256, 0, stream>>>(codes, scales_linear, n, kp, format, out);
	return cudaGetLastError();
}

cudaError_t op_cuda_f32_to_bf16(const float *X, size_t ldx, uint32_t M, uint32_t k, uint32_t kp, uint16_t *out,
				cudaStream_t stream)
{
	uint64_t n = (uint64_t)M * kp;
	if (!n)
		return cudaSuccess;
	f32_to_bf16_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(X, ldx, M, k, kp, out);
	return cudaGetLastError();
}

size_t op_cuda_linear_scratch(const op_dev_linear *L, uint32_t M)
{
	if (L->weights != OP_DEV_W_FP4 || L->mode != OP_W4A4)
		return 0;
	return ((size_t)M * L->kp + 15) / 16 * 16 + (size_t)M * (L->kp / op_fp4_block(L->format)) * sizeof(float);
}

cudaError_t op_cuda_linear(const op_dev_linear *L, const float *X, size_t ldx, uint32_t M, float *Y, size_t ldy,
			   void *scratch, cudaStream_t stream)
{
	if (!M)
		return cudaSuccess;
	dim3 grid((M + TM - 1) / TM, (L->n + TN - 1) / TN);
	if (L->weights == OP_DEV_W_FP4 && L->mode == OP_W4A4) {
		cudaError_t e = quantize_for(L, X, ldx, M, scratch, stream);
		if (e != cudaSuccess)
			return e;
		const int8_t *q2 = (const int8_t *)scratch;
		const float *xs = (const float *)(q2 + ((size_t)M * L->kp + 15) / 16 * 16);
		linear_w4a4_kernel<<<grid, 256, 0, stream>>>(*L, q2, xs, M, Y, ldy, w4a4_alpha(L));
	} else {
		linear_f32_kernel<<<grid, 256, 0, stream>>>(*L, X, ldx, M, Y, ldy);
	}
	return cudaGetLastError();
}

cudaError_t op_cuda_bias_act(float *Y, size_t ldy, uint32_t M, uint32_t n, float alpha, const float *bias,
			     int relu, cudaStream_t stream)
{
	uint64_t cnt = (uint64_t)M * n;
	if (!cnt)
		return cudaSuccess;
	bias_act_kernel<<<blocks_for(cnt, 256), 256, 0, stream>>>(Y, ldy, M, n, alpha, bias, relu);
	return cudaGetLastError();
}

cudaError_t op_cuda_gemv(const op_dev_linear *L, const float *X, uint32_t M, float *Y, void *scratch,
			 cudaStream_t stream)
{
	if (L->weights != OP_DEV_W_FP4 || M > OP_CUDA_GEMV_MAX_M || L->kp % 32u || !L->scodes)
		return cudaErrorInvalidValue;
	if (!M)
		return cudaSuccess;
	unsigned grid = (L->n + GV_WARPS * GV_COLS - 1) / (GV_WARPS * GV_COLS);
	const int8_t *q2 = nullptr;
	const float *xs = nullptr;
	if (L->mode == OP_W4A4) {
		cudaError_t e = quantize_for(L, X, L->k, M, scratch, stream);
		if (e != cudaSuccess)
			return e;
		q2 = (const int8_t *)scratch;
		xs = (const float *)(q2 + ((size_t)M * L->kp + 15) / 16 * 16);
	}
	const float alpha = L->mode == OP_W4A4 ? w4a4_alpha(L) : L->tensor_scale;
	const int mm = M <= 1 ? 1 : M <= 2 ? 2 : M <= 4 ? 4 : M <= 8 ? 8 : 16;
	const int a4 = L->mode == OP_W4A4, nv = L->format == OP_FP4_NVFP4;
	launch_gemv(nv, a4, mm, grid, stream, *L, X, q2, xs, M, Y, alpha);
	return cudaGetLastError();
}

cudaError_t op_cuda_pool(const float *H, size_t ldh, uint32_t C, const uint32_t *off, uint32_t n_events, float *out,
			 size_t ldo, cudaStream_t stream)
{
	uint64_t n = (uint64_t)n_events * C;
	if (!n)
		return cudaSuccess;
	pool_kernel<<<blocks_for(n, 256), 256, 0, stream>>>(H, ldh, C, off, n_events, out, ldo);
	return cudaGetLastError();
}

} /* extern "C" */
