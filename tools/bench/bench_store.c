/*
 * bench_store.c — HDF5 segment throughput: rows appended per second in batches of 256, with
 * a seal (flush, close, fsync, SHA-256, renames, directory fsyncs) every 100,000 rows, and the
 * bytes each row costs on disk after compression.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tools/bench/bench.h"
#include "uplink/segment.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int op_bench_store(int argc, char **argv)
{
	char dir[] = "/tmp/outpost-bench-store.XXXXXX", seg[128], out[128], name[64], sha[65], cmd[200];
	long total = 1000000, per = 100000;
	op_result_row rows[256];
	double seal_ms[64], t0, t;
	int nseal = 0;
	uint64_t bytes = 0;

	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		return 1;
	snprintf(seg, sizeof(seg), "%s/segments", dir);
	snprintf(out, sizeof(out), "%s/outbox", dir);
	mkdir(seg, 0750);
	mkdir(out, 0750);
	op_segment_meta meta = {.model_name = "linefit-v1", .config_hash = "0123456789abcdef",
				.software_version = OUTPOST_VERSION, .site = "bench", .deflate_level = 4};
	t0 = now_s();
	for (long r = 0; r < total;) {
		op_segment *s;
		snprintf(name, sizeof(name), "bench-%06d", nseal);
		if (op_segment_create(seg, name, &meta, &s) < 0)
			return 1;
		for (long k = 0; k < per; k += 256, r += 256) {
			for (int i = 0; i < 256; i++) {
				long q = r + i;
				rows[i] = (op_result_row){.stream_id = 1, .n_pulses = (uint32_t)(30 + q % 200),
							  .sequence = (uint64_t)q, .detector_time_ns = 1700000000000000000ull + (uint64_t)q * 370370,
							  .dir_x = 0.6f, .dir_y = -0.48f, .dir_z = (float)((q % 1000) / 1000.0 - 0.5),
							  .zenith_rad = 1.2f + (float)(q % 97) / 97.0f, .azimuth_rad = (float)(q % 628) / 100.0f,
							  .log10_energy_gev = 3.1f, .track_score = 0.9f, .model_id = 1, .flags = 0};
			}
			if (op_segment_append(s, rows, 256) < 0)
				return 1;
		}
		t = now_s();
		if (op_segment_seal(s, out, sha) < 0)
			return 1;
		seal_ms[nseal++] = (now_s() - t) * 1e3;
		char path[256];
		struct stat sb;
		snprintf(path, sizeof(path), "%s/%s.h5", out, name);
		if (stat(path, &sb) == 0)
			bytes += (uint64_t)sb.st_size;
	}
	double secs = now_s() - t0;
	qsort(seal_ms, (size_t)nseal, sizeof(double), cmpd);
	printf("{\"bench\":\"store\",\"rows\":%ld,\"rows_per_s\":%.0f,\"segments\":%d,\"seal_ms_median\":%.2f,"
	       "\"bytes_per_row\":%.1f,\"raw_row_bytes\":60}\n",
	       total, (double)total / secs, nseal, seal_ms[nseal / 2], (double)bytes / (double)total);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
