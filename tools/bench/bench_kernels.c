/*
 * bench_kernels.c — FP4 kernel and model throughput against OpenBLAS on the same shapes, in
 * one run, each figure also shown against the machine's measured limit:
 *   - memory read bandwidth, 1 and all threads, over 64 MiB (what sgemv reads: the GEMV
 *     figures' limit) and 1 GiB (memory itself; not with --quick or under 2 GiB free);
 *   - W4A4 and W4A16 GEMM at the model's shapes vs cblas_sgemm (both on all threads);
 *   - GEMV at M = 1..16, K = N = 4096 vs cblas_sgemv (M calls) and cblas_sgemm; both GEMVs at
 *     K = 16,384 (M = 1, 5), against their own K = 4,096 rate;
 *   - model events/s on 40-pulse events, 1 and 2 threads, for every model file given.
 * Kernel and baseline times are the best over three rounds (ours, then OpenBLAS's), each line
 * with the range of the single rounds' ratios; one round with --quick.
 *   outpost-bench kernels [--threads T] [--model F ...] [--quick]
 */
#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "appliance/modelfile.h"
#include "ingest/geometry.h"
#include "ingest/simgen.h"
#include "kernels/fp4_gemm.h"
#include "kernels/linefit.h"
#include "tools/bench/bench.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float *randbuf(size_t n, uint64_t seed)
{
	float *p = malloc(n * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		p[i] = (float)((int64_t)(seed >> 40) - (1 << 23)) / (float)(1 << 23);
	}
	return p;
}

/* ---- memory bandwidth ----------------------------------------------------------------------- */

typedef uint64_t bw_vec __attribute__((vector_size(32))); /* GCC/Clang split it into the build's vector registers (SSE2, NEON) */

typedef struct bw_job {
	const uint64_t *p;
	size_t n; /* words */
	pthread_barrier_t *start;
	double seconds;
	uint64_t sum;
} bw_job;

/*
 * One thread's slice, read as eight streams (its eighths) with software prefetch 2 KiB ahead,
 * folded by xor: cheap enough that only memory limits it. One stream without prefetch read
 * 17-34 % less here (one-off, same buffers), and sgemv, which reads several rows at once, ran
 * at up to 1.45x "the bandwidth" of the old single-stream loop. Timed inside the thread from a
 * common start: thread creation is not memory time.
 */
enum { BW_STREAMS = 8 };

static void *bw_read(void *a)
{
	bw_job *j = a;
	const size_t q = j->n / BW_STREAMS / 16 * 16;
	bw_vec acc[BW_STREAMS] = {{0}};
	pthread_barrier_wait(j->start);
	double t0 = now();
	for (size_t i = 0; i < q; i += 16)
		for (int s = 0; s < BW_STREAMS; s++) {
			const uint64_t *w = j->p + (size_t)s * q + i;
			__builtin_prefetch(w + 256), __builtin_prefetch(w + 264);
			bw_vec v[4];
			memcpy(v, w, sizeof(v));
			acc[s] ^= v[0] ^ v[1] ^ v[2] ^ v[3];
		}
	j->seconds = now() - t0;
	bw_vec x = acc[0];
	for (int s = 1; s < BW_STREAMS; s++)
		x ^= acc[s];
	j->sum = x[0];
	return NULL;
}

/* Read bandwidth over a buffer of `bytes`, GB/s: the best pass of at least ten and 0.3 s, as the
 * kernels' and OpenBLAS's times are the best call of many. */
static double bandwidth(int threads, size_t bytes)
{
	uint64_t *p = malloc(bytes);
	if (!p || threads < 1 || threads > 16) {
		free(p);
		return 0;
	}
	memset(p, 1, bytes);
	double best = 0, t_all = now();
	for (int rep = 0; rep < 10 || now() - t_all < 0.3; rep++) {
		bw_job jobs[16];
		pthread_t t[16];
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, (unsigned)threads);
		const size_t per = bytes / 8 / (size_t)threads;
		int started = 0;
		for (int i = 0; i < threads; i++) {
			jobs[i] = (bw_job){.p = p + per * (size_t)i, .n = per, .start = &start};
			if (pthread_create(&t[i], NULL, bw_read, &jobs[i]) != 0)
				break;
			started++;
		}
		if (started < threads) { /* those started wait at the barrier: nothing to measure */
			fprintf(stderr, "outpost-bench kernels: cannot start %d threads\n", threads);
			exit(1);
		}
		double slowest = 0;
		for (int i = 0; i < threads; i++) {
			pthread_join(t[i], NULL);
			slowest = jobs[i].seconds > slowest ? jobs[i].seconds : slowest;
		}
		pthread_barrier_destroy(&start);
		double gbs = (double)(per / BW_STREAMS / 16 * 16 * BW_STREAMS) * 8 * (size_t)threads / slowest / 1e9;
		best = gbs > best ? gbs : best;
	}
	free(p);
	return best;
}

/* ---- compute peaks: what one core can do at best, measured here ------------------------- */

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static void peaks(double *int8_gmacs, double *fp32_gfmas)
{
	/* eight different weight vectors: no two products can be merged by the compiler */
	__m256i a = _mm256_set1_epi8(3), w[8];
	for (int i = 0; i < 8; i++)
		w[i] = _mm256_set1_epi8((char)(i - 4));
	__m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
	long n = 20000000;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		__asm__ volatile("" : "+x"(a));
		s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(a, w[0])), s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(a, w[1]));
		s2 = _mm256_add_epi16(s2, _mm256_maddubs_epi16(a, w[2])), s3 = _mm256_add_epi16(s3, _mm256_maddubs_epi16(a, w[3]));
		s4 = _mm256_add_epi16(s4, _mm256_maddubs_epi16(a, w[4])), s5 = _mm256_add_epi16(s5, _mm256_maddubs_epi16(a, w[5]));
		s6 = _mm256_add_epi16(s6, _mm256_maddubs_epi16(a, w[6])), s7 = _mm256_add_epi16(s7, _mm256_maddubs_epi16(a, w[7]));
	}
	*int8_gmacs = (double)n * 8 * 32 / (now() - t0) / 1e9;
	__m256i t = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(s0, s1), _mm256_add_epi16(s2, s3)),
				     _mm256_add_epi16(_mm256_add_epi16(s4, s5), _mm256_add_epi16(s6, s7)));
	__m256 x = _mm256_set1_ps(0.999f), f = _mm256_set1_ps(1.0001f), c[10];
	for (int i = 0; i < 10; i++)
		c[i] = _mm256_setzero_ps();
	t0 = now();
	for (long i = 0; i < n; i++) {
		__asm__ volatile("" : "+x"(x));
		c[0] = _mm256_fmadd_ps(x, f, c[0]), c[1] = _mm256_fmadd_ps(x, f, c[1]), c[2] = _mm256_fmadd_ps(x, f, c[2]);
		c[3] = _mm256_fmadd_ps(x, f, c[3]), c[4] = _mm256_fmadd_ps(x, f, c[4]), c[5] = _mm256_fmadd_ps(x, f, c[5]);
		c[6] = _mm256_fmadd_ps(x, f, c[6]), c[7] = _mm256_fmadd_ps(x, f, c[7]), c[8] = _mm256_fmadd_ps(x, f, c[8]);
		c[9] = _mm256_fmadd_ps(x, f, c[9]);
	}
	*fp32_gfmas = (double)n * 10 * 8 / (now() - t0) / 1e9;
	float sink[8];
	_mm256_storeu_ps(sink, _mm256_add_ps(c[0], c[9]));
	if (sink[0] == 12345.0f && _mm256_extract_epi16(t, 0) == 1)
		printf(" ");
}

/* The same two peaks with 512-bit registers: vpdpbusd (64 int8 products into int32 per
 * instruction) and FP32 FMA — what the AVX-512 rung and OpenBLAS's SkylakeX kernels can use. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void peaks512(double *int8_gmacs,
									  double *fp32_gfmas)
{
	__m512i a = _mm512_set1_epi8(3), w[8];
	for (int i = 0; i < 8; i++)
		w[i] = _mm512_set1_epi8((char)(i - 4));
	/* named accumulators, not an array: an array indexed in a loop stays in memory */
	__m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
	long n = 20000000;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		__asm__ volatile("" : "+v"(a));
		s0 = _mm512_dpbusd_epi32(s0, a, w[0]), s1 = _mm512_dpbusd_epi32(s1, a, w[1]);
		s2 = _mm512_dpbusd_epi32(s2, a, w[2]), s3 = _mm512_dpbusd_epi32(s3, a, w[3]);
		s4 = _mm512_dpbusd_epi32(s4, a, w[4]), s5 = _mm512_dpbusd_epi32(s5, a, w[5]);
		s6 = _mm512_dpbusd_epi32(s6, a, w[6]), s7 = _mm512_dpbusd_epi32(s7, a, w[7]);
	}
	*int8_gmacs = (double)n * 8 * 64 / (now() - t0) / 1e9;
	__m512 x = _mm512_set1_ps(0.999f), f = _mm512_set1_ps(1.0001f), z = _mm512_setzero_ps();
	__m512 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z, c9 = z;
	t0 = now();
	for (long i = 0; i < n; i++) {
		__asm__ volatile("" : "+v"(x));
		c0 = _mm512_fmadd_ps(x, f, c0), c1 = _mm512_fmadd_ps(x, f, c1), c2 = _mm512_fmadd_ps(x, f, c2);
		c3 = _mm512_fmadd_ps(x, f, c3), c4 = _mm512_fmadd_ps(x, f, c4), c5 = _mm512_fmadd_ps(x, f, c5);
		c6 = _mm512_fmadd_ps(x, f, c6), c7 = _mm512_fmadd_ps(x, f, c7), c8 = _mm512_fmadd_ps(x, f, c8);
		c9 = _mm512_fmadd_ps(x, f, c9);
	}
	*fp32_gfmas = (double)n * 10 * 16 / (now() - t0) / 1e9;
	float sink[16];
	_mm512_storeu_ps(sink, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)),
					     _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(c4, c5), _mm512_add_ps(c6, c7)),
							   _mm512_add_ps(c8, c9))));
	int si[16];
	_mm512_storeu_si512(si, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
						 _mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7))));
	if (sink[0] == 12345.0f && si[0] == 1)
		printf(" ");
}

/*
 * The least a W4A16 GEMV must do per 128 FP4 weights on AVX-512, and nothing else: eight
 * vpermps lookups in the 16-value E2M1 table (four from codes as loaded at byte offsets 0-3,
 * four after a shift by 4), eight FMAs, eight independent chains. G weights/s on one core: the
 * ceiling of any loop of this kind here, before block scales, activation loads and the loop
 * itself.
 */
__attribute__((target("avx512f"))) static double w4a16_decode_ceiling(void)
{
	__m512i c0 = _mm512_set1_epi32(0x12345678), c1 = _mm512_set1_epi32(0x23456789), c2 = c0, c3 = c1;
	const __m512 lut = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f,
					  -2.0f, -3.0f, -4.0f, -6.0f);
	const __m512 x = _mm512_set1_ps(1e-9f);
	__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
	long n = 20000000;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		__asm__ volatile("" : "+v"(c0), "+v"(c1), "+v"(c2), "+v"(c3));
		a0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(c0, lut), x, a0);
		a1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(c0, 4), lut), x, a1);
		a2 = _mm512_fmadd_ps(_mm512_permutexvar_ps(c1, lut), x, a2);
		a3 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(c1, 4), lut), x, a3);
		a4 = _mm512_fmadd_ps(_mm512_permutexvar_ps(c2, lut), x, a4);
		a5 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(c2, 4), lut), x, a5);
		a6 = _mm512_fmadd_ps(_mm512_permutexvar_ps(c3, lut), x, a6);
		a7 = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(c3, 4), lut), x, a7);
	}
	double t = now() - t0;
	float sink[16];
	_mm512_storeu_ps(sink, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
					     _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))));
	if (sink[0] == 12345.0f)
		printf(" ");
	return (double)n * 8 * 16 / t / 1e9;
}

/*
 * The AVX-512 W4A4 GEMM's block as its kernel runs it, eight rows by sixteen outputs, operands
 * from L1 (eight blocks' worth, in turn): per quad one weight load and eight vpdpbusd against
 * broadcast activation words; then, with rescale, per block what the format needs before the
 * next: the eight sums to FP32 (a subtraction), sx·sw and the FMA into eight FP32 accumulators.
 * Without rescale the sums run on (vpdpbusd alone, with the same loads). quads: 4 (NVFP4's
 * 16-blocks; MXFP4's last block when its second sixteen is padding) or 8 (MXFP4's 32-blocks).
 * Block passes per second on one core.
 */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline double
w4a4_block_rate(const int quads, const int rescale)
{
	static int32_t wbuf[8 * 8 * 16] __attribute__((aligned(64)));
	static uint32_t xbuf[8 * 8 * 8];
	static float sxb[8 * 8] __attribute__((aligned(64))), swb[8 * 16] __attribute__((aligned(64)));
	for (int i = 0; i < 8 * 8 * 16; i++)
		wbuf[i] = 0x01ff02fe - i % 7;
	for (int i = 0; i < 8 * 8 * 8; i++)
		xbuf[i] = 0x0c0d0b0au + (uint32_t)(i % 5);
	for (int i = 0; i < 8 * 8; i++)
		sxb[i] = 0.5f + (float)(i % 3) * 0.125f;
	for (int i = 0; i < 8 * 16; i++)
		swb[i] = 0.25f + (float)(i % 5) * 0.0625f;
	const __m512i c = _mm512_set1_epi32(OP_G16_SUM_BIAS);
	const __m512 bias = _mm512_castsi512_ps(c);
	__m512i s0 = c, s1 = c, s2 = c, s3 = c, s4 = c, s5 = c, s6 = c, s7 = c;
	__m512 f0 = _mm512_setzero_ps(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0;
	const long n = 4000000;
	double t0 = now();
	for (long it = 0; it < n; it++) {
		const int b = (int)(it & 7);
		if (rescale)
			s0 = c, s1 = c, s2 = c, s3 = c, s4 = c, s5 = c, s6 = c, s7 = c;
#pragma GCC unroll 8
		for (int q = 0; q < quads; q++) {
			const __m512i w = _mm512_load_si512(wbuf + (b * 8 + q) * 16);
			const uint32_t *xr = xbuf + (b * 8 + q) * 8;
			s0 = _mm512_dpbusd_epi32(s0, _mm512_set1_epi32((int)xr[0]), w);
			s1 = _mm512_dpbusd_epi32(s1, _mm512_set1_epi32((int)xr[1]), w);
			s2 = _mm512_dpbusd_epi32(s2, _mm512_set1_epi32((int)xr[2]), w);
			s3 = _mm512_dpbusd_epi32(s3, _mm512_set1_epi32((int)xr[3]), w);
			s4 = _mm512_dpbusd_epi32(s4, _mm512_set1_epi32((int)xr[4]), w);
			s5 = _mm512_dpbusd_epi32(s5, _mm512_set1_epi32((int)xr[5]), w);
			s6 = _mm512_dpbusd_epi32(s6, _mm512_set1_epi32((int)xr[6]), w);
			s7 = _mm512_dpbusd_epi32(s7, _mm512_set1_epi32((int)xr[7]), w);
			/* volatile: without the rescale nothing reads the sums until the end */
			__asm__ volatile("" : "+v"(s0), "+v"(s1), "+v"(s2), "+v"(s3), "+v"(s4), "+v"(s5), "+v"(s6), "+v"(s7));
		}
		if (rescale) {
			const __m512 sw = _mm512_load_ps(swb + b * 16);
			const float *sx = sxb + b * 8;
#define OP_RESCALE(s, f, j) f = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_castsi512_ps(s), bias), _mm512_mul_ps(_mm512_set1_ps(sx[j]), sw), f)
			OP_RESCALE(s0, f0, 0), OP_RESCALE(s1, f1, 1), OP_RESCALE(s2, f2, 2), OP_RESCALE(s3, f3, 3);
			OP_RESCALE(s4, f4, 4), OP_RESCALE(s5, f5, 5), OP_RESCALE(s6, f6, 6), OP_RESCALE(s7, f7, 7);
#undef OP_RESCALE
		}
	}
	const double t = now() - t0;
	float sink[16];
	_mm512_storeu_ps(sink, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(f0, f1), _mm512_add_ps(f2, f3)),
					     _mm512_add_ps(_mm512_add_ps(f4, f5), _mm512_add_ps(f6, f7))));
	int si[16];
	_mm512_storeu_si512(si, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3)),
						 _mm512_add_epi32(_mm512_add_epi32(s4, s5), _mm512_add_epi32(s6, s7))));
	if (sink[0] == 12345.0f && si[0] == 1)
		printf(" ");
	return (double)n / t;
}

/* The four cases, each the best of three (a neighbour on the core takes a share now and then):
 * rate[quads == 8][rescale] */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void w4a4_block_rates(double rate[2][2])
{
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++)
			rate[i][j] = 0;
	for (int r = 0; r < 3; r++) {
		double a[2][2] = {{w4a4_block_rate(4, 0), w4a4_block_rate(4, 1)}, {w4a4_block_rate(8, 0), w4a4_block_rate(8, 1)}};
		for (int i = 0; i < 2; i++)
			for (int j = 0; j < 2; j++)
				rate[i][j] = fmax(rate[i][j], a[i][j]);
	}
}

/*
 * The W4A4 GEMM's inner loop as it is, with its operands from L1: per step two 256-bit loads
 * of activation codes, four 32-bit weight broadcasts, eight vpmaddubsw and eight vpaddw into
 * eight accumulators. What the kernel could reach with no block rescale and no quantization.
 */
__attribute__((target("avx2"))) static double inner_loop_ceiling(void)
{
	static uint8_t xbuf[4096] __attribute__((aligned(64)));
	static int8_t wbuf[4][256] __attribute__((aligned(64)));
	memset(xbuf, 3, sizeof(xbuf));
	memset(wbuf, 1, sizeof(wbuf));
	__m256i s0a = _mm256_setzero_si256(), s0b = s0a, s1a = s0a, s1b = s0a, s2a = s0a, s2b = s0a, s3a = s0a, s3b = s0a;
	long n = 20000000;
	double t0 = now();
	for (long it = 0; it < n; it++) {
		int q = (int)(it & 63);
		__m256i xa = _mm256_load_si256((const __m256i *)(xbuf + q * 64)), xb = _mm256_load_si256((const __m256i *)(xbuf + q * 64 + 32));
		int32_t v;
		memcpy(&v, wbuf[0] + 4 * q, 4);
		__m256i w = _mm256_set1_epi32(v);
		s0a = _mm256_add_epi16(s0a, _mm256_maddubs_epi16(xa, w)), s0b = _mm256_add_epi16(s0b, _mm256_maddubs_epi16(xb, w));
		memcpy(&v, wbuf[1] + 4 * q, 4);
		w = _mm256_set1_epi32(v);
		s1a = _mm256_add_epi16(s1a, _mm256_maddubs_epi16(xa, w)), s1b = _mm256_add_epi16(s1b, _mm256_maddubs_epi16(xb, w));
		memcpy(&v, wbuf[2] + 4 * q, 4);
		w = _mm256_set1_epi32(v);
		s2a = _mm256_add_epi16(s2a, _mm256_maddubs_epi16(xa, w)), s2b = _mm256_add_epi16(s2b, _mm256_maddubs_epi16(xb, w));
		memcpy(&v, wbuf[3] + 4 * q, 4);
		w = _mm256_set1_epi32(v);
		s3a = _mm256_add_epi16(s3a, _mm256_maddubs_epi16(xa, w)), s3b = _mm256_add_epi16(s3b, _mm256_maddubs_epi16(xb, w));
		__asm__("" : "+x"(s0a), "+x"(s0b), "+x"(s1a), "+x"(s1b), "+x"(s2a), "+x"(s2b), "+x"(s3a), "+x"(s3b));
	}
	double t = now() - t0;
	__m256i r = _mm256_add_epi16(_mm256_add_epi16(_mm256_add_epi16(s0a, s0b), _mm256_add_epi16(s1a, s1b)),
				     _mm256_add_epi16(_mm256_add_epi16(s2a, s2b), _mm256_add_epi16(s3a, s3b)));
	if (_mm256_extract_epi16(r, 0) == 12345)
		printf(" ");
	return (double)n * 8 * 32 / t / 1e9;
}
#endif

/* ---- GEMM ------------------------------------------------------------------------------------ */

/*
 * Seconds per call: the best of at least five calls and min_s of calls, the same rule for
 * ours and for OpenBLAS. On a shared 2-core VM the mean moves by ±15 % from run to run with
 * the neighbours' load; the best call is what the code can do.
 */
static double time_it(double min_s, void (*fn)(void *), void *ctx)
{
	fn(ctx); /* warm */
	int reps = 0;
	double t0 = now(), best = 1e30;
	do {
		double a = now();
		fn(ctx);
		double d = now() - a;
		best = d < best ? d : best;
		reps++;
	} while (reps < 5 || now() - t0 < min_s);
	return best;
}

/* CPU time, in clock ticks, of this process's threads other than the caller; -1 if unknown */
static long other_threads_ticks(void)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -1;
	const long self = syscall(SYS_gettid);
	long sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atol(e->d_name) == self)
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = 0;
		const char *p = strrchr(buf, ')'); /* the name may hold spaces */
		unsigned long ut, st;
		if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
			sum += (long)(ut + st);
	}
	closedir(d);
	return sum;
}

/* OpenBLAS's workers spin for a while after each call (2^28 cycles by default) before they
 * sleep: wait until no other thread of this process has used CPU time for 100 ms (ten clock
 * ticks), for at most 3 s, so that they do not share the cores with what is timed next.
 * Returns the seconds waited; -1 if it gave up (still busy at 3 s) or could not read /proc. */
static double wait_blas_idle(void)
{
	const double t0 = now();
	long prev = other_threads_ticks();
	while (prev >= 0 && now() - t0 < 3.0) {
		usleep(100000);
		long cur = other_threads_ticks();
		if (cur == prev)
			return now() - t0;
		prev = cur;
	}
	return -1;
}

/* The GEMM shapes of `kernels` (and of `shapes`' w4a4_parts): the event network's layers as
 * K x N (head.0 takes 136 inputs: padded to whole blocks inside; the built-in network runs its
 * head in FP32 now, an FP4 one may not), and a wider one; head.2 (64 -> 5) is left out: N below
 * 16. Each at M = 4,096 and 65,536 pulses. */
static const uint32_t gemm_kn[][2] = {{16, 64}, {64, 64}, {136, 128}, {128, 64}, {256, 256}};
static const uint32_t gemm_ms[] = {4096, 65536};

typedef struct gemm_ctx {
	op_fp4_linear *L;
	op_fp4_tensor *W;
	int mode, threads;
	const float *X, *Wf;
	float *Y;
	uint32_t M, K, N;
} gemm_ctx;

static void run_fp4(void *a)
{
	gemm_ctx *c = a;
	op_fp4_gemm(c->L, c->mode, c->X, c->K, c->M, c->Y, c->N, c->threads);
}

static void run_sgemm(void *a)
{
	gemm_ctx *c = a;
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)c->M, (int)c->N, (int)c->K, 1.0f, c->X, (int)c->K, c->Wf,
		    (int)c->K, 0.0f, c->Y, (int)c->N);
}

static void run_gemv(void *a)
{
	gemm_ctx *c = a;
	op_fp4_gemv(c->W, c->mode, 0.01f, OP_MX_SCALE_FLOOR, c->X, c->M, c->Y, NULL, 0, c->threads);
}

static void run_sgemv(void *a)
{
	gemm_ctx *c = a;
	for (uint32_t m = 0; m < c->M; m++)
		cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)c->N, (int)c->K, 1.0f, c->Wf, (int)c->K, c->X + (size_t)m * c->K, 1,
			    0.0f, c->Y + (size_t)m * c->N, 1);
}

/* One core's measured peaks (core_peak / core_peak_avx512, the rung's own instructions), 0 where
 * not measured: the limits the GEMM and model figures are shown against. */
static double peak_i8_gmac, peak_f32_gflop;

/* x / (threads · per-core peak) as a JSON value, null when the peak was not measured */
static const char *frac(char *buf, size_t len, double x, int threads, double peak)
{
	if (peak > 0)
		snprintf(buf, len, "%.3f", x / (threads * peak));
	else
		snprintf(buf, len, "null");
	return buf;
}

/* ---- model ----------------------------------------------------------------------------------- */

static void bench_model(const char *path, int threads_max)
{
	op_model m;
	char err[512];
	if (op_model_load(path, &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpost-bench: %s\n", err);
		return;
	}
	/* 40-pulse events: simulated tracks and cascades cut to their earliest 40 pulses */
	enum { NE = 8192, NP = 40 };
	op_bench_events E;
	if (op_bench_sim_events(&E, NE, NP) < 0) {
		op_model_free(&m);
		return;
	}
	float *sb = malloc(NP * 5 * sizeof(float));
	op_reco_event *ev = E.ev;
	op_reco_out *g = E.guess, *out = malloc(NE * sizeof(*out));
	op_model_ws *ws[16];
	for (int i = 0; i < 16; i++)
		ws[i] = op_model_ws_new();
	const char *base = strrchr(path, '/');
	for (int t = 1; t <= threads_max; t++) {
		op_model_run(&m, ws, t, ev, g, out, NE); /* warm */
		int reps = 0;
		double t0 = now(), el;
		do {
			op_model_run(&m, ws, t, ev, g, out, NE);
			reps++;
			el = now() - t0;
		} while (el < 1.0);
		double eps = (double)NE * reps / el;
		/* the same events through the seed alone, for what the whole path costs */
		double t1 = now();
		for (int e = 0; e < NE; e++)
			op_seed_guess(&g[e], &ev[e], sb);
		double seed_eps = NE / (now() - t1);
		/* the network's multiply-adds per event, every layer's (FP32 ones too), against the int8
		 * peak (the W4A4 layers' limit) */
		double macs = 0;
		for (uint32_t i = 0; i < m.n_pulse_layers; i++)
			macs += (double)NP * m.pulse[i].lin.k * m.pulse[i].lin.n;
		for (uint32_t i = 0; i < m.n_head_layers; i++)
			macs += (double)m.head[i].lin.k * m.head[i].lin.n;
		char fb[32];
		printf("{\"bench\":\"kernels\",\"figure\":\"model_events_per_s\",\"model\":\"%s\",\"pulses_per_event\":%d,"
		       "\"threads\":%d,\"events_per_s\":%.0f,\"target\":50000,\"ratio_to_target\":%.2f,"
		       "\"gmac_per_s\":%.1f,\"fraction_of_int8_peak\":%s,\"seed_linefit_events_per_s_1thread\":%.0f}\n",
		       base ? base + 1 : path, NP, t, eps, eps / 50000, eps * macs / 1e9,
		       frac(fb, sizeof(fb), eps * macs / 1e9, t, peak_i8_gmac), seed_eps);
		fflush(stdout);
	}
	/* what the infer stage runs: first guess and network together (op_reco_run), in batches of
	 * infer.batch_events's default 256, on the CPU backend */
	for (int t = 1; t <= threads_max; t++) {
		op_model *mm = calloc(1, sizeof(*mm));
		char rerr[512];
		if (!mm || op_model_load(path, mm, rerr, sizeof(rerr)) < 0) {
			free(mm);
			break;
		}
		op_reco *r = NULL;
		op_reco_config rc = {.kind = "fp4", .model = mm, .threads = t, .backend = "cpu", .max_events = 256};
		if (op_reco_open(&rc, &r) < 0)
			break;
		for (int e = 0; e < NE; e += 256)
			op_reco_run(r, out + e, ev + e, 256); /* warm */
		int reps = 0;
		double t0 = now(), el;
		do {
			for (int e = 0; e < NE; e += 256)
				op_reco_run(r, out + e, ev + e, 256);
			reps++;
			el = now() - t0;
		} while (el < 1.0);
		printf("{\"bench\":\"kernels\",\"figure\":\"reconstruction_events_per_s\",\"model\":\"%s\","
		       "\"pulses_per_event\":%d,\"batch_events\":256,\"threads\":%d,\"events_per_s\":%.0f,"
		       "\"includes\":\"LineFit first guess and the network, as the infer stage runs them\"}\n",
		       base ? base + 1 : path, NP, t, (double)NE * reps / el);
		fflush(stdout);
		op_reco_close(r);
	}
	for (int i = 0; i < 16; i++)
		op_model_ws_free(ws[i]);
	op_model_free(&m);
	free(sb), free(out);
	op_bench_events_free(&E);
}

int op_bench_sim_events(op_bench_events *E, int ne, int np)
{
	op_geometry *geo = NULL;
	op_simgen *gen = NULL;
	op_simgen_config sc = {.seed = 99, .track_fraction = 0.7, .max_pulses = (uint32_t)np, .noise_hz = 500};
	E->buf = malloc((size_t)ne * np * 5 * sizeof(float));
	E->flags = malloc((size_t)ne * np * sizeof(uint16_t));
	E->ev = malloc((size_t)ne * sizeof(*E->ev));
	E->guess = malloc((size_t)ne * sizeof(*E->guess));
	float *sb = malloc((size_t)np * 5 * sizeof(float));
	if (!E->buf || !E->flags || !E->ev || !E->guess || !sb || op_geometry_default(&geo) < 0 ||
	    op_simgen_open(&sc, geo, &gen) < 0) {
		free(sb);
		op_geometry_close(geo);
		op_bench_events_free(E);
		return -1;
	}
	for (int e = 0; e < ne;) {
		op_sim_event s;
		op_simgen_next(gen, &s);
		if (s.n < (uint32_t)np)
			continue;
		float *b = E->buf + (size_t)e * np * 5;
		uint16_t *fl = E->flags + (size_t)e * np;
		op_placed_pulses dst = {b, b + np, b + 2 * np, b + 3 * np, b + 4 * np, fl};
		if (op_geometry_place(geo, s.pulses, (uint32_t)np, &dst, 0) != (uint32_t)np)
			continue; /* every simulated pulse names a known sensor; keep only whole events */
		E->ev[e] = (op_reco_event){.n = (uint32_t)np, .x_m = b, .y_m = b + np, .z_m = b + 2 * np,
					   .t_ns = b + 3 * np, .q_pe = b + 4 * np, .flags = fl};
		op_seed_guess(&E->guess[e], &E->ev[e], sb);
		e++;
	}
	free(sb);
	op_simgen_close(gen);
	op_geometry_close(geo);
	return 0;
}

void op_bench_events_free(op_bench_events *E)
{
	free(E->buf), free(E->flags), free(E->ev), free(E->guess);
	E->buf = NULL, E->flags = NULL, E->ev = NULL, E->guess = NULL;
}

int op_bench_kernels(int argc, char **argv)
{
	int threads = 2, quick = 0, nm = 0;
	const char *models[8];
	for (int i = 1; i < argc; i++) {
		int has_value = i + 1 < argc;
		if (!strcmp(argv[i], "--threads") && has_value) {
			threads = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--model") && has_value) {
			if (nm == 8) {
				fprintf(stderr, "outpost-bench kernels: at most 8 --model files\n");
				return 2;
			}
			models[nm++] = argv[++i];
		} else if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else {
			fprintf(stderr, "outpost-bench kernels: %s '%s'\n",
				!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--model") ? "missing value after" : "unknown argument",
				argv[i]);
			return 2;
		}
	}
	if (threads < 1 || threads > 16) {
		fprintf(stderr, "outpost-bench kernels: --threads must be 1 to 16\n");
		return 2;
	}
	openblas_set_num_threads(threads);
	/* 64 MiB: what sgemv reads at K = N = 4,096, the GEMV figures' limit (with a large L3, part of
	 * it stays there, for OpenBLAS as for this loop); 1 GiB, four times the L3 of the VM these
	 * figures come from: memory itself (not with --quick, nor with less than 2 GiB free) */
	static const size_t bw_mib[] = {64, 1024};
	const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	const int big = !quick && pages > 0 && page > 0 && (double)pages * (double)page >= 2.0 * (1u << 30);
	if (!quick && !big)
		printf("{\"bench\":\"kernels\",\"figure\":\"memory_read_bandwidth\",\"buffer_mib\":1024,"
		       "\"skipped\":\"less than 2 GiB of memory free\"}\n");
	double bwn = 0;
	for (int b = 0; b < (big ? 2 : 1); b++)
		for (int th = 1; th <= threads; th += threads > 1 ? threads - 1 : 1) {
			double g = bandwidth(th, bw_mib[b] << 20);
			if (g <= 0) {
				fprintf(stderr, "outpost-bench kernels: cannot measure read bandwidth over %zu MiB\n", bw_mib[b]);
				return 1;
			}
			if (b == 0 && th == threads)
				bwn = g;
			printf("{\"bench\":\"kernels\",\"figure\":\"memory_read_bandwidth\",\"buffer_mib\":%zu,\"threads\":%d,"
			       "\"gb_per_s\":%.2f}\n",
			       bw_mib[b], th, g);
		}
#if defined(__x86_64__)
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
		/* the best of three: on a shared VM a neighbour on the same physical core takes up to
		 * a third of the integer figure from one run to the next (118-182 G MAC/s seen on an
		 * EPYC while the FP32 figure held), and a peak is what the core can do */
		double i8 = 0, f32 = 0, loop = 0;
		for (int r = 0; r < 3; r++) {
			double a, b, c;
			peaks(&a, &b);
			c = inner_loop_ceiling();
			i8 = a > i8 ? a : i8, f32 = b > f32 ? b : f32, loop = c > loop ? c : loop;
		}
		peak_i8_gmac = i8, peak_f32_gflop = 2 * f32;
		printf("{\"bench\":\"kernels\",\"figure\":\"core_peak\",\"int8_vpmaddubsw_gmac_per_s\":%.1f,"
		       "\"fp32_fma_gflop_per_s\":%.1f,\"ceiling_ratio_int8_vs_fp32\":%.2f,"
		       "\"w4a4_inner_loop_gmac_per_s\":%.1f,\"inner_loop_ratio_vs_fp32_peak\":%.2f}\n",
		       i8, 2 * f32, i8 / f32, loop, loop / f32);
	}
	if (op_fp4_rung_available(OP_RUNG_AVX512)) {
		double i8, f32;
		peaks512(&i8, &f32);
		peak_i8_gmac = i8, peak_f32_gflop = 2 * f32; /* the rung the kernels run */
		printf("{\"bench\":\"kernels\",\"figure\":\"core_peak_avx512\",\"int8_vpdpbusd_gmac_per_s\":%.1f,"
		       "\"fp32_fma_gflop_per_s\":%.1f,\"ceiling_ratio_int8_vs_fp32\":%.2f,"
		       "\"w4a16_decode_fma_gweights_per_s\":%.1f}\n",
		       i8, 2 * f32, i8 / f32, w4a16_decode_ceiling());
	}
#endif
	/* A fair baseline needs OpenBLAS's kernels for this CPU; on a CPU it does not know (a VM's
	 * generic model name) it falls back to its SSE3 "Prescott" ones, 2-4x slower than it can be,
	 * and every ratio below would flatter us. Say so; OPENBLAS_CORETYPE fixes it. */
	const char *ob = openblas_get_config();
	int weak = strstr(ob, "Prescott") != NULL || strstr(ob, "Core2") != NULL;
	printf("{\"bench\":\"kernels\",\"figure\":\"rung\",\"rung\":\"%s\",\"openblas\":\"%s\"%s}\n",
	       op_fp4_rung_name(op_fp4_rung_best()), ob,
	       weak ? ",\"baseline_warning\":\"OpenBLAS is running its generic SSE3 kernels on this CPU: the sgemm "
		      "baseline is slower than the machine allows; rerun with OPENBLAS_CORETYPE=Haswell (AVX2) or "
		      "SkylakeX (AVX-512)\""
		    : "");
	fflush(stdout);

	/* The model first, before OpenBLAS has run at all: its worker threads keep spinning for a
	 * while after each call and would steal the cores from anything timed after them. */
	for (int i = 0; i < nm; i++)
		bench_model(models[i], threads);

	/*
	 * Then the kernels against OpenBLAS, in rounds: every FP4 figure, then every baseline, then
	 * (once OpenBLAS's workers have gone idle) the next round; each figure keeps its best time
	 * over the rounds, ours and OpenBLAS's alike. On a shared VM the neighbours' load moves both
	 * sides by tens of percent over minutes (2026-12-01, two runs on one VM: sgemv at M = 1 in
	 * 2,383 and 1,629 µs); when all of ours were timed minutes before all of OpenBLAS's, a ratio
	 * said which side had met the quiet minutes. Each line also gives the range of the ratios of
	 * the single rounds, so a reader sees how much the machine moved within the run.
	 */
	/* GEMV: every M from 1 to 16 (passes of four rows and the M % 4 rest each have their own
	 * code), K = N = 4,096 */
	enum { NS = 5, NMS = 2, NGM = 16, ROUNDS = 3 };
	const int rounds = quick ? 1 : ROUNDS;
	const double min_s = quick ? 0.05 : 0.1; /* a round's: 0.3 s a figure over the three */
	static double t_gemm[ROUNDS][NMS][NS][2][2], t_sgemm[ROUNDS][NMS][NS];
	static double t_gemv[ROUNDS][2][NGM][2], t_sgemv[ROUNDS][NGM], t_sgemm16[ROUNDS][NGM];
	const uint32_t K = 4096, N = 4096;
	float *Wf = randbuf((size_t)N * K, 3), *X = randbuf(16 * (size_t)K, 4), *Y = malloc(16 * (size_t)N * 4);
	op_fp4_tensor gw[2];
	size_t wbytes[2];
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++) {
		op_fp4_tensor_alloc(&gw[format - 1], format, N, K);
		op_fp4_quantize(&gw[format - 1], Wf, K, K, OP_MX_SCALE_FLOOR);
		wbytes[format - 1] = (size_t)N * K / 2 + (size_t)N * (K / op_fp4_block(format));
	}
	double core_rate[2][2];			 /* [mode][streamed, cached] G weights/s, NVFP4 */
	static const uint32_t big_m[2] = {1, 5}; /* gemv_large_k */
	const uint32_t big_k = 16384;
	double big_t[2][2] = {{0, 0}, {0, 0}}; /* [mode][M] */
	for (int r = 0; r < rounds; r++) {
		if (r) {
			/* said in the output, so a round timed beside spinning workers is seen */
			double w = wait_blas_idle();
			printf("{\"bench\":\"kernels\",\"figure\":\"baseline_idle_wait\",\"round\":%d,", r + 1);
			if (w < 0)
				printf("\"idle\":false,\"note\":\"other threads still used CPU time after 3 s (or /proc was not "
				       "readable): this round's FP4 figures may share the cores\"}\n");
			else
				printf("\"idle\":true,\"seconds\":%.2f}\n", w);
			fflush(stdout);
		}
		for (int phase = 0; phase < 2; phase++) { /* 0: ours, 1: OpenBLAS */
			for (size_t mi = 0; mi < NMS; mi++)
				for (size_t s = 0; s < NS; s++) {
					uint32_t M = gemm_ms[mi], Kg = gemm_kn[s][0], Ng = gemm_kn[s][1];
					float *Xg = randbuf((size_t)M * Kg, 1), *Wg = randbuf((size_t)Ng * Kg, 2);
					float *Yg = malloc((size_t)M * Ng * 4);
					gemm_ctx c = {.X = Xg, .Wf = Wg, .Y = Yg, .M = M, .K = Kg, .N = Ng, .threads = threads};
					if (phase == 1) {
						t_sgemm[r][mi][s] = time_it(min_s, run_sgemm, &c);
					} else {
						for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++) {
							op_fp4_tensor w;
							op_fp4_linear L;
							uint32_t bl = op_fp4_block(format), kp = (Kg + bl - 1) / bl * bl;
							op_fp4_tensor_alloc(&w, format, Ng, kp);
							op_fp4_quantize(&w, Wg, Kg, Kg, OP_MX_SCALE_FLOOR);
							op_fp4_linear_init(&L, &w, Kg, NULL, 1, 0.01f, OP_MX_SCALE_FLOOR);
							c.L = &L;
							for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
								c.mode = mode;
								t_gemm[r][mi][s][format - 1][mode - 1] = time_it(min_s, run_fp4, &c);
							}
							op_fp4_linear_free(&L);
						}
					}
					free(Xg), free(Wg), free(Yg);
				}
			for (int mi = 0; mi < NGM; mi++) {
				gemm_ctx c = {.X = X, .Wf = Wf, .Y = Y, .M = mi + 1u, .K = K, .N = N, .threads = threads};
				if (phase == 1) {
					t_sgemv[r][mi] = time_it(min_s, run_sgemv, &c);
					t_sgemm16[r][mi] = time_it(min_s, run_sgemm, &c);
					continue;
				}
				for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
					for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
						c.W = &gw[format - 1], c.mode = mode;
						t_gemv[r][format - 1][mi][mode - 1] = time_it(min_s, run_gemv, &c);
					}
			}
			if (phase == 1 || r)
				continue;
			/* FP4-only figures, once, before OpenBLAS has run. One core, M = 1: the rate over all
			 * 4,096 rows (streamed) and over 256 of them again and again (512 KiB of codes, hot
			 * in L2): equal rates mean the loop is bound by its instructions, not by memory, and
			 * the cached rate is the most this core's loop can give. */
			for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
				for (int hot = 0; hot <= 1; hot++) {
					op_fp4_tensor part = gw[0];
					part.rows = hot ? 256 : N;
					gemm_ctx c = {.W = &part, .X = X, .Y = Y, .M = 1, .K = K, .N = part.rows, .threads = 1, .mode = mode};
					core_rate[mode - 1][hot] = (double)part.rows * K / time_it(rounds * min_s, run_gemv, &c) / 1e9;
				}
			/* K = 16,384 (N = 4,096), NVFP4, both modes, M = 1 and 5: the GEMVs take K in chunks
			 * that keep a pass's activations in L1; their rate (weights streamed per second) beside
			 * the K = 4,096 one shows whether the chunking keeps the loop's speed (W4A16: 1,024-wide
			 * chunks for one row had cost 58 %; W4A4 unchunked ran 10-20 % slower at two to five
			 * rows; at this K its one row fits whole and is not chunked, its five are).
			 * Not with --quick (256 MiB of FP32 weights to quantize). */
			if (!quick) {
				float *Wb = randbuf((size_t)N * big_k, 5), *Xb = randbuf(5 * (size_t)big_k, 6);
				op_fp4_tensor w;
				if (Wb && Xb && op_fp4_tensor_alloc(&w, OP_FP4_NVFP4, N, big_k) == 0) {
					op_fp4_quantize(&w, Wb, big_k, big_k, OP_MX_SCALE_FLOOR);
					for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
						for (int i = 0; i < 2; i++) {
							gemm_ctx c = {.W = &w, .X = Xb, .Y = Y, .M = big_m[i], .K = big_k, .N = N,
								      .threads = threads, .mode = mode};
							big_t[mode - 1][i] = time_it(rounds * min_s, run_gemv, &c);
						}
					op_fp4_tensor_free(&w);
				}
				free(Wb), free(Xb);
			}
		}
	}
	for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
		op_fp4_tensor_free(&gw[format - 1]);

	for (size_t mi = 0; mi < NMS; mi++)
		for (size_t s = 0; s < NS; s++)
			for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
				for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
					uint32_t M = gemm_ms[mi], Kg = gemm_kn[s][0], Ng = gemm_kn[s][1];
					double t = 1e30, ts = 1e30, lo = 1e30, hi = 0;
					for (int r = 0; r < rounds; r++) {
						double a = t_gemm[r][mi][s][format - 1][mode - 1], b = t_sgemm[r][mi][s];
						t = fmin(t, a), ts = fmin(ts, b), lo = fmin(lo, b / a), hi = fmax(hi, b / a);
					}
					double flop = 2.0 * M * Ng * Kg;
					/* limits: W4A4 the int8 peak (multiply-adds), W4A16 and sgemm the FP32 one */
					char f1[32], f2[32];
					printf("{\"bench\":\"kernels\",\"figure\":\"gemm\",\"format\":\"%s\",\"mode\":\"%s\",\"M\":%u,"
					       "\"K\":%u,\"N\":%u,\"threads\":%d,\"rung\":\"%s\",\"gflops\":%.2f,"
					       "\"sgemm_gflops\":%.2f,\"ratio_vs_sgemm\":%.2f,\"target_ratio\":%s,"
					       "\"rounds\":%d,\"round_ratios\":[%.2f,%.2f],"
					       "\"fraction_of_peak\":%s,\"peak\":\"%s\",\"sgemm_fraction_of_fp32_peak\":%s}\n",
					       format == OP_FP4_NVFP4 ? "nvfp4" : "mxfp4", mode == OP_W4A4 ? "w4a4" : "w4a16", M, Kg,
					       Ng, threads, op_fp4_rung_name(op_fp4_rung_best()), flop / t / 1e9, flop / ts / 1e9,
					       ts / t, mode == OP_W4A4 ? "2.0" : "null", rounds, lo, hi,
					       mode == OP_W4A4 ? frac(f1, sizeof(f1), flop / 2 / t / 1e9, threads, peak_i8_gmac)
							       : frac(f1, sizeof(f1), flop / t / 1e9, threads, peak_f32_gflop),
					       mode == OP_W4A4 ? "int8" : "fp32",
					       frac(f2, sizeof(f2), flop / ts / 1e9, threads, peak_f32_gflop));
				}
	double sgemv_best[NGM];
	for (int mi = 0; mi < NGM; mi++) {
		double sv = 1e30, sm = 1e30;
		for (int r = 0; r < rounds; r++)
			sv = fmin(sv, t_sgemv[r][mi]), sm = fmin(sm, t_sgemm16[r][mi]);
		sgemv_best[mi] = sv;
		for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++)
			for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
				double t = 1e30, lo = 1e30, hi = 0;
				for (int r = 0; r < rounds; r++) {
					double a = t_gemv[r][format - 1][mi][mode - 1], b = t_sgemv[r][mi];
					t = fmin(t, a), lo = fmin(lo, b / a), hi = fmax(hi, b / a);
				}
				double gbs = (double)wbytes[format - 1] / t / 1e9;
				printf("{\"bench\":\"kernels\",\"figure\":\"gemv\",\"format\":\"%s\",\"mode\":\"%s\",\"M\":%u,\"K\":%u,"
				       "\"N\":%u,\"threads\":%d,\"us\":%.1f,\"sgemv_us\":%.1f,\"sgemm_us\":%.1f,"
				       "\"ratio_vs_sgemv\":%.2f,\"ratio_vs_sgemm\":%.2f,\"target_ratio\":4.0,"
				       "\"rounds\":%d,\"round_ratios\":[%.2f,%.2f],"
				       "\"weight_gb_per_s\":%.2f,\"fraction_of_read_bandwidth\":%.2f,"
				       "\"sgemv_fraction_of_read_bandwidth\":%.2f}\n",
				       format == OP_FP4_NVFP4 ? "nvfp4" : "mxfp4", mode == OP_W4A4 ? "w4a4" : "w4a16", mi + 1u, K,
				       N, threads, t * 1e6, sv * 1e6, sm * 1e6, sv / t, sm / t, rounds, lo, hi, gbs, gbs / bwn,
				       (double)N * K * 4 * (mi + 1u) / sv / 1e9 / bwn);
			}
	}
	/* timed once, in the first round; "needed" is against the best sgemv of all rounds, the one
	 * the gemv lines' ratio uses */
	for (int mode = OP_W4A4; mode <= OP_W4A16; mode++)
		printf("{\"bench\":\"kernels\",\"figure\":\"gemv_core_rate\",\"format\":\"nvfp4\",\"mode\":\"%s\",\"M\":1,"
		       "\"K\":%u,\"threads\":1,\"g_weights_per_s_streamed\":%.1f,\"g_weights_per_s_l2_hot\":%.1f,"
		       "\"needed_per_core_for_4x_sgemv\":%.1f}\n",
		       mode == OP_W4A4 ? "w4a4" : "w4a16", K, core_rate[mode - 1][0], core_rate[mode - 1][1],
		       4.0 * N * K / sgemv_best[0] / threads / 1e9);
	for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
		const double t1 = t_gemv[0][0][0][mode - 1]; /* M = 1 at K = 4,096, NVFP4, timed in the same round */
		for (int i = 0; i < 2 && big_t[mode - 1][i] > 0; i++)
			printf("{\"bench\":\"kernels\",\"figure\":\"gemv_large_k\",\"format\":\"nvfp4\",\"mode\":\"%s\","
			       "\"M\":%u,\"K\":%u,\"N\":%u,\"threads\":%d,\"us\":%.1f,\"g_weights_per_s\":%.1f,"
			       "\"g_weights_per_s_at_k4096_m1\":%.1f}\n",
			       mode == OP_W4A4 ? "w4a4" : "w4a16", big_m[i], big_k, N, threads, big_t[mode - 1][i] * 1e6,
			       (double)N * big_k / big_t[mode - 1][i] / 1e9, (double)N * K / t1 / 1e9);
	}
	free(Wf), free(X), free(Y);
	return 0;
}

typedef struct quant_ctx {
	const op_fp4_linear *L;
	const float *X;
	uint32_t M;
} quant_ctx;

static void run_quant(void *a)
{
	quant_ctx *c = a;
	op_fp4_w4a4_quantize_rung(OP_RUNG_AVX512, c->L, c->X, c->L->k, c->M);
}

#if defined(__x86_64__)
/*
 * outpost-bench shapes, figures w4a4_block_ceiling and w4a4_parts (the AVX-512 rung, one thread,
 * before OpenBLAS has run): where a W4A4 GEMM call's time goes at the shapes `kernels` times.
 * The activation quantizer is timed alone (op_fp4_w4a4_quantize_rung); the rest of the call is
 * set against the block ceiling with the format's rescale (w4a4_block_rate). bound_ratio_vs_sgemm
 * is sgemm's time over (quantizer + the compute at that ceiling): what this kernel design could
 * reach against sgemm on one core with nothing else (tile bookkeeping, the stores, waiting on
 * memory) in the way.
 */
static void w4a4_parts(double min_s)
{
	double rate[2][2];
	w4a4_block_rates(rate);
	printf("{\"bench\":\"shapes\",\"figure\":\"w4a4_block_ceiling\",\"rung\":\"avx512\",\"threads\":1,"
	       "\"gmac_per_s_16_blocks\":%.1f,\"gmac_per_s_16_vpdpbusd_alone\":%.1f,\"gmac_per_s_32_blocks\":%.1f,"
	       "\"gmac_per_s_32_vpdpbusd_alone\":%.1f,\"rescale_slowdown_16\":%.2f,\"rescale_slowdown_32\":%.2f}\n",
	       rate[0][1] * 2048 / 1e9, rate[0][0] * 2048 / 1e9, rate[1][1] * 4096 / 1e9, rate[1][0] * 4096 / 1e9,
	       rate[0][0] / rate[0][1], rate[1][0] / rate[1][1]);
	fflush(stdout);
	openblas_set_num_threads(1);
	for (size_t mi = 0; mi < sizeof(gemm_ms) / sizeof(gemm_ms[0]); mi++)
		for (size_t s = 0; s < sizeof(gemm_kn) / sizeof(gemm_kn[0]); s++) {
			const uint32_t M = gemm_ms[mi], Kg = gemm_kn[s][0], Ng = gemm_kn[s][1];
			float *Xg = randbuf((size_t)M * Kg, 1), *Wg = randbuf((size_t)Ng * Kg, 2), *Yg = malloc((size_t)M * Ng * 4);
			if (!Xg || !Wg || !Yg) {
				free(Xg), free(Wg), free(Yg);
				return;
			}
			gemm_ctx c = {.X = Xg, .Wf = Wg, .Y = Yg, .M = M, .K = Kg, .N = Ng, .threads = 1, .mode = OP_W4A4};
			const double ts = time_it(min_s, run_sgemm, &c);
			for (int format = OP_FP4_NVFP4; format <= OP_FP4_MXFP4; format++) {
				op_fp4_tensor w;
				op_fp4_linear L;
				const uint32_t bl = op_fp4_block(format), kp = (Kg + bl - 1) / bl * bl, nb = kp / bl;
				op_fp4_tensor_alloc(&w, format, Ng, kp);
				op_fp4_quantize(&w, Wg, Kg, Kg, OP_MX_SCALE_FLOOR);
				op_fp4_linear_init(&L, &w, Kg, NULL, 1, 0.01f, OP_MX_SCALE_FLOOR);
				c.L = &L;
				quant_ctx q = {.L = &L, .X = Xg, .M = M};
				const double t = time_it(min_s, run_fp4, &c), tq = time_it(min_s, run_quant, &q);
				/* block passes of eight rows by sixteen outputs, and how many quads each block has:
				 * MXFP4's blocks whose second sixteen lies wholly past K skip it (4 quads) */
				uint32_t n8 = 0;
				for (uint32_t b = 0; format == OP_FP4_MXFP4 && b < nb; b++)
					n8 += b * bl + 16 < Kg;
				const double passes = (double)((M + 15) / 16 * 2) * ((Ng + 15) / 16);
				const double floor_c = passes * ((nb - n8) / rate[0][1] + n8 / rate[1][1]);
				printf("{\"bench\":\"shapes\",\"figure\":\"w4a4_parts\",\"format\":\"%s\",\"M\":%u,\"K\":%u,\"N\":%u,"
				       "\"threads\":1,\"us\":%.1f,\"quantize_us\":%.1f,\"quantize_share\":%.2f,\"rest_us\":%.1f,"
				       "\"rest_at_block_ceiling_us\":%.1f,\"rest_vs_ceiling\":%.2f,\"sgemm_us\":%.1f,"
				       "\"ratio_vs_sgemm\":%.2f,\"bound_ratio_vs_sgemm\":%.2f}\n",
				       format == OP_FP4_NVFP4 ? "nvfp4" : "mxfp4", M, Kg, Ng, t * 1e6, tq * 1e6, tq / t, (t - tq) * 1e6,
				       floor_c * 1e6, (t - tq) / floor_c, ts * 1e6, ts / t, ts / (tq + floor_c));
				fflush(stdout);
				op_fp4_linear_free(&L);
			}
			free(Xg), free(Wg), free(Yg);
		}
}
#endif

/*
 * outpost-bench shapes: how the FP4 kernels' time moves with one dimension, on 1 and 2
 * threads, NVFP4, the best of at least five calls and 0.3 s of calls (time_it) for ours and
 * OpenBLAS's alike.
 *  - gemv_rows: the GEMV at K = N = 4,096 for M = 1 … 6, W4A4 and W4A16: the time per row of X
 *    shows whether passes of several rows pay (docs/benchmarks.md, "AMD EPYC with AVX-512").
 *  - gemm_n: the W4A4 GEMM at M = 4,096, K = 128 for N = 16 … 256 against sgemm: its time is
 *    a + b·N, a being the activations' quantization, which does not shrink with N.
 *  - w4a4_block_ceiling and w4a4_parts (on the AVX-512 rung, first): see w4a4_parts.
 */
int op_bench_shapes(int argc, char **argv)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: outpost-bench shapes\n");
		return 2;
	}
	const double min_s = 0.3;
#if defined(__x86_64__)
	if (op_fp4_rung_best() == OP_RUNG_AVX512)
		w4a4_parts(min_s);
#endif
	const uint32_t K = 4096, N = 4096, Mg = 4096, Kg = 128;
	float *Wf = randbuf((size_t)N * K, 3), *X = randbuf(6 * (size_t)K, 4), *Y = malloc(6 * (size_t)N * 4);
	float *Xg = randbuf((size_t)Mg * Kg, 1), *Yg = malloc((size_t)Mg * 256 * 4);
	if (!Wf || !X || !Y || !Xg || !Yg)
		return 1;
	op_fp4_tensor w;
	op_fp4_tensor_alloc(&w, OP_FP4_NVFP4, N, K);
	op_fp4_quantize(&w, Wf, K, K, OP_MX_SCALE_FLOOR);
	for (int threads = 1; threads <= 2; threads++) {
		openblas_set_num_threads(threads);
		for (uint32_t M = 1; M <= 6; M++)
			for (int mode = OP_W4A4; mode <= OP_W4A16; mode++) {
				gemm_ctx c = {.W = &w, .mode = mode, .threads = threads, .X = X, .Y = Y, .M = M, .K = K, .N = N};
				double t = time_it(min_s, run_gemv, &c);
				printf("{\"bench\":\"shapes\",\"figure\":\"gemv_rows\",\"format\":\"nvfp4\",\"mode\":\"%s\",\"M\":%u,"
				       "\"K\":%u,\"N\":%u,\"threads\":%d,\"us\":%.1f,\"us_per_row\":%.1f}\n",
				       mode == OP_W4A4 ? "w4a4" : "w4a16", M, K, N, threads, t * 1e6, t * 1e6 / M);
				fflush(stdout);
			}
		for (uint32_t Ng = 16; Ng <= 256; Ng *= 2) {
			float *Wg = randbuf((size_t)Ng * Kg, 2);
			op_fp4_tensor wg;
			op_fp4_linear L;
			op_fp4_tensor_alloc(&wg, OP_FP4_NVFP4, Ng, Kg);
			op_fp4_quantize(&wg, Wg, Kg, Kg, OP_MX_SCALE_FLOOR);
			op_fp4_linear_init(&L, &wg, Kg, NULL, 1, 0.01f, OP_MX_SCALE_FLOOR);
			gemm_ctx c = {.L = &L, .mode = OP_W4A4, .threads = threads, .X = Xg, .Wf = Wg, .Y = Yg, .M = Mg, .K = Kg,
				      .N = Ng};
			double t = time_it(min_s, run_fp4, &c), ts = time_it(min_s, run_sgemm, &c);
			printf("{\"bench\":\"shapes\",\"figure\":\"gemm_n\",\"format\":\"nvfp4\",\"mode\":\"w4a4\",\"M\":%u,"
			       "\"K\":%u,\"N\":%u,\"threads\":%d,\"us\":%.1f,\"sgemm_us\":%.1f,\"ratio_vs_sgemm\":%.2f}\n",
			       Mg, Kg, Ng, threads, t * 1e6, ts * 1e6, ts / t);
			fflush(stdout);
			op_fp4_linear_free(&L); /* (it owns wg) */
			free(Wg);
		}
	}
	op_fp4_tensor_free(&w);
	free(Wf), free(X), free(Y), free(Xg), free(Yg);
	return 0;
}
