/*
 * emu_runtime.cpp — the CPU emulation's launcher and the runtime calls the op tests and the
 * device model make (cuda_emu.h). "Device" memory is host memory; streams run everything at
 * once, in order; a stream capture records the launches and copies, and a graph launch replays
 * them. cuBLASLt is not emulated: its handle opens, and every plan says "not emulated", so the
 * device model keeps our kernels (its own fallback path).
 */
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <stdio.h>

#include <vector>

#include "kernels/cuda/lt.h"

#include "tests/gpu/emu/cuda_emu.h"

thread_local uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

/*
 * A block's threads are fibers (ucontext) on the calling thread, switched round-robin at every
 * barrier: no kernel threads, no futexes, the same interleavings a barrier allows. Each fiber
 * walks all blocks in order; a barrier after each block keeps the next block off the
 * __shared__ statics until every thread is done with them.
 */
#include <ucontext.h>

enum { FIBER_STACK = 128 * 1024 };
static ucontext_t main_ctx;
static std::vector<ucontext_t> fib;
static std::vector<char *> stacks;
static std::vector<uint3> tidx, bidx;
static std::vector<int> finished;
static unsigned nfib, cur, n_finished, arrived;
static unsigned long generation;
static const std::function<void()> *cur_body;
static dim3 cur_grid;
static float slots[1024];

static void switch_to(unsigned t)
{
	unsigned from = cur;
	cur = t;
	threadIdx = tidx[t], blockIdx = bidx[t];
	swapcontext(&fib[from], &fib[t]);
	threadIdx = tidx[from], blockIdx = bidx[from]; /* back in `from` */
	cur = from;
}

static void yield(void)
{
	if (n_finished == nfib) {
		swapcontext(&fib[cur], &main_ctx);
		return;
	}
	unsigned t = cur;
	do
		t = (t + 1) % nfib;
	while (finished[t]);
	if (t != cur)
		switch_to(t);
}

void emu_syncthreads(void)
{
	if (++arrived == nfib) {
		arrived = 0;
		generation++;
		return;
	}
	unsigned long g = generation;
	while (generation == g)
		yield();
}

float emu_shfl_xor(float v, int lane_mask)
{
	unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
	slots[t] = v;
	emu_syncthreads();
	float r = slots[t ^ (unsigned)lane_mask];
	emu_syncthreads();
	return r;
}

/*
 * The warp's fragments meet in block-wide slots, as shuffles do. PTX's layout for
 * m16n8k16 with 16-bit inputs: lane = 4·group + t; A's registers 0-3 hold rows group, group + 8,
 * group, group + 8 at columns 2t, 2t + 1 (registers 2 and 3: + 8), low half first; B's registers
 * 0-1 hold rows 2t, 2t + 1 (register 1: + 8) of column group; D's elements 0-3 are (group, 2t),
 * (group, 2t + 1), (group + 8, 2t), (group + 8, 2t + 1). Sums in k order from d, in FP32.
 */
static uint32_t mma_a[1024][4], mma_b[1024][2];

static float bf16_at(uint32_t reg, int half)
{
	uint32_t u = (reg >> (16 * half)) << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

void emu_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2])
{
	unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
	memcpy(mma_a[t], a, sizeof(mma_a[t]));
	memcpy(mma_b[t], b, sizeof(mma_b[t]));
	emu_syncthreads();
	unsigned base = t & ~31u, lane = t & 31u, g = lane / 4, tq = lane % 4;
	float out[4];
	for (int c = 0; c < 4; c++) {
		unsigned row = g + (c >= 2 ? 8 : 0), col = 2 * tq + (c & 1);
		float s = d[c];
		for (unsigned k = 0; k < 16; k++) {
			float av = bf16_at(mma_a[base + (row % 8) * 4 + (k % 8) / 2][(row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)],
					   (int)(k & 1));
			float bv = bf16_at(mma_b[base + col * 4 + (k % 8) / 2][k >= 8 ? 1 : 0], (int)(k & 1));
			s += av * bv;
		}
		out[c] = s;
	}
	emu_syncthreads();
	memcpy(d, out, sizeof(out));
}

static void fiber_main(int t)
{
	for (unsigned bz = 0; bz < cur_grid.z; bz++)
		for (unsigned by = 0; by < cur_grid.y; by++)
			for (unsigned bx = 0; bx < cur_grid.x; bx++) {
				bidx[t] = blockIdx = uint3{bx, by, bz};
				(*cur_body)();
				emu_syncthreads();
			}
	finished[t] = 1;
	n_finished++;
	if (n_finished == nfib)
		setcontext(&main_ctx);
	yield(); /* never comes back: finished fibers are skipped */
	abort();
}

static int capturing;
static std::vector<std::function<void()>> *recording;

static void run_now(dim3 grid, dim3 block, const std::function<void()> &body);

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body)
{
	if (capturing) {
		recording->push_back([grid, block, body]() { run_now(grid, block, body); });
		return;
	}
	run_now(grid, block, body);
}

static void run_now(dim3 grid, dim3 block, const std::function<void()> &body)
{
	unsigned nt = block.x * block.y * block.z;
	if (!nt || nt > 1024 || !grid.x || !grid.y || !grid.z)
		abort(); /* a launch the hardware would refuse */
	gridDim = grid, blockDim = block, cur_grid = grid, cur_body = &body;
	nfib = nt, n_finished = 0, arrived = 0;
	fib.assign(nt, ucontext_t());
	tidx.assign(nt, uint3{0, 0, 0});
	bidx.assign(nt, uint3{0, 0, 0});
	finished.assign(nt, 0);
	while (stacks.size() < nt)
		stacks.push_back((char *)malloc(FIBER_STACK));
	for (unsigned t = 0; t < nt; t++) {
		tidx[t] = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
		getcontext(&fib[t]);
		fib[t].uc_stack.ss_sp = stacks[t];
		fib[t].uc_stack.ss_size = FIBER_STACK;
		fib[t].uc_link = &main_ctx;
		makecontext(&fib[t], (void (*)(void))fiber_main, 1, (int)t);
	}
	cur = 0;
	threadIdx = tidx[0], blockIdx = bidx[0];
	swapcontext(&main_ctx, &fib[0]);
}

extern "C" {
cudaError_t cudaGetDeviceCount(int *n)
{
	*n = 1;
	return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int)
{
	memset(p, 0, sizeof(*p));
	strcpy(p->name, "CPU emulation of compute capability 9.0");
	p->major = 9, p->minor = 0, p->multiProcessorCount = 1;
	p->totalGlobalMem = (size_t)1 << 30;
	return cudaSuccess;
}
cudaError_t(cudaGetLastError)(void)
{
	return cudaSuccess;
}
cudaError_t cudaSetDevice(int)
{
	return cudaSuccess;
}
const char *cudaGetErrorString(cudaError_t e)
{
	return e == cudaErrorLaunchFailure ? "unspecified launch failure (emulated)" : "emulated";
}
cudaError_t cudaMalloc(void **p, size_t n)
{
	*p = aligned_alloc(256, (n + 255) / 256 * 256);
	return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void *p)
{
	free(p);
	return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int v, size_t n)
{
	memset(p, v, n);
	return cudaSuccess;
}
cudaError_t cudaMemcpy(void *d, const void *s, size_t n, enum cudaMemcpyKind)
{
	memcpy(d, s, n);
	return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void)
{
	return cudaSuccess;
}
cudaError_t cudaHostAlloc(void **p, size_t n, unsigned int)
{
	return cudaMalloc(p, n);
}
cudaError_t cudaFreeHost(void *p)
{
	free(p);
	return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, enum cudaMemcpyKind, cudaStream_t)
{
	if (capturing)
		recording->push_back([d, s, n]() { memcpy(d, s, n); });
	else
		memcpy(d, s, n);
	return cudaSuccess;
}
cudaError_t cudaMemcpy2DAsync(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, enum cudaMemcpyKind,
			      cudaStream_t)
{
	auto f = [d, dp, s, sp, w, h]() {
		for (size_t r = 0; r < h; r++)
			memcpy((char *)d + r * dp, (const char *)s + r * sp, w);
	};
	if (capturing)
		recording->push_back(f);
	else
		f();
	return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int)
{
	*s = (cudaStream_t) new int(0);
	return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s)
{
	delete (int *)s;
	return cudaSuccess;
}
/* emu_fail_syncs_after(n): the n+1-th stream synchronisation on reports a failed launch, as a GPU
 * that has fallen off the bus would (the backend's fallback is tested with it); −1: never */
static long syncs_left = -1;
void emu_fail_syncs_after(long n)
{
	syncs_left = n;
}
cudaError_t cudaStreamSynchronize(cudaStream_t)
{
	if (syncs_left == 0)
		return cudaErrorLaunchFailure;
	if (syncs_left > 0)
		syncs_left--;
	return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t, enum cudaStreamCaptureMode)
{
	if (capturing)
		return cudaErrorIllegalState;
	capturing = 1;
	recording = new std::vector<std::function<void()>>();
	return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t *g)
{
	capturing = 0;
	*g = (cudaGraph_t)recording;
	recording = NULL;
	return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *e, cudaGraph_t g, unsigned long long)
{
	*e = (cudaGraphExec_t) new std::vector<std::function<void()>>(*(std::vector<std::function<void()>> *)g);
	return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t)
{
	for (auto &f : *(std::vector<std::function<void()>> *)e)
		f();
	return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g)
{
	delete (std::vector<std::function<void()>> *)g;
	return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e)
{
	delete (std::vector<std::function<void()>> *)e;
	return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e)
{
	*e = (cudaEvent_t) new int(0);
	return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e)
{
	delete (int *)e;
	return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t, cudaStream_t)
{
	return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t)
{
	return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t, cudaEvent_t)
{
	*ms = 1.0f;
	return cudaSuccess;
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h)
{
	*h = (cublasLtHandle_t) new int(0);
	return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h)
{
	delete (int *)h;
	return CUBLAS_STATUS_SUCCESS;
}

const char *op_lt_kind_name(int)
{
	return "emulated";
}
int op_lt_plan_init(op_lt_plan *p, int, uint32_t, uint32_t, uint32_t, char *why, size_t whylen)
{
	memset(p, 0, sizeof(*p));
	snprintf(why, whylen, "cuBLASLt is not emulated");
	return -ENOTSUP;
}
int op_lt_plan_scales(op_lt_plan *, const void *, const void *, char *why, size_t whylen)
{
	snprintf(why, whylen, "cuBLASLt is not emulated");
	return -ENOTSUP;
}
void op_lt_plan_free(op_lt_plan *p)
{
	memset(p, 0, sizeof(*p));
}
int op_lt_plan_choose(op_lt_plan *, cublasLtHandle_t, const void *, const void *, float *, float, void *, size_t,
		      cudaStream_t, char *why, size_t whylen)
{
	snprintf(why, whylen, "cuBLASLt is not emulated");
	return -ENOTSUP;
}
int op_lt_plan_run(const op_lt_plan *, cublasLtHandle_t, const void *, const void *, float *, float, void *, size_t,
		   cudaStream_t)
{
	return -EIO;
}
}
