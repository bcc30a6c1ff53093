/*
 * bench_linefit.c — LineFit's angular resolution on simulated muon tracks (the baseline every
 * learned reconstruction must beat) and its speed. Prints one JSON line per variant: median
 * and 68% angular error against the simulator's truth, and events/s of the reconstruction.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingest/geometry.h"
#include "ingest/simgen.h"
#include "kernels/linefit.h"
#include "tools/bench/bench.h"

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int op_bench_linefit(int argc, char **argv)
{
	long n = 20000;
	op_geometry *geo = NULL;
	op_simgen *gen = NULL;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--events") && i + 1 < argc)
			n = atol(argv[++i]);
	op_simgen_config sc = {.seed = 2026, .track_fraction = 1.0, .max_pulses = 5000, .noise_hz = 500};
	if (op_geometry_default(&geo) < 0 || op_simgen_open(&sc, geo, &gen) < 0)
		return 1;

	/* Simulate once, keep every event's placed pulses, then time each variant on the same set. */
	float *x = NULL, *y = NULL, *z = NULL, *t = NULL, *q = NULL;
	size_t used = 0, cap = 0;
	size_t *off = malloc((size_t)(n + 1) * sizeof(size_t));
	double (*truth)[3] = malloc((size_t)n * sizeof(*truth));
	long pulses = 0;
	for (long e = 0; e < n; e++) {
		op_sim_event ev;
		op_simgen_next(gen, &ev);
		if (used + ev.n > cap) {
			cap = (used + ev.n) * 2;
			x = realloc(x, cap * sizeof(float));
			y = realloc(y, cap * sizeof(float));
			z = realloc(z, cap * sizeof(float));
			t = realloc(t, cap * sizeof(float));
			q = realloc(q, cap * sizeof(float));
		}
		off[e] = used;
		op_placed_pulses dst = {x, y, z, t, q, NULL};
		used += op_geometry_place(geo, ev.pulses, ev.n, &dst, used);
		memcpy(truth[e], ev.truth.dir, sizeof(truth[e]));
		pulses += ev.n;
	}
	off[n] = used;

	double *err = malloc((size_t)n * sizeof(double));
	static const char *const names[4] = {"plain", "charge_weighted", "trimmed", "trimmed_charge_weighted"};
	for (int variant = 0; variant < 4; variant++) {
		long ok = 0;
		double t0 = now_s();
		for (long e = 0; e < n; e++) {
			op_reco_event ev = {.n = (uint32_t)(off[e + 1] - off[e]), .x_m = x + off[e], .y_m = y + off[e],
					    .z_m = z + off[e], .t_ns = t + off[e], .q_pe = q + off[e]};
			op_reco_out o;
			op_linefit(&o, &ev, variant);
			if (o.status & (OP_RECO_TOO_FEW_PULSES | OP_RECO_DEGENERATE))
				continue;
			double c = o.dir[0] * truth[e][0] + o.dir[1] * truth[e][1] + o.dir[2] * truth[e][2];
			err[ok++] = acos(fmax(-1, fmin(1, c))) * 180 / M_PI;
		}
		double secs = now_s() - t0;
		qsort(err, (size_t)ok, sizeof(double), cmpd);
		printf("{\"bench\":\"linefit\",\"variant\":\"%s\",\"tracks\":%ld,\"reconstructed\":%ld,"
		       "\"mean_pulses\":%.1f,\"median_deg\":%.2f,\"p68_deg\":%.2f,\"events_per_s\":%.0f,"
		       "\"random_direction_median_deg\":90.0}\n",
		       names[variant], n, ok, (double)pulses / (double)n,
		       ok ? err[ok / 2] : NAN, ok ? err[(long)(0.68 * (double)ok)] : NAN, (double)n / secs);
	}
	free(err);
	free(x), free(y), free(z), free(t), free(q), free(off), free(truth);
	op_simgen_close(gen);
	op_geometry_close(geo);
	return 0;
}
