/*
 * kernels/cuda/plugin.h — the boundary between the appliance and its CUDA code.
 *
 * The CUDA backend is a shared object, liboutpost-cuda.so, that kernels/backend.c loads at run
 * time with dlopen. outpostd itself never links CUDA: on a machine without the NVIDIA driver or
 * without cuBLASLt the load fails, the reason is logged, and the CPU runs the model. The plugin
 * exports one symbol, OP_CUDA_PLUGIN_SYMBOL, returning this table; abi and model_size guard
 * against a plugin from another build.
 *
 * A batch goes through a slot (two of them, so that the host fills one while the GPU works on
 * the other): inputs() hands out the slot's pinned buffers laid out for T rows and n events,
 * the host writes the features there (op_model_inputs), submit() starts one host-to-device copy,
 * the forward pass (a CUDA graph) and one device-to-host copy on the slot's stream, and wait()
 * returns the raw outputs [n][OP_MODEL_OUTPUTS].
 */
#ifndef OP_KERNELS_CUDA_PLUGIN_H
#define OP_KERNELS_CUDA_PLUGIN_H
#include <stddef.h>
#include <stdint.h>

#include "kernels/model.h"

#define OP_CUDA_PLUGIN_ABI 1
#define OP_CUDA_PLUGIN_SYMBOL "op_cuda_plugin_v1"
#define OP_CUDA_PLUGIN_FILE "liboutpost-cuda.so"
#define OP_CUDA_SLOTS 2

/* Which FP4 path a device offers. */
enum op_fp4_path {
	OP_FP4_PATH_NONE = 0,         /* no usable GPU */
	OP_FP4_PATH_BLOCK_SCALED = 1, /* FP4 tensor cores: cuBLASLt block-scaled FP4 (sm_100 and up) */
	OP_FP4_PATH_WEIGHT_ONLY = 2,  /* no FP4 tensor cores: our 4-bit-weight kernels, or exact
					 dequantization to BF16 and cuBLASLt BF16 (sm_80, sm_90) */
};

typedef struct op_gpu_info {
	char name[128];
	int device, cc_major, cc_minor, sm_count;
	size_t mem_bytes;
	int fp4_path; /* op_fp4_path */
	char why[256]; /* why this path; why no GPU */
} op_gpu_info;

typedef struct op_cuda_plugin {
	int abi;
	size_t model_size; /* sizeof(op_model) in the plugin's build */
	/* 0 and info filled when a device is usable; <0 with info->why otherwise. */
	int (*probe)(op_gpu_info *info);
	/* Upload the model, allocate two slots for up to max_events events and max_rows pulse rows. */
	void *(*open)(const op_model *m, uint32_t max_events, uint32_t max_rows, char *why, size_t whylen);
	/* Pinned host buffers of a slot for T rows and n events. 0 or -EINVAL (too large). */
	int (*inputs)(void *h, int slot, uint32_t T, uint32_t n, float **feat, uint32_t **off, float **evf,
		      size_t *ldev);
	/* Start the slot's batch (asynchronous). The first batch of a size class also chooses the
	 * algorithms and captures its graph. 0 or <0 with why. */
	int (*submit)(void *h, int slot, uint32_t T, uint32_t n, char *why, size_t whylen);
	/* Wait for the slot's batch; *raw: its outputs [n][OP_MODEL_OUTPUTS]. 0 or <0 with why. */
	int (*wait)(void *h, int slot, const float **raw, char *why, size_t whylen);
	/* One line: device, FP4 path, per-layer choices so far. */
	void (*describe)(void *h, char *buf, size_t len);
	void (*close)(void *h);
} op_cuda_plugin;

typedef const op_cuda_plugin *(*op_cuda_plugin_fn)(void);

/* Inside the plugin (and in tests that link kernels/cuda/ directly): the table itself. */
const op_cuda_plugin *op_cuda_device_plugin(void);

#endif
