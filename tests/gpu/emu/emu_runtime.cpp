/*
 * emu_runtime.cpp — the CPU emulation's launcher and the few runtime calls the op tests make
 * (cuda_emu.h). "Device" memory is host memory.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <thread>
#include <vector>

#include "tests/gpu/emu/cuda_emu.h"

thread_local uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

static pthread_barrier_t barrier;
static float slots[1024];

void emu_syncthreads(void)
{
	pthread_barrier_wait(&barrier);
}

float emu_shfl_xor(float v, int lane_mask)
{
	unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
	slots[t] = v;
	pthread_barrier_wait(&barrier);
	float r = slots[t ^ (unsigned)lane_mask];
	pthread_barrier_wait(&barrier);
	return r;
}

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body)
{
	unsigned nt = block.x * block.y * block.z;
	if (!nt || nt > 1024 || !grid.x || !grid.y || !grid.z)
		abort(); /* a launch the hardware would refuse */
	gridDim = grid, blockDim = block;
	pthread_barrier_init(&barrier, NULL, nt);
	/* one thread per block thread, walking the blocks in order; the barrier after each block
	 * keeps the next from touching the __shared__ statics too early */
	std::vector<std::thread> th;
	th.reserve(nt);
	for (unsigned t = 0; t < nt; t++)
		th.emplace_back([&, t]() {
			threadIdx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
			for (unsigned bz = 0; bz < grid.z; bz++)
				for (unsigned by = 0; by < grid.y; by++)
					for (unsigned bx = 0; bx < grid.x; bx++) {
						blockIdx = uint3{bx, by, bz};
						body();
						pthread_barrier_wait(&barrier);
					}
		});
	for (auto &x : th)
		x.join();
	pthread_barrier_destroy(&barrier);
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
	strcpy(p->name, "CPU emulation");
	return cudaSuccess;
}
const char *cudaGetErrorString(cudaError_t)
{
	return "emulated";
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
}
