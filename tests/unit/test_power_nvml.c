/*
 * test_power_nvml.c — the NVML sensor and GPU actuators through dlopen, against the test
 * stand-in for libnvidia-ml.so.1 (fake_nvml.c; LD_LIBRARY_PATH points at it). A site would
 * notice: GPU power read wrong, clocks left locked after outpostd stops, settings silently lost
 * after a driver reload, a non-root appliance believing it can set what it cannot.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "power/nvml.h"

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int main(void)
{
	char err[256];
	op_nvml *n;
	double w;
	void *lib;

	if (op_nvml_open(&n, err, sizeof(err)) < 0) {
		fprintf(stderr, "no NVML stand-in on LD_LIBRARY_PATH: %s\n", err);
		return 1;
	}
	lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_NOLOAD);
	void (*state)(int, unsigned *, unsigned *) = lib ? (void (*)(int, unsigned *, unsigned *))dlsym(lib, "fake_nvml_state") : NULL;
	void (*reload)(void) = lib ? (void (*)(void))dlsym(lib, "fake_nvml_reload") : NULL;
	if (!state || !reload) {
		fprintf(stderr, "the loaded libnvidia-ml.so.1 is not the test stand-in: skipped\n");
		op_nvml_close(n);
		return 77;
	}
	printf("%s\n", op_nvml_describe(n));
	CHECK(strstr(op_nvml_describe(n), "2 GPUs (energy counter), clocks settable, power limit settable") != NULL);
	CHECK(op_nvml_can_lock_clocks(n) && op_nvml_can_set_limit(n));

	/* two GPUs at 100 W each, by energy difference */
	int e = op_nvml_read(n, mono(), &w, err, sizeof(err));
	CHECK(e == -EAGAIN); /* the first read takes the baseline */
	nap_ms(300);
	CHECK(op_nvml_read(n, mono(), &w, err, sizeof(err)) == 0);
	printf("read: %.1f W\n", w);
	CHECK(w > 190 && w < 210);

	unsigned mhz, mw;
	CHECK(op_nvml_set(n, 0.5, 0.6, err, sizeof(err)) == 0);
	for (int g = 0; g < 2; g++) {
		state(g, &mhz, &mw);
		CHECK(mhz == 990 && mw == 180000);
	}
	/* below the driver's minimum limit: clamped to it, not refused */
	CHECK(op_nvml_set(n, 0.5, 0.2, err, sizeof(err)) == 0);
	state(0, &mhz, &mw);
	CHECK(mw == 100000);

	/* a driver reload loses both settings and restarts the counter */
	reload();
	e = op_nvml_read(n, mono(), &w, err, sizeof(err));
	printf("after a driver reload: %s\n", err);
	CHECK(e < 0);
	for (int g = 0; g < 2; g++) {
		state(g, &mhz, &mw);
		CHECK(mhz == 990 && mw == 100000); /* applied again */
	}
	nap_ms(200);
	e = op_nvml_read(n, mono(), &w, err, sizeof(err));
	if (e == -EAGAIN) { /* the counter's new baseline */
		nap_ms(200);
		e = op_nvml_read(n, mono(), &w, err, sizeof(err));
	}
	CHECK(e == 0 && w > 190 && w < 210);

	/* closing restores what outpostd found */
	op_nvml_close(n);
	for (int g = 0; g < 2; g++) {
		state(g, &mhz, &mw);
		CHECK(mhz == 0 && mw == 300000);
	}

	/* read only (a GPU whose settings are not ours, as on a shared test machine): readings,
	 * the default limit, and not one call that sets anything, not even the probes */
	int (*set_calls)(void) = (int (*)(void))dlsym(lib, "fake_nvml_set_calls");
	CHECK(set_calls != NULL);
	if (set_calls) {
		int before = set_calls();
		CHECK(op_nvml_open_readonly(&n, err, sizeof(err)) == 0);
		printf("%s\n", op_nvml_describe(n));
		CHECK(strstr(op_nvml_describe(n), "read only") != NULL);
		CHECK(!op_nvml_can_lock_clocks(n) && !op_nvml_can_set_limit(n));
		CHECK(op_nvml_default_limit_w(n) > 599.9 && op_nvml_default_limit_w(n) < 600.1); /* 2 × 300 W */
		op_nvml_read(n, mono(), &w, err, sizeof(err));
		nap_ms(200);
		CHECK(op_nvml_read(n, mono(), &w, err, sizeof(err)) == 0 && w > 190 && w < 210);
		op_nvml_close(n);
		CHECK(set_calls() == before);
	}

	/* not root: nothing settable, and it says so */
	setenv("FAKE_NVML_NOPERM", "1", 1);
	CHECK(op_nvml_open(&n, err, sizeof(err)) == 0);
	printf("%s\n", op_nvml_describe(n));
	CHECK(!op_nvml_can_lock_clocks(n) && !op_nvml_can_set_limit(n));
	CHECK(strstr(op_nvml_describe(n), "clocks not settable, power limit not settable") != NULL);
	op_nvml_close(n);
	dlclose(lib);
	return check_finish("test_power_nvml");
}
