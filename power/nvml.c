/*
 * nvml.c — NVML through dlopen (see nvml.h). The few declarations it needs are written here
 * from NVML's documented C API, so building needs no driver and no toolkit headers.
 */
#include "power/nvml.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvml_ret;
typedef struct nvml_dev *nvml_dev;
enum { NVML_OK = 0, NVML_ERR_UNINIT = 1, NVML_ERR_NOT_SUPPORTED = 3, NVML_ERR_NO_PERMISSION = 4,
       NVML_ERR_GPU_LOST = 15 };
enum { NVML_CLOCK_GRAPHICS = 0 };

#define MAX_GPUS 16

struct op_nvml {
	void *lib;
	nvml_ret (*init)(void);
	nvml_ret (*shutdown)(void);
	nvml_ret (*count)(unsigned *);
	nvml_ret (*handle)(unsigned, nvml_dev *);
	nvml_ret (*energy)(nvml_dev, unsigned long long *);
	nvml_ret (*power)(nvml_dev, unsigned *);
	nvml_ret (*default_limit)(nvml_dev, unsigned *);
	nvml_ret (*limit)(nvml_dev, unsigned *);
	nvml_ret (*limit_range)(nvml_dev, unsigned *, unsigned *);
	nvml_ret (*set_limit)(nvml_dev, unsigned);
	nvml_ret (*max_clock)(nvml_dev, int, unsigned *);
	nvml_ret (*lock_clocks)(nvml_dev, unsigned, unsigned);
	nvml_ret (*reset_clocks)(nvml_dev);
	const char *(*strerr)(nvml_ret);
	unsigned ngpu;
	struct gpu {
		nvml_dev h;
		int has_energy;
		unsigned long long last_mj;
		int have_last;
		unsigned limit_at_start, default_limit, limit_min, limit_max, max_clock;
	} gpu[MAX_GPUS];
	uint64_t last_ns;
	int can_clocks, can_limit;
	double clock_frac, limit_frac; /* as last set: re-applied after a driver reload */
	char desc[192];
};

static const char *nerr(const op_nvml *n, nvml_ret r)
{
	return n->strerr ? n->strerr(r) : "NVML error";
}

#define SYM(field, name)                                                                 \
	do {                                                                             \
		*(void **)&n->field = dlsym(n->lib, name);                               \
		if (!n->field) {                                                         \
			snprintf(err, cap, "libnvidia-ml.so.1 has no %s", name);          \
			return -ENODEV;                                                  \
		}                                                                        \
	} while (0)

static int load(op_nvml *n, char *err, size_t cap)
{
	n->lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!n->lib) {
		snprintf(err, cap, "no NVML (libnvidia-ml.so.1 not loadable: no NVIDIA driver here)");
		return -ENODEV;
	}
	SYM(init, "nvmlInit_v2");
	SYM(shutdown, "nvmlShutdown");
	SYM(count, "nvmlDeviceGetCount_v2");
	SYM(handle, "nvmlDeviceGetHandleByIndex_v2");
	SYM(energy, "nvmlDeviceGetTotalEnergyConsumption");
	SYM(power, "nvmlDeviceGetPowerUsage");
	SYM(default_limit, "nvmlDeviceGetPowerManagementDefaultLimit");
	SYM(limit, "nvmlDeviceGetPowerManagementLimit");
	SYM(limit_range, "nvmlDeviceGetPowerManagementLimitConstraints");
	SYM(set_limit, "nvmlDeviceSetPowerManagementLimit");
	SYM(max_clock, "nvmlDeviceGetMaxClockInfo");
	SYM(lock_clocks, "nvmlDeviceSetGpuLockedClocks");
	SYM(reset_clocks, "nvmlDeviceResetGpuLockedClocks");
	SYM(strerr, "nvmlErrorString");
	return 0;
}

/* (Re)initialise and take the GPUs' handles and facts. */
static int attach(op_nvml *n, char *err, size_t cap)
{
	nvml_ret r = n->init();
	if (r != NVML_OK) {
		snprintf(err, cap, "nvmlInit: %s", nerr(n, r));
		return -ENODEV;
	}
	unsigned cnt = 0;
	if ((r = n->count(&cnt)) != NVML_OK || cnt == 0) {
		snprintf(err, cap, "NVML sees no GPU%s%s", r ? ": " : "", r ? nerr(n, r) : "");
		return -ENODEV;
	}
	n->ngpu = cnt > MAX_GPUS ? MAX_GPUS : cnt;
	for (unsigned i = 0; i < n->ngpu; i++) {
		struct gpu *g = &n->gpu[i];
		if ((r = n->handle(i, &g->h)) != NVML_OK) {
			snprintf(err, cap, "NVML GPU %u: %s", i, nerr(n, r));
			return -ENODEV;
		}
		g->has_energy = n->energy(g->h, &g->last_mj) == NVML_OK;
		g->have_last = g->has_energy;
		if (n->default_limit(g->h, &g->default_limit) != NVML_OK)
			g->default_limit = 0;
		if (n->limit_range(g->h, &g->limit_min, &g->limit_max) != NVML_OK)
			g->limit_min = g->limit_max = 0;
		if (n->max_clock(g->h, NVML_CLOCK_GRAPHICS, &g->max_clock) != NVML_OK)
			g->max_clock = 0;
	}
	return 0;
}

static int nvml_open(op_nvml **out, int probe, char *err, size_t cap)
{
	op_nvml *n = calloc(1, sizeof(*n));
	int e;

	*out = NULL;
	if (!n)
		return -ENOMEM;
	if ((e = load(n, err, cap)) < 0 || (e = attach(n, err, cap)) < 0) {
		if (n->lib) {
			if (n->shutdown && e != -ENODEV)
				n->shutdown();
			dlclose(n->lib);
		}
		free(n);
		return e;
	}
	/* What may be set: a harmless probe each (reset clocks to default; the limit to itself). */
	struct gpu *g0 = &n->gpu[0];
	n->can_clocks = probe && g0->max_clock && n->reset_clocks(g0->h) == NVML_OK;
	unsigned cur;
	if (probe && n->limit(g0->h, &cur) == NVML_OK) {
		for (unsigned i = 0; i < n->ngpu; i++)
			if (n->limit(n->gpu[i].h, &n->gpu[i].limit_at_start) != NVML_OK)
				n->gpu[i].limit_at_start = n->gpu[i].default_limit;
		n->can_limit = g0->default_limit && g0->limit_min && n->set_limit(g0->h, cur) == NVML_OK;
	}
	n->clock_frac = n->limit_frac = 1.0;
	if (probe)
		snprintf(n->desc, sizeof(n->desc), "%u GPU%s (%s), clocks %s, power limit %s", n->ngpu,
			 n->ngpu == 1 ? "" : "s", g0->has_energy ? "energy counter" : "power reading",
			 n->can_clocks ? "settable" : "not settable", n->can_limit ? "settable" : "not settable");
	else
		snprintf(n->desc, sizeof(n->desc), "%u GPU%s (%s), read only: clocks and power limit left alone",
			 n->ngpu, n->ngpu == 1 ? "" : "s", g0->has_energy ? "energy counter" : "power reading");
	*out = n;
	return 0;
}

int op_nvml_open(op_nvml **out, char *err, size_t cap)
{
	return nvml_open(out, 1, err, cap);
}

int op_nvml_open_readonly(op_nvml **out, char *err, size_t cap)
{
	return nvml_open(out, 0, err, cap);
}

double op_nvml_default_limit_w(const op_nvml *n)
{
	double w = 0;
	for (unsigned i = 0; i < n->ngpu; i++)
		w += n->gpu[i].default_limit / 1000.0;
	return w;
}

const char *op_nvml_describe(const op_nvml *n)
{
	return n->desc;
}

int op_nvml_can_lock_clocks(const op_nvml *n)
{
	return n && n->can_clocks;
}

int op_nvml_can_set_limit(const op_nvml *n)
{
	return n && n->can_limit;
}

static int lost(nvml_ret r)
{
	return r == NVML_ERR_UNINIT || r == NVML_ERR_GPU_LOST;
}

static int apply(op_nvml *n, char *err, size_t cap)
{
	for (unsigned i = 0; i < n->ngpu; i++) {
		struct gpu *g = &n->gpu[i];
		nvml_ret r = NVML_OK;
		if (n->can_clocks) {
			if (n->clock_frac >= 0.999)
				r = n->reset_clocks(g->h);
			else {
				unsigned mhz = (unsigned)lround(n->clock_frac * g->max_clock);
				r = n->lock_clocks(g->h, mhz, mhz);
			}
			if (r != NVML_OK) {
				snprintf(err, cap, "GPU %u locked clocks: %s", i, nerr(n, r));
				return lost(r) ? -ENXIO : -EIO;
			}
		}
		if (n->can_limit) {
			unsigned mw = n->limit_frac >= 0.999 ? g->limit_at_start
							     : (unsigned)lround(n->limit_frac * g->default_limit);
			if (mw < g->limit_min)
				mw = g->limit_min;
			if (g->limit_max && mw > g->limit_max)
				mw = g->limit_max;
			if ((r = n->set_limit(g->h, mw)) != NVML_OK) {
				snprintf(err, cap, "GPU %u power limit %u mW: %s", i, mw, nerr(n, r));
				return lost(r) ? -ENXIO : -EIO;
			}
		}
	}
	return 0;
}

/* After a driver reload: initialise again and put the settings back. */
static int reattach(op_nvml *n, char *err, size_t cap)
{
	n->shutdown();
	int e = attach(n, err, cap);
	if (e == 0)
		e = apply(n, err, cap);
	return e;
}

int op_nvml_set(op_nvml *n, double clock_frac, double limit_frac, char *err, size_t cap)
{
	if (fabs(clock_frac - n->clock_frac) < 1e-3 && fabs(limit_frac - n->limit_frac) < 1e-3)
		return 0;
	n->clock_frac = clock_frac;
	n->limit_frac = limit_frac;
	int e = apply(n, err, cap);
	if (e == -ENXIO)
		e = reattach(n, err, cap);
	return e;
}

void op_nvml_restore(op_nvml *n)
{
	char err[128];
	if (!n || (!n->can_clocks && !n->can_limit))
		return;
	n->clock_frac = n->limit_frac = 1.0;
	apply(n, err, sizeof(err));
}

int op_nvml_read(op_nvml *n, uint64_t now_ns, double *watts, char *err, size_t cap)
{
	double sum = 0, dt = n->last_ns ? (double)(now_ns - n->last_ns) / 1e9 : 0;
	int again = 0;

	for (unsigned i = 0; i < n->ngpu; i++) {
		struct gpu *g = &n->gpu[i];
		nvml_ret r;
		if (g->has_energy) {
			unsigned long long mj;
			if ((r = n->energy(g->h, &mj)) != NVML_OK)
				goto fail;
			if (!g->have_last || mj < g->last_mj || dt <= 0)
				again = 1; /* first read, or the counter restarted (driver reload) */
			else
				sum += (double)(mj - g->last_mj) / 1e3 / dt;
			g->last_mj = mj;
			g->have_last = 1;
		} else {
			unsigned mw;
			if ((r = n->power(g->h, &mw)) != NVML_OK)
				goto fail;
			sum += mw / 1e3;
		}
		continue;
	fail:
		snprintf(err, cap, "nvml GPU %u: %s", i, nerr(n, r));
		if (lost(r) && reattach(n, err, cap) == 0)
			snprintf(err, cap, "nvml GPU %u: driver reloaded; settings applied again", i);
		n->last_ns = now_ns;
		return -EIO;
	}
	n->last_ns = now_ns;
	if (again) {
		snprintf(err, cap, "nvml: energy counter baseline (re)taken");
		return -EAGAIN;
	}
	*watts = sum;
	return 0;
}

void op_nvml_close(op_nvml *n)
{
	if (!n)
		return;
	op_nvml_restore(n);
	n->shutdown();
	dlclose(n->lib);
	free(n);
}
