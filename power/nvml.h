/*
 * nvml.h — NVIDIA's management library, loaded at run time with dlopen (libnvidia-ml.so.1 is
 * part of the driver; a machine without one simply has no nvml sensor). Readings for every
 * GPU, and the two GPU actuators: locked clocks and the power management limit, each where
 * the driver permits it (root, and a GPU that supports it: GB10 has no settable power limit).
 *
 * What it sets it restores: op_nvml_restore (called on exit and when the governor stops
 * needing it) resets locked clocks and puts back the limit found at start. A driver reload
 * (NVML_ERROR_UNINITIALIZED / GPU_IS_LOST, or an energy counter going backwards) loses both:
 * the library is initialised again and the last settings are applied again.
 */
#ifndef OP_POWER_NVML_H
#define OP_POWER_NVML_H
#include <stddef.h>
#include <stdint.h>

typedef struct op_nvml op_nvml;

/* -ENODEV with the reason in err when there is no library or no GPU. */
int op_nvml_open(op_nvml **out, char *err, size_t errcap);
/* Readings only: nothing is probed or set (clocks and limit "not settable"), for machines whose
 * GPU settings are not ours to touch (a shared test machine). */
int op_nvml_open_readonly(op_nvml **out, char *err, size_t errcap);
void op_nvml_close(op_nvml *n); /* restores first */
/* The sum of the GPUs' default power limits, watts (0 where NVML does not say). */
double op_nvml_default_limit_w(const op_nvml *n);
const char *op_nvml_describe(const op_nvml *n);
/* Sum over the GPUs: the mean since the last read from energy counters, else power readings. */
int op_nvml_read(op_nvml *n, uint64_t now_ns, double *watts, char *err, size_t errcap);
/* What can be set here (probed at open). */
int op_nvml_can_lock_clocks(const op_nvml *n);
int op_nvml_can_set_limit(const op_nvml *n);
/* Clock as a fraction of the maximum (1 = reset to default), limit as a fraction of the default
 * limit (1 = default). 0, or a negative errno with the reason in err. */
int op_nvml_set(op_nvml *n, double clock_frac, double limit_frac, char *err, size_t errcap);
void op_nvml_restore(op_nvml *n);

#endif
