/*
 * pool.h — a small persistent worker pool for the kernels' row and event splits. Starting a
 * thread costs ~27 µs here, a noticeable share of a 0.4 ms GEMV; the pool's workers wait between
 * calls instead — a short bounded watch (pool.c), then a condition variable. Workers are started
 * on first need and live for the process. One split at a time uses the pool; a concurrent caller
 * falls back to starting its own threads, so nothing ever waits on an unrelated caller.
 */
#ifndef OP_KERNELS_POOL_H
#define OP_KERNELS_POOL_H
#include <stddef.h>

/* Run fn(args + i·stride) for i in [0, n): item 0 on the calling thread, the others on pool
 * workers (or, when none can be had, on the caller). Returns when all have finished. */
void op_parallel(int n, void *(*fn)(void *), void *args, size_t stride);

#endif
