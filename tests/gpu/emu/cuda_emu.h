/*
 * cuda_emu.h — just enough of CUDA's execution model to run kernels/cuda/ops.cu on the CPU.
 *
 * Used by test_gpu_emu only: tests/gpu/emu/emulate.py rewrites every kernel launch
 * `k<<<grid, block, smem, stream>>>(args)` into emu_launch(grid, block, …), and this header maps
 * the rest: blocks run one after another, each block's threads interleave at barriers, __shared__
 * arrays are function statics (one block at a time owns them), __syncthreads() is a barrier
 * and a warp shuffle goes through a block-wide exchange slot (threads are fibers switched at
 * barriers: tests/gpu/emu/emu_runtime.cpp). What it checks: the kernels'
 * indexing, tiling, padding, reductions and arithmetic order, on machines without a GPU. What
 * it cannot: timing, memory coalescing, a missing barrier (fibers switch only at barriers, so
 * races do not show), real concurrency between blocks, anything about the
 * driver, cuBLASLt or graphs — those are test_gpu_ops' on a GPU.
 */
#ifndef OP_TESTS_CUDA_EMU_H
#define OP_TESTS_CUDA_EMU_H
#include <cuda_runtime_api.h>
#include <functional>
#include <stdint.h>
#include <math.h>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(x)

extern thread_local uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body);
void emu_syncthreads(void);
float emu_shfl_xor(float v, int lane_mask);
/* mma.sync.m16n8k16 (BF16 in, FP32 accumulate) for one warp, PTX's fragment layout */
void emu_mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2]);
extern "C" void emu_fail_syncs_after(long n);

#define __syncthreads() emu_syncthreads()
#define __shfl_xor_sync(mask, v, o) emu_shfl_xor((v), (o))
#define cudaGetLastError() cudaSuccess

#endif
