/*
 * test_power_sensors.c — the sysfs sensors on a sysfs tree laid out as the kernel lays it out
 * (powercap RAPL zones with sub-zones and psys; hwmon devices with energy and power files),
 * the site meter's staleness and NVML's absence on a machine without the driver.
 * A site notices: a RAPL wrap read as a huge or negative spike, a counter reset read as a
 * wrap, sub-zones counted twice, a package left out, a meter that stopped talking still trusted,
 * an odd reading that does not say which file gave it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "power/sensor.h"

static char root[256];

static void put(const char *rel, const char *text)
{
	char p[512], dir[512];
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", p);
	for (char *q = dir + strlen(root) + 1; (q = strchr(q, '/')); q++) {
		*q = 0;
		mkdir(dir, 0755);
		*q = '/';
	}
	FILE *f = fopen(p, "w");
	if (!f) {
		perror(p);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static uint64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(void)
{
	char err[256];
	op_power_sensor *s;
	double w = -1;

	snprintf(root, sizeof(root), "/tmp/op-power-sysfs-%d", (int)getpid());
	mkdir(root, 0755);
	/* two packages, a core sub-zone (inside package 0) and psys (covers everything) */
	put("class/powercap/intel-rapl:0/name", "package-0\n");
	put("class/powercap/intel-rapl:0/energy_uj", "262143000000\n");
	put("class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n");
	put("class/powercap/intel-rapl:0:0/name", "core\n");
	put("class/powercap/intel-rapl:0:0/energy_uj", "5\n");
	put("class/powercap/intel-rapl:1/name", "package-1\n");
	put("class/powercap/intel-rapl:1/energy_uj", "1000000\n");
	put("class/powercap/intel-rapl:1/max_energy_range_uj", "262143328850\n");
	put("class/powercap/intel-rapl:2/name", "psys\n");
	put("class/powercap/intel-rapl:2/energy_uj", "1\n");

	uint64_t t_open = mono();
	CHECK(op_power_sensor_open("rapl", root, "", NULL, &s, err, sizeof(err)) == 0);
	if (s) {
		printf("%s\n", op_power_sensor_describe(s));
		CHECK(strstr(op_power_sensor_describe(s), "package-0") && strstr(op_power_sensor_describe(s), "package-1"));
		CHECK(!strstr(op_power_sensor_describe(s), "core") && !strstr(op_power_sensor_describe(s), "psys"));
		uint64_t t0 = mono();
		/* package 0 wraps: 328,850 µJ to the top then 671,150 µJ = 1 J; package 1: +2 J */
		put("class/powercap/intel-rapl:0/energy_uj", "671150\n");
		put("class/powercap/intel-rapl:1/energy_uj", "3000000\n");
		put("class/powercap/intel-rapl:0:0/energy_uj", "999999999\n");
		int e = op_power_sensor_read(s, t0 + 1000000000ull, &w, err, sizeof(err));
		/* the baseline was taken at open, between t_open and t0: the interval is 1 s plus at most
		 * t0 − t_open (however long a loaded machine took to get here) */
		CHECK(e == 0);
		double late = (double)(t0 - t_open) / 1e9;
		printf("rapl across a wrap: %.3f W (3 J over 1 s + up to %.3f s)\n", w, late);
		CHECK(w >= 3.0 / (1.0 + late) - 1e-9 && w <= 3.0);
		put("class/powercap/intel-rapl:0/energy_uj", "1671150\n");
		put("class/powercap/intel-rapl:1/energy_uj", "4000000\n");
		CHECK(op_power_sensor_read(s, t0 + 3000000000ull, &w, err, sizeof(err)) == 0);
		CHECK_NEAR(w, 1.0, 1e-9); /* 2 J over 2 s */
		/* a counter that became unreadable is an error naming the file */
		put("class/powercap/intel-rapl:1/energy_uj", "garbage\n");
		e = op_power_sensor_read(s, t0 + 4000000000ull, &w, err, sizeof(err));
		CHECK(e < 0 && strstr(err, "intel-rapl:1/energy_uj"));
		printf("unreadable counter: %s\n", err);
		/* (package 0 had moved on by then: +1 J.) The next reading spans both periods for every
		 * package: 2 J + 2 J over 2 s. Before, package 0's baseline had moved at the failed
		 * read while the period's start had not, and it read half its power. */
		put("class/powercap/intel-rapl:0/energy_uj", "2671150\n");
		put("class/powercap/intel-rapl:1/energy_uj", "garbage\n");
		CHECK(op_power_sensor_read(s, t0 + 4000000000ull, &w, err, sizeof(err)) < 0);
		put("class/powercap/intel-rapl:0/energy_uj", "3671150\n");
		put("class/powercap/intel-rapl:1/energy_uj", "6000000\n");
		CHECK(op_power_sensor_read(s, t0 + 5000000000ull, &w, err, sizeof(err)) == 0);
		CHECK_NEAR(w, 2.0, 1e-9);
		/* a counter that stops moving (a stalled driver) is an error, not 0 W */
		put("class/powercap/intel-rapl:1/energy_uj", "7000000\n");
		CHECK(op_power_sensor_read(s, t0 + 8000000000ull, &w, err, sizeof(err)) == 0); /* 3 s: still a reading */
		put("class/powercap/intel-rapl:1/energy_uj", "8000000\n");
		e = op_power_sensor_read(s, t0 + 11000000000ull, &w, err, sizeof(err));
		printf("frozen counter: %s\n", err);
		CHECK(e < 0 && strstr(err, "intel-rapl:0/energy_uj") && strstr(err, "has not moved"));
		op_power_sensor_close(s);
	}

	/* A counter that goes back near zero (the driver reloaded, the package reset at a resume)
	 * is a reset, not a wrap through most of its range: no reading for the period, then
	 * readings again. (Read as a wrap it was 62 kJ in one second: 62 kW, under the 100 kW
	 * sanity limit, a period's reading far over any budget.) */
	put("class/powercap/intel-rapl:0/energy_uj", "200000000000\n");
	put("class/powercap/intel-rapl:1/energy_uj", "1000000\n");
	CHECK(op_power_sensor_open("rapl", root, "", NULL, &s, err, sizeof(err)) == 0);
	if (s) {
		uint64_t t0 = mono();
		put("class/powercap/intel-rapl:0/energy_uj", "5000000\n");
		put("class/powercap/intel-rapl:1/energy_uj", "2000000\n");
		int e = op_power_sensor_read(s, t0 + 1000000000ull, &w, err, sizeof(err));
		printf("counter reset: %d %s (%.1f W)\n", e, e ? err : "", e ? 0.0 : w);
		CHECK(e == -EAGAIN && strstr(err, "intel-rapl:0/energy_uj"));
		put("class/powercap/intel-rapl:0/energy_uj", "6000000\n");
		put("class/powercap/intel-rapl:1/energy_uj", "3000000\n");
		CHECK(op_power_sensor_read(s, t0 + 2000000000ull, &w, err, sizeof(err)) == 0);
		CHECK_NEAR(w, 2.0, 1e-9);
		op_power_sensor_close(s);
	}
	/* one package readable and the other not: the readable one is counted, and the sensor
	 * names the file it leaves out (powerctl says so, and fails safe when rapl is listed by
	 * name; before, the package was left out without a word) */
	put("class/powercap/intel-rapl:1/energy_uj", "garbage\n");
	CHECK(op_power_sensor_open("rapl", root, "", NULL, &s, err, sizeof(err)) == 0);
	if (s) {
		printf("one package unreadable: %s; left out: %s\n", op_power_sensor_describe(s), op_power_sensor_unread(s));
		CHECK(strstr(op_power_sensor_describe(s), "package-0") && !strstr(op_power_sensor_describe(s), "package-1"));
		CHECK(strstr(op_power_sensor_unread(s), "intel-rapl:1/energy_uj") != NULL);
		op_power_sensor_close(s);
	}
	/* none readable: refused, naming the file, not "absent" */
	put("class/powercap/intel-rapl:0/energy_uj", "garbage\n");
	int e0 = op_power_sensor_open("rapl", root, "", NULL, &s, err, sizeof(err));
	printf("no package readable: %s\n", err);
	CHECK(e0 < 0 && e0 != -ENODEV && strstr(err, "energy_uj"));
	if (e0 == 0)
		op_power_sensor_close(s);
	put("class/powercap/intel-rapl:0/energy_uj", "200000000000\n");
	put("class/powercap/intel-rapl:1/energy_uj", "1000000\n");

	/* hwmon: an energy channel (preferred) and a power-only device; a device filtered out */
	put("class/hwmon/hwmon0/name", "gb10_soc\n");
	put("class/hwmon/hwmon0/energy1_input", "5000000\n");
	put("class/hwmon/hwmon0/power1_input", "99000000\n");
	put("class/hwmon/hwmon1/name", "board\n");
	put("class/hwmon/hwmon1/power1_input", "12500000\n");
	put("class/hwmon/hwmon2/name", "nvme\n");
	put("class/hwmon/hwmon2/temp1_input", "40000\n");
	t_open = mono();
	CHECK(op_power_sensor_open("hwmon", root, "gb10_soc,board", NULL, &s, err, sizeof(err)) == 0);
	if (s) {
		printf("%s\n", op_power_sensor_describe(s));
		uint64_t t0 = mono();
		put("class/hwmon/hwmon0/energy1_input", "25000000\n"); /* +20 J */
		CHECK(op_power_sensor_read(s, t0 + 2000000000ull, &w, err, sizeof(err)) == 0);
		double late = (double)(t0 - t_open) / 1e9;
		printf("hwmon: %.3f W (energy 20 J over 2 s + up to %.3f s, + 12.5 W)\n", w, late);
		CHECK(w >= 20.0 / (2.0 + late) + 12.5 - 1e-9 && w <= 22.5);
		/* a device whose energy counter rests (suspended) is a reading, not a frozen sensor:
		 * only RAPL packages are held to moving */
		CHECK(op_power_sensor_read(s, t0 + 9000000000ull, &w, err, sizeof(err)) == 0);
		CHECK_NEAR(w, 12.5, 1e-9);
		/* a negative value is no reading (strtoull took it for 1.8e19 µW), and an implausible
		 * one names its file, not only "hwmon" */
		put("class/hwmon/hwmon1/power1_input", "-5000000\n");
		int e = op_power_sensor_read(s, t0 + 10000000000ull, &w, err, sizeof(err));
		printf("negative: %s\n", err);
		CHECK(e < 0 && strstr(err, "hwmon1/power1_input"));
		put("class/hwmon/hwmon1/power1_input", "200000000000000\n"); /* 200 MW */
		e = op_power_sensor_read(s, t0 + 11000000000ull, &w, err, sizeof(err));
		printf("implausible: %s\n", err);
		CHECK(e == -ERANGE && strstr(err, "hwmon1/power1_input"));
		put("class/hwmon/hwmon1/power1_input", "12500000\n");
		CHECK(op_power_sensor_read(s, t0 + 12000000000ull, &w, err, sizeof(err)) == 0);
		CHECK_NEAR(w, 12.5, 1e-9);
		op_power_sensor_close(s);
	}
	CHECK(op_power_sensor_open("hwmon", root, "nosuch", NULL, &s, err, sizeof(err)) == -ENODEV);
	printf("filtered out: %s\n", err);

	/* the meter: fed readings, stale after 3 s */
	CHECK(op_power_sensor_open("meter", root, "", NULL, &s, err, sizeof(err)) == 0);
	if (s) {
		CHECK(op_power_sensor_read(s, 1000, &w, err, sizeof(err)) == -ENODATA);
		op_power_sensor_feed(s, 140.5, 10000000000ull);
		CHECK(op_power_sensor_read(s, 12000000000ull, &w, err, sizeof(err)) == 0 && w == 140.5);
		CHECK(op_power_sensor_read(s, 13500000000ull, &w, err, sizeof(err)) == -ETIMEDOUT);
		printf("stale meter: %s\n", err);
		op_power_sensor_feed(s, -3, 14000000000ull);
		CHECK(op_power_sensor_read(s, 14000000000ull, &w, err, sizeof(err)) == -ERANGE);
		op_power_sensor_close(s);
	}

	/* no NVIDIA driver on this machine: a clear "not here", never a crash */
	int e = op_power_sensor_open("nvml", root, "", NULL, &s, err, sizeof(err));
	if (e == 0) {
		printf("NVML present: %s\n", op_power_sensor_describe(s));
		op_power_sensor_close(s);
	} else {
		CHECK(e == -ENODEV && strstr(err, "NVML"));
		printf("nvml: %s\n", err);
	}
	CHECK(op_power_sensor_open("volts", root, "", NULL, &s, err, sizeof(err)) == -EINVAL);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
	return check_finish("test_power_sensors");
}
