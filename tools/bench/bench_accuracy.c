/*
 * bench_accuracy.c — angular resolution of LineFit, the network's seed and each given model
 * file, on the same held-out events (simulated tracks from a seed training never used, or a
 * replayed file with truth). One JSON line per method:
 *   outpost-bench accuracy --model A.h5 [--model B.h5 ...] [--events N] [--seed S]
 *                          [--replay PULSES.csv --truth TRUTH.csv]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/modelfile.h"
#include "ingest/geometry.h"
#include "ingest/replay.h"
#include "ingest/simgen.h"
#include "kernels/linefit.h"
#include "tools/bench/bench.h"

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void report(const char *method, const char *source, double *err, long n, long failed)
{
	qsort(err, (size_t)n, sizeof(double), cmpd);
	printf("{\"bench\":\"accuracy\",\"method\":\"%s\",\"events\":\"%s\",\"scored\":%ld,\"failed\":%ld,"
	       "\"median_deg\":%.3f,\"p68_deg\":%.3f,\"p90_deg\":%.3f}\n",
	       method, source, n, failed, n ? err[n / 2] : NAN, n ? err[(long)(n * 0.68)] : NAN,
	       n ? err[(long)(n * 0.9)] : NAN);
	fflush(stdout);
}

static double angle(const float *d, const double *t)
{
	double c = d[0] * t[0] + d[1] * t[1] + d[2] * t[2];
	return isfinite(c) ? acos(fmax(-1, fmin(1, c))) * 180 / M_PI : 180.0;
}

int op_bench_accuracy(int argc, char **argv)
{
	long n = 10000;
	uint64_t seed = 424242;
	const char *models[8], *replay = NULL, *truth = NULL;
	int nm = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--events"))
			n = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--model") && nm < 8)
			models[nm++] = argv[i + 1];
		else if (!strcmp(argv[i], "--replay"))
			replay = argv[i + 1];
		else if (!strcmp(argv[i], "--truth"))
			truth = argv[i + 1];
	}
	op_geometry *geo = NULL;
	op_simgen *gen = NULL;
	op_replay *rep = NULL;
	char err[512], source[64];
	if (op_geometry_default(&geo) < 0)
		return 1;
	if (replay) {
		if (op_replay_open(replay, truth, &rep, err, sizeof(err)) < 0) {
			fprintf(stderr, "outpost-bench: %s\n", err);
			return 1;
		}
		n = (long)op_replay_count(rep);
		snprintf(source, sizeof(source), "replay");
	} else {
		op_simgen_config sc = {.seed = seed, .track_fraction = 1.0, .max_pulses = 5000, .noise_hz = 500};
		if (op_simgen_open(&sc, geo, &gen) < 0)
			return 1;
		snprintf(source, sizeof(source), "sim-tracks-seed-%llu", (unsigned long long)seed);
	}
	/* place every event's pulses once */
	size_t cap = 1 << 20, used = 0;
	float *x = malloc(cap * 4), *y = malloc(cap * 4), *z = malloc(cap * 4), *t = malloc(cap * 4), *q = malloc(cap * 4);
	uint16_t *fl = malloc(cap * 2);
	size_t *off = malloc((size_t)(n + 1) * sizeof(size_t));
	double (*tr)[3] = malloc((size_t)n * sizeof(*tr));
	int *is_track = malloc((size_t)n * sizeof(int));
	for (long e = 0; e < n; e++) {
		const op_pulse *p;
		uint32_t np;
		op_sim_truth st;
		if (rep) {
			p = op_replay_event(rep, (uint32_t)e, &np, &st);
		} else {
			op_sim_event ev;
			op_simgen_next(gen, &ev);
			p = ev.pulses, np = ev.n, st = ev.truth;
		}
		if (used + np > cap) {
			while (used + np > cap)
				cap *= 2;
			x = realloc(x, cap * 4), y = realloc(y, cap * 4), z = realloc(z, cap * 4);
			t = realloc(t, cap * 4), q = realloc(q, cap * 4), fl = realloc(fl, cap * 2);
		}
		off[e] = used;
		op_placed_pulses dst = {x, y, z, t, q, fl};
		used += op_geometry_place(geo, p, np, &dst, used);
		memcpy(tr[e], st.dir, sizeof(tr[e]));
		is_track[e] = st.kind == OP_SIM_TRACK;
	}
	off[n] = used;
	op_reco_event *evs = malloc((size_t)n * sizeof(*evs));
	op_reco_out *lf = malloc((size_t)n * sizeof(*lf)), *seedg = malloc((size_t)n * sizeof(*seedg)),
		    *out = malloc((size_t)n * sizeof(*out));
	float *buf = malloc(cap * 5 * sizeof(float));
	double *errs = malloc((size_t)n * sizeof(double));
	long nt = 0, failed = 0;
	for (long e = 0; e < n; e++) {
		evs[e] = (op_reco_event){.n = (uint32_t)(off[e + 1] - off[e]), .x_m = x + off[e], .y_m = y + off[e],
					 .z_m = z + off[e], .t_ns = t + off[e], .q_pe = q + off[e], .flags = fl + off[e]};
		op_linefit(&lf[e], &evs[e], OP_LINEFIT_CHARGE_WEIGHTED | OP_LINEFIT_TRIM);
		op_seed_guess(&seedg[e], &evs[e], buf);
	}
	/* tracks only: direction is what the comparison is about */
	for (long e = 0; e < n; e++)
		if (is_track[e] || rep) { /* replayed files: every event (there are few) */
			errs[nt++] = angle(lf[e].dir, tr[e]);
			failed += !isfinite(lf[e].dir[0]);
		}
	report("linefit-trim-qw (appliance baseline)", source, errs, nt, failed);
	nt = failed = 0;
	for (long e = 0; e < n; e++)
		if (is_track[e] || rep) { /* replayed files: every event (there are few) */
			errs[nt++] = angle(seedg[e].dir, tr[e]);
			failed += !isfinite(seedg[e].dir[0]);
		}
	report("linefit-hlc (network seed)", source, errs, nt, failed);
	op_model_ws *ws[1] = {op_model_ws_new()};
	for (int k = 0; k < nm; k++) {
		op_model m;
		if (op_model_load(models[k], &m, err, sizeof(err)) < 0) {
			fprintf(stderr, "outpost-bench: %s\n", err);
			return 1;
		}
		for (long e = 0; e < n; e += 4096) {
			size_t cnt = (size_t)(n - e < 4096 ? n - e : 4096);
			if (op_model_run(&m, ws, 1, evs + e, seedg + e, out + e, cnt) < 0)
				return 1;
		}
		nt = failed = 0;
		for (long e = 0; e < n; e++)
			if (is_track[e] || rep) { /* replayed files: every event (there are few) */
				errs[nt++] = angle(out[e].dir, tr[e]);
				failed += !isfinite(out[e].dir[0]);
			}
		char method[160];
		const char *base = strrchr(models[k], '/');
		snprintf(method, sizeof(method), "%s", base ? base + 1 : models[k]);
		report(method, source, errs, nt, failed);
		op_model_free(&m);
	}
	op_model_ws_free(ws[0]);
	return 0;
}
