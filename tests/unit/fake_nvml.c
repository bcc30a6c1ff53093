/*
 * fake_nvml.c — a stand-in for the driver's libnvidia-ml.so.1, built only for the tests, so the
 * NVML code path (dlopen, every symbol, energy differences, setting and restoring clocks and
 * limits, recovering from a driver reload) runs on machines without an NVIDIA GPU. It is not a
 * substitute for the real check on a GPU (docs/power.md "Pending").
 *
 * Two GPUs, each drawing 100 W by its energy counter (from CLOCK_MONOTONIC), default and
 * at-start limit 300 W (range 100–350 W), max clock 1980 MHz. FAKE_NVML_NOPERM=1 in the
 * environment makes every setter answer NO_PERMISSION, as for a non-root user.
 * fake_nvml_state() exposes what was set; fake_nvml_reload() acts as a driver reload (settings
 * lost, counters restart, the next call answers UNINITIALIZED until nvmlInit runs again).
 */
#include <stdlib.h>
#include <time.h>

#define NG 2
struct fake_gpu {
	int id;
	unsigned locked_mhz; /* 0: not locked */
	unsigned limit_mw;
};
static struct fake_gpu gpus[NG] = {{0, 0, 300000}, {1, 0, 300000}};
static int initialised, lost, set_calls;
static double epoch;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int noperm(void)
{
	const char *e = getenv("FAKE_NVML_NOPERM");
	return e && e[0] == '1';
}

#define CHECK_UP                                                   \
	do {                                                       \
		if (!initialised || lost)                          \
			return 1; /* NVML_ERROR_UNINITIALIZED */  \
	} while (0)

int nvmlInit_v2(void)
{
	initialised = 1;
	lost = 0;
	if (epoch == 0)
		epoch = mono();
	return 0;
}
int nvmlShutdown(void)
{
	initialised = 0;
	return 0;
}
int nvmlDeviceGetCount_v2(unsigned *n)
{
	CHECK_UP;
	*n = NG;
	return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned i, void **h)
{
	CHECK_UP;
	if (i >= NG)
		return 2;
	*h = &gpus[i];
	return 0;
}
int nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj)
{
	(void)h;
	CHECK_UP;
	*mj = (unsigned long long)((mono() - epoch) * 100.0 * 1000.0); /* 100 W */
	return 0;
}
int nvmlDeviceGetPowerUsage(void *h, unsigned *mw)
{
	(void)h;
	CHECK_UP;
	*mw = 100000;
	return 0;
}
int nvmlDeviceGetPowerManagementDefaultLimit(void *h, unsigned *mw)
{
	(void)h;
	CHECK_UP;
	*mw = 300000;
	return 0;
}
int nvmlDeviceGetPowerManagementLimit(void *h, unsigned *mw)
{
	CHECK_UP;
	*mw = ((struct fake_gpu *)h)->limit_mw;
	return 0;
}
int nvmlDeviceGetPowerManagementLimitConstraints(void *h, unsigned *lo, unsigned *hi)
{
	(void)h;
	CHECK_UP;
	*lo = 100000;
	*hi = 350000;
	return 0;
}
int nvmlDeviceSetPowerManagementLimit(void *h, unsigned mw)
{
	CHECK_UP;
	set_calls++;
	if (noperm())
		return 4;
	if (mw < 100000 || mw > 350000)
		return 2;
	((struct fake_gpu *)h)->limit_mw = mw;
	return 0;
}
int nvmlDeviceGetMaxClockInfo(void *h, int type, unsigned *mhz)
{
	(void)h;
	(void)type;
	CHECK_UP;
	*mhz = 1980;
	return 0;
}
int nvmlDeviceSetGpuLockedClocks(void *h, unsigned lo, unsigned hi)
{
	CHECK_UP;
	set_calls++;
	if (noperm())
		return 4;
	if (lo != hi || lo > 1980)
		return 2;
	((struct fake_gpu *)h)->locked_mhz = lo;
	return 0;
}
int nvmlDeviceResetGpuLockedClocks(void *h)
{
	CHECK_UP;
	set_calls++;
	if (noperm())
		return 4;
	((struct fake_gpu *)h)->locked_mhz = 0;
	return 0;
}
const char *nvmlErrorString(int r)
{
	return r == 1 ? "Uninitialized" : r == 4 ? "Insufficient Permissions" : r == 2 ? "Invalid Argument" : "Unknown Error";
}

/* for the test */
void fake_nvml_state(int gpu, unsigned *locked_mhz, unsigned *limit_mw)
{
	*locked_mhz = gpus[gpu].locked_mhz;
	*limit_mw = gpus[gpu].limit_mw;
}
/* calls that set (or reset) anything on a GPU, permitted or not */
int fake_nvml_set_calls(void)
{
	return set_calls;
}
void fake_nvml_reload(void)
{
	lost = 1;
	epoch = mono(); /* the counter restarts */
	for (int i = 0; i < NG; i++) {
		gpus[i].locked_mhz = 0;
		gpus[i].limit_mw = 300000;
	}
}
