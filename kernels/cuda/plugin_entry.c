/*
 * kernels/cuda/plugin_entry.c — the one symbol liboutpost-cuda.so exports (plugin.h).
 */
#include "kernels/cuda/plugin.h"

__attribute__((visibility("default"))) const op_cuda_plugin *op_cuda_plugin_v1(void)
{
	return op_cuda_device_plugin();
}
