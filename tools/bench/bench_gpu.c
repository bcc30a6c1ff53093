/*
 * bench_gpu.c — outpost-bench gpu: the CUDA backend against its baselines, measured in the same
 * run, one JSON line per figure, each with the device's name.
 *   device      name, compute capability, SMs; copy bandwidth measured (device-to-device, and
 *               host-to-device from pinned memory) — the limits the figures are shown against
 *   gemm        our FP4-weight kernels (GEMV for M ≤ 16, the layer kernel above) against cuBLASLt
 *               BF16 at the same shape, K = N = 4096 for M = 1 … 65,536 and the model's shapes;
 *               our achieved bandwidth as a fraction of the copy bandwidth; cuBLASLt block-scaled
 *               FP4 where the GPU offers it (else its reason)
 *   model       events/s of 40-pulse events through the CUDA backend against the CPU backend on
 *               this machine, with what bounds it: the host's feature extraction, the
 *               host-to-device copy, or the GPU's own time per batch
 * Without CUDA in the build, or without a device, it says so and exits 77.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/bench/bench.h"

#ifndef OP_BENCH_CUDA
int op_bench_gpu(int argc, char **argv)
{
	(void)argc, (void)argv;
	printf("{\"bench\":\"gpu\",\"skipped\":\"outpost-bench was built without CUDA (no nvcc)\"}\n");
	return 77;
}
#else
#include <cuda_runtime_api.h>

#include "appliance/modelfile.h"
#include "kernels/backend.h"
#include "kernels/cuda/lt.h"
#include "kernels/cuda/ops.h"
#include "kernels/cuda/plugin.h"

static char dev_name[300];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x853c49e6748fea9bull;
static float frand(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef void (*op_fn)(void *ctx);

/* Read before each timed run (outside the timing) when set: 256 MiB, over four times the
 * largest L2 of the devices in question, so every run reads its weights from device memory as
 * it would when a model's layers stream through (an 8 MB FP4 tensor otherwise stays in L2).
 * Read, not written: a memset leaves L2 full of dirty lines whose write-backs (up to 60 MB on an
 * H200, ~15 µs) would be charged to the kernel timed next. */
static void *l2_flush;
static int l2_cold = 1;
#define L2_FLUSH_BYTES (256u << 20)

/* Median of `reps` timed runs (after two warm-ups), microseconds. */
static double time_us(op_fn fn, void *ctx, int reps)
{
	cudaEvent_t a, b;
	cudaEventCreate(&a);
	cudaEventCreate(&b);
	double t[64];
	reps = reps > 64 ? 64 : reps;
	fn(ctx), fn(ctx);
	for (int i = 0; i < reps; i++) {
		float ms = 0;
		if (l2_flush && l2_cold)
			op_cuda_read_through(l2_flush, L2_FLUSH_BYTES, 0);
		cudaEventRecord(a, 0);
		fn(ctx);
		cudaEventRecord(b, 0);
		cudaEventSynchronize(b);
		cudaEventElapsedTime(&ms, a, b);
		t[i] = ms * 1000.0;
	}
	cudaEventDestroy(a);
	cudaEventDestroy(b);
	for (int i = 1; i < reps; i++) /* insertion sort: tiny */
		for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
			double x = t[j];
			t[j] = t[j - 1], t[j - 1] = x;
		}
	return t[reps / 2];
}

typedef struct copy_ctx {
	void *dst;
	const void *src;
	size_t n;
	enum cudaMemcpyKind kind;
} copy_ctx;

static void run_copy(void *p)
{
	copy_ctx *c = p;
	cudaMemcpyAsync(c->dst, c->src, c->n, c->kind, 0);
}

typedef struct gemm_ctx {
	op_dev_linear L;
	const float *X;
	float *Y;
	uint32_t M;
	void *scratch;
	/* cuBLASLt */
	op_lt_plan plan;
	cublasLtHandle_t h;
	const void *A, *B;
	float alpha;
	void *ws;
	void *xbf;	   /* the dequantized path's BF16 activations */
	void *xc, *xsl;	   /* W4A4's: the activations quantized (codes, linear scale codes) */
	float alpha_dq;	   /* its alpha: gw, or gx·gw for W4A4 */
} gemm_ctx;

static void run_ours(void *p)
{
	gemm_ctx *g = p;
	if (g->M <= OP_CUDA_GEMV_MAX_M)
		op_cuda_gemv(&g->L, g->X, g->M, g->Y, g->scratch, 0);
	else
		op_cuda_linear(&g->L, g->X, g->L.k, g->M, g->Y, g->L.n, g->scratch, 0);
}

static void run_simt(void *p)
{
	gemm_ctx *g = p;
	op_cuda_gemv_simt(&g->L, g->X, g->M, g->Y, g->scratch, 0);
}

/* The other FP4-weight path: weights dequantized to BF16 once (at load), then per call the
 * activations converted, cuBLASLt's BF16 product, and the bias epilogue. */
static void run_dq(void *p)
{
	gemm_ctx *g = p;
	if (g->L.mode == OP_W4A4) { /* quantized per block as the reference does, then exactly to BF16 */
		op_cuda_quantize_act(g->X, g->L.k, g->M, g->L.k, g->L.kp, g->L.format,
				     g->L.format == OP_FP4_NVFP4 ? 1.0f / g->L.act_scale : 1.0f, g->L.mx_mode, g->xc,
				     g->xsl, NULL, 0, NULL, NULL, 0);
		op_cuda_dequant_bf16(g->xc, g->xsl, g->M, g->L.kp, g->L.format, g->xbf, 0);
	} else {
		op_cuda_f32_to_bf16(g->X, g->L.k, g->M, g->L.k, g->L.kp, g->xbf, 0);
	}
	op_lt_plan_run(&g->plan, g->h, g->A, g->xbf, g->Y, g->alpha_dq, g->ws, OP_LT_WORKSPACE, 0);
	op_cuda_bias_act(g->Y, g->L.n, g->M, g->L.n, 1.0f, g->L.bias, g->L.relu, 0);
}

/* The largest difference between the two paths' outputs over the first rows, relative to the
 * largest output there: the dequantized path must compute the same function. */
static double paths_differ(gemm_ctx *g)
{
	size_t rows = g->M < 64 ? g->M : 64, n = rows * g->L.n;
	float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
	double worst = -1, big = 0;
	if (a && b) {
		run_ours(g);
		cudaMemcpy(a, g->Y, n * sizeof(float), cudaMemcpyDeviceToHost);
		run_dq(g);
		cudaMemcpy(b, g->Y, n * sizeof(float), cudaMemcpyDeviceToHost);
		worst = 0;
		for (size_t i = 0; i < n; i++) {
			double d = fabs((double)a[i] - b[i]);
			worst = d > worst || d != d ? d : worst;
			big = fabs(a[i]) > big ? fabs(a[i]) : big;
		}
	}
	free(a), free(b);
	return big > 0 ? worst / big : worst;
}

static void run_lt(void *p)
{
	gemm_ctx *g = p;
	op_lt_plan_run(&g->plan, g->h, g->A, g->B, g->Y, g->alpha, g->ws, OP_LT_WORKSPACE, 0);
}

static double d2d_gbps, h2d_gbps;

static void bench_copy(void)
{
	size_t n = 512u << 20;
	void *a = NULL, *b = NULL, *h = NULL;
	cudaMalloc(&a, n), cudaMalloc(&b, n);
	cudaHostAlloc(&h, n / 2, cudaHostAllocDefault);
	copy_ctx c = {b, a, n, cudaMemcpyDeviceToDevice};
	double us = time_us(run_copy, &c, 10);
	d2d_gbps = 2.0 * n / us / 1e3; /* read + write */
	copy_ctx hc = {a, h, n / 2, cudaMemcpyHostToDevice};
	double hus = time_us(run_copy, &hc, 10);
	h2d_gbps = (n / 2) / hus / 1e3;
	printf("{\"bench\":\"gpu\",\"device\":\"%s\",\"figure\":\"copy_bandwidth\",\"d2d_gb_per_s\":%.1f,"
	       "\"h2d_pinned_gb_per_s\":%.1f,\"note\":\"device-to-device counts bytes read plus written\"}\n",
	       dev_name, d2d_gbps, h2d_gbps);
	fflush(stdout);
	cudaFree(a), cudaFree(b), cudaFreeHost(h);
}

static void bench_gemm(int format, int mode, uint32_t M, uint32_t K, uint32_t N, cublasLtHandle_t h, void *ws)
{
	const uint32_t bl = format == OP_FP4_MXFP4 ? 32 : 16, nb = K / bl;
	op_fp4_tensor t;
	if (op_fp4_tensor_alloc(&t, format, N, K) < 0)
		return;
	float *w = malloc((size_t)N * K * sizeof(float)), *x = malloc((size_t)M * K * sizeof(float));
	for (size_t i = 0; i < (size_t)N * K; i++)
		w[i] = frand();
	for (size_t i = 0; i < (size_t)M * K; i++)
		x[i] = frand();
	op_fp4_quantize(&t, w, K, K, OP_MX_SCALE_FLOOR);
	float *wsc = malloc((size_t)N * nb * sizeof(float)), *bias = calloc(N, sizeof(float));
	for (size_t i = 0; i < (size_t)N * nb; i++)
		wsc[i] = op_fp4_scale_value(format, t.scales[i]);
	gemm_ctx g;
	memset(&g, 0, sizeof(g));
	void *codes, *scodes, *dwsc, *dbias, *dX, *dY, *wbf, *xbf;
	cudaMalloc(&codes, (size_t)N * K / 2), cudaMalloc(&scodes, (size_t)N * nb), cudaMalloc(&dwsc, (size_t)N * nb * 4);
	cudaMalloc(&dbias, N * 4), cudaMalloc(&dX, (size_t)M * K * 4), cudaMalloc(&dY, (size_t)M * N * 4);
	cudaMalloc(&wbf, (size_t)N * K * 2), cudaMalloc(&xbf, (size_t)M * K * 2);
	cudaMemcpy(codes, t.codes, (size_t)N * K / 2, cudaMemcpyHostToDevice);
	cudaMemcpy(scodes, t.scales, (size_t)N * nb, cudaMemcpyHostToDevice);
	cudaMemcpy(dwsc, wsc, (size_t)N * nb * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dbias, bias, N * 4, cudaMemcpyHostToDevice);
	cudaMemcpy(dX, x, (size_t)M * K * 4, cudaMemcpyHostToDevice);
	op_cuda_dequant_bf16(codes, scodes, N, K, format, wbf, 0);
	op_cuda_f32_to_bf16(dX, K, M, K, K, xbf, 0);
	g.L = (op_dev_linear){.weights = OP_DEV_W_FP4, .format = format, .mode = mode, .n = N, .k = K, .kp = K,
			      .codes = codes, .wscale = dwsc, .scodes = scodes, .bias = dbias,
			      .tensor_scale = t.tensor_scale, .act_scale = 1.0f / 448.0f};
	g.X = dX, g.Y = dY, g.M = M;
	size_t scr = op_cuda_linear_scratch(&g.L, M);
	cudaMalloc(&g.scratch, scr ? scr : 16);
	double ours = time_us(run_ours, &g, 20);
	/* bytes our kernel must move at least: 4-bit codes, one byte of scale per block, X, Y */
	double bytes = (double)N * K / 2 + (double)N * nb + (double)M * K * 4 + (double)M * N * 4;
	double gbps = bytes / ours / 1e3;

	double simt = g.M <= OP_CUDA_GEMV_MAX_M ? time_us(run_simt, &g, 20) : -1, warm = -1, lt_warm = -1;
	cudaError_t kerr = cudaDeviceSynchronize();

	char why[256] = "";
	double lt = -1, lt4 = -1, dq = -1, dq_diff = -1;
	g.h = h, g.ws = ws, g.A = wbf, g.B = xbf, g.alpha = t.tensor_scale, g.xbf = xbf;
	g.alpha_dq = mode == OP_W4A4 && format == OP_FP4_NVFP4 ? g.L.act_scale * t.tensor_scale : t.tensor_scale;
	if (cudaMalloc(&g.xc, (size_t)M * K / 2 + 16) != cudaSuccess || cudaMalloc(&g.xsl, (size_t)M * nb + 16) != cudaSuccess)
		kerr = cudaErrorMemoryAllocation;
	if (op_lt_plan_init(&g.plan, OP_LT_BF16, M, N, K, why, sizeof(why)) == 0 &&
	    op_lt_plan_choose(&g.plan, h, wbf, xbf, dY, g.alpha, ws, OP_LT_WORKSPACE, 0, why, sizeof(why)) == 0) {
		lt = time_us(run_lt, &g, 20);
		if (g.xc && g.xsl) {
			dq = time_us(run_dq, &g, 20);
			dq_diff = paths_differ(&g);
		}
		if (M <= OP_CUDA_GEMV_MAX_M) { /* and with the weights left in L2 by the run before */
			l2_cold = 0;
			lt_warm = time_us(run_lt, &g, 20);
			warm = time_us(run_ours, &g, 20);
			l2_cold = 1;
		}
	}
	op_lt_plan_free(&g.plan);
	/* the faster of our kernel and the dequantized path is what the backend would run */
	const int use_dq = dq > 0 && dq < ours;
	const double best = use_dq ? dq : ours;
	char why4[256] = "";
	if (mode == OP_W4A4) {
		void *xc = NULL, *xt = NULL, *wt = NULL;
		uint32_t tr = (M + 127) / 128 * 128;
		uint8_t *ht = calloc(op_fp4_scale_tiled_size(N, nb), 1);
		op_fp4_scales_tile(ht, t.scales, N, nb);
		cudaMalloc(&xc, (size_t)M * K / 2), cudaMalloc(&xt, op_fp4_scale_tiled_size(tr, nb));
		cudaMalloc(&wt, op_fp4_scale_tiled_size(N, nb));
		cudaMemcpy(wt, ht, op_fp4_scale_tiled_size(N, nb), cudaMemcpyHostToDevice);
		op_cuda_quantize_act(dX, K, M, K, K, format, 448.0f, OP_MX_SCALE_FLOOR, xc, NULL, xt, tr, NULL, NULL, 0);
		g.A = codes, g.B = xc;
		if (op_lt_plan_init(&g.plan, format == OP_FP4_NVFP4 ? OP_LT_NVFP4 : OP_LT_MXFP4, M, N, K, why4,
				    sizeof(why4)) == 0 &&
		    op_lt_plan_scales(&g.plan, wt, xt, why4, sizeof(why4)) == 0 &&
		    op_lt_plan_choose(&g.plan, h, codes, xc, dY, g.alpha, ws, OP_LT_WORKSPACE, 0, why4, sizeof(why4)) == 0)
			lt4 = time_us(run_lt, &g, 20);
		op_lt_plan_free(&g.plan);
		cudaFree(xc), cudaFree(xt), cudaFree(wt);
		free(ht);
	}
	if (kerr == cudaSuccess) /* any launch the timed paths made that failed */
		kerr = cudaDeviceSynchronize();
	if (kerr == cudaSuccess)
		kerr = cudaGetLastError();
	double target = M <= 16 ? 2.5 : 0.7;
	printf("{\"bench\":\"gpu\",\"device\":\"%s\",\"figure\":\"gemm\",\"format\":\"%s\",\"mode\":\"%s\",\"M\":%u,"
	       "\"K\":%u,\"N\":%u,\"ours_us\":%.2f,\"ours_kernel\":\"%s\",\"ours_gb_per_s\":%.1f,"
	       "\"fraction_of_d2d_copy\":%.2f,\"cublaslt_bf16_us\":%.2f,\"ratio_ours_vs_bf16\":%.2f",
	       dev_name, format == OP_FP4_NVFP4 ? "nvfp4" : "mxfp4", mode == OP_W4A4 ? "w4a4" : "w4a16", M, K, N, ours,
	       M <= OP_CUDA_GEMV_MAX_M ? "gemv (tensor cores)" : "layer", gbps, gbps / d2d_gbps, lt,
	       lt > 0 ? lt / ours : 0.0);
	if (simt > 0)
		printf(",\"gemv_simt_us\":%.2f", simt);
	if (warm > 0 && lt_warm > 0)
		printf(",\"l2_warm\":{\"ours_us\":%.2f,\"cublaslt_bf16_us\":%.2f,\"ratio\":%.2f}", warm, lt_warm,
		       lt_warm / warm);
	if (dq > 0)
		printf(",\"dequantized_bf16_path_us\":%.2f,\"paths_max_rel_diff\":%.2g", dq, dq_diff);
	printf(",\"fp4_weight_gemm_us\":%.2f,\"path\":\"%s\",\"ratio_vs_bf16\":%.2f,\"target\":%.1f", best,
	       use_dq ? "dequantized to BF16 + cuBLASLt" : "ours (4-bit weights in memory)", lt > 0 ? lt / best : 0.0,
	       target);
	printf(",\"l2_flushed\":%s", l2_flush ? "true" : "false");
	if (kerr != cudaSuccess)
		printf(",\"error\":\"%s\"", cudaGetErrorString(kerr));
	if (lt < 0)
		printf(",\"cublaslt_bf16_unavailable\":\"%s\"", why);
	if (mode == OP_W4A4) {
		if (lt4 > 0)
			printf(",\"cublaslt_fp4_us\":%.2f,\"ratio_fp4_vs_bf16\":%.2f", lt4, lt > 0 ? lt / lt4 : 0.0);
		else
			printf(",\"cublaslt_fp4_unavailable\":\"%s\"", why4);
	}
	printf("}\n");
	fflush(stdout);
	cudaFree(codes), cudaFree(scodes), cudaFree(dwsc), cudaFree(dbias), cudaFree(dX), cudaFree(dY);
	cudaFree(wbf), cudaFree(xbf), cudaFree(g.scratch), cudaFree(g.xc), cudaFree(g.xsl);
	free(w), free(x), free(wsc), free(bias);
	op_fp4_tensor_free(&t);
}

/* ---- the model ---------------------------------------------------------------------------- */

static double rate(op_backend *b, const op_reco_event *ev, const op_reco_out *g, op_reco_out *out, size_t n)
{
	op_backend_run(b, ev, g, out, n); /* warm: graphs captured, algorithms chosen */
	int reps = 0;
	double t0 = now(), el;
	do {
		op_backend_run(b, ev, g, out, n);
		reps++;
		el = now() - t0;
	} while (el < 2.0);
	return (double)n * reps / el;
}

static void bench_model(int threads)
{
	enum { NE = 65536, NP = 40 };
	op_model m;
	char err[512];
	if (op_model_load_default(&m, err, sizeof(err)) < 0) {
		fprintf(stderr, "outpost-bench gpu: %s\n", err);
		return;
	}
	op_bench_events E;
	if (op_bench_sim_events(&E, NE, NP) < 0) {
		op_model_free(&m);
		return;
	}
	const op_reco_event *ev = E.ev;
	const op_reco_out *g = E.guess;
	op_reco_out *out = malloc(NE * sizeof(*out));

	op_backend *cpu = NULL, *gpu = NULL;
	char why[512];
	double cpu_eps = 0, gpu_eps = 0;
	if (op_backend_open("cpu", &m, threads, NE, &cpu, why, sizeof(why)) == 0)
		cpu_eps = rate(cpu, ev, g, out, NE);
	if (op_backend_open("cuda", &m, threads, NE, &gpu, why, sizeof(why)) < 0) {
		printf("{\"bench\":\"gpu\",\"device\":\"%s\",\"figure\":\"model\",\"error\":\"%s\"}\n", dev_name, why);
		goto done;
	}
	gpu_eps = rate(gpu, ev, g, out, NE);

	/* what bounds it: host features alone; the copy alone; the GPU's own time per batch */
	const op_cuda_plugin *pl = op_cuda_device_plugin();
	uint32_t piece = 8192, T = piece * NP;
	void *h = pl->open(&m, piece, T, why, sizeof(why));
	double host_eps = 0, dev_eps = 0;
	if (h) {
		op_model_ws *ws[64];
		for (int i = 0; i < threads; i++)
			ws[i] = op_model_ws_new();
		float *feat, *evf;
		uint32_t *off;
		size_t ldev;
		pl->inputs(h, 0, T, piece, &feat, &off, &evf, &ldev);
		double t0 = now();
		int reps = 0;
		do { /* one thread's share, scaled by the threads (they split events evenly) */
			op_model_inputs(&m, ws[0], ev, g, piece / (uint32_t)threads, feat, off, evf, ldev, 0);
			reps++;
		} while (now() - t0 < 1.0);
		host_eps = (double)(piece / (uint32_t)threads) * reps / (now() - t0) * threads;
		op_model_inputs(&m, ws[0], ev, g, piece, feat, off, evf, ldev, 0);
		off[piece] = T;
		const float *raw;
		pl->submit(h, 0, T, piece, why, sizeof(why));
		pl->wait(h, 0, &raw, why, sizeof(why));
		t0 = now(), reps = 0;
		do {
			pl->submit(h, 0, T, piece, why, sizeof(why));
			pl->wait(h, 0, &raw, why, sizeof(why));
			reps++;
		} while (now() - t0 < 1.0);
		dev_eps = (double)piece * reps / (now() - t0);
		for (int i = 0; i < threads; i++)
			op_model_ws_free(ws[i]);
		pl->close(h);
	}
	double bytes_per_event = (double)NP * m.n_pulse_feat * 4 + m.n_event_feat * 4 + 4;
	double copy_eps = h2d_gbps * 1e9 / bytes_per_event;
	const char *bound = host_eps <= copy_eps && host_eps <= dev_eps ? "host feature extraction"
			    : copy_eps <= dev_eps			 ? "host-to-device copy"
									 : "GPU compute (one graph per batch, copies included)";
	printf("{\"bench\":\"gpu\",\"device\":\"%s\",\"figure\":\"model_events_per_s\",\"pulses_per_event\":%d,"
	       "\"threads\":%d,\"gpu_events_per_s\":%.0f,\"cpu_events_per_s\":%.0f,\"ratio\":%.1f,\"target\":2000000,"
	       "\"host_features_events_per_s\":%.0f,\"h2d_copy_events_per_s\":%.0f,\"gpu_only_events_per_s\":%.0f,"
	       "\"bound\":\"%s\",\"backend\":\"%s\"}\n",
	       dev_name, NP, threads, gpu_eps, cpu_eps, cpu_eps > 0 ? gpu_eps / cpu_eps : 0.0, host_eps, copy_eps,
	       dev_eps, bound, op_backend_describe(gpu));
	fflush(stdout);
done:
	op_backend_close(cpu);
	op_backend_close(gpu);
	op_model_free(&m);
	free(out);
	op_bench_events_free(&E);
}

int op_bench_gpu(int argc, char **argv)
{
	int quick = 0;
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
	op_backend_use_plugin(op_cuda_device_plugin());
	op_gpu_info info;
	if (op_cuda_device_plugin()->probe(&info) < 0) {
		printf("{\"bench\":\"gpu\",\"skipped\":\"%s\"}\n", info.why);
		return 77;
	}
	snprintf(dev_name, sizeof(dev_name), "%s", info.name);
	printf("{\"bench\":\"gpu\",\"device\":\"%s\",\"figure\":\"device\",\"compute_capability\":\"%d.%d\",\"sms\":%d,"
	       "\"memory_gib\":%.1f,\"fp4_path\":\"%s\"}\n",
	       dev_name, info.cc_major, info.cc_minor, info.sm_count, info.mem_bytes / 1073741824.0, info.why);
	bench_copy();
	cublasLtHandle_t h;
	void *ws = NULL;
	cublasLtCreate(&h);
	cudaMalloc(&ws, OP_LT_WORKSPACE);
	if (cudaMalloc(&l2_flush, L2_FLUSH_BYTES) != cudaSuccess)
		l2_flush = NULL;
	const uint32_t Ms[] = {1, 2, 4, 8, 16, 64, 256, 1024, 4096, 16384, 65536};
	for (size_t i = 0; i < sizeof(Ms) / sizeof(*Ms); i++) {
		if (quick && Ms[i] > 4096)
			break;
		bench_gemm(OP_FP4_NVFP4, OP_W4A16, Ms[i], 4096, 4096, h, ws);
		bench_gemm(OP_FP4_MXFP4, OP_W4A16, Ms[i], 4096, 4096, h, ws);
		bench_gemm(OP_FP4_NVFP4, OP_W4A4, Ms[i], 4096, 4096, h, ws);
	}
	/* the model's shapes: pulse layers 16→128 (K padded to 32), 128→128; head 264→128 (288) */
	const uint32_t shp[][2] = {{32, 128}, {128, 128}, {288, 128}, {256, 256}};
	const uint32_t mm[] = {4096, 16384, 65536};
	for (size_t s = 0; s < 4; s++)
		for (size_t i = 0; i < 3; i++) {
			bench_gemm(OP_FP4_NVFP4, OP_W4A16, mm[i], shp[s][0], shp[s][1], h, ws);
			bench_gemm(OP_FP4_NVFP4, OP_W4A4, mm[i], shp[s][0], shp[s][1], h, ws);
		}
	cudaFree(ws);
	cudaFree(l2_flush);
	l2_flush = NULL;
	cublasLtDestroy(h);
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);
	bench_model(nproc > 16 ? 16 : nproc < 1 ? 1 : (int)nproc);
	return 0;
}
#endif
