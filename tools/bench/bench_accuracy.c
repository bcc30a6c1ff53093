/*
 * bench_accuracy.c — how well LineFit, the network's seed and each given model file reconstruct
 * the same held-out events (simulated events from seeds training never used, or a replayed file
 * with truth). One JSON line per method and figure:
 *   outpost-bench accuracy --model A.h5 [--model B.h5 ...] [--events N] [--seed S]
 *                          [--replay PULSES.csv --truth TRUTH.csv]
 * Direction: angular error on N simulated muon tracks (seed S), or on every replayed event.
 * Energy and track/cascade score (simulation only): N more events, half tracks and half
 * cascades (seed S + 1): the error of log10 E per kind, and how well the score separates them.
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

/* the q-quantile of v[0..n) (sorts v) */
static double quantile(double *v, long n, double q)
{
	qsort(v, (size_t)n, sizeof(double), cmpd);
	return n ? v[(long)(n * q)] : NAN;
}

static void report(const char *method, const char *source, double *err, long n, long failed)
{
	printf("{\"bench\":\"accuracy\",\"method\":\"%s\",\"events\":\"%s\",\"scored\":%ld,\"failed\":%ld,"
	       "\"median_deg\":%.3f,\"p68_deg\":%.3f,\"p90_deg\":%.3f}\n",
	       method, source, n, failed, quantile(err, n, 0.5), quantile(err, n, 0.68), quantile(err, n, 0.9));
	fflush(stdout);
}

static double angle(const float *d, const double *t)
{
	double c = d[0] * t[0] + d[1] * t[1] + d[2] * t[2];
	return isfinite(c) ? acos(fmax(-1, fmin(1, c))) * 180 / M_PI : 180.0;
}

/* Events placed on the detector, with their truth and the network's first guess. */
typedef struct sample {
	long n, offered, placed; /* events; pulses given, pulses on DOMs the geometry knows */
	long no_truth;           /* events without a true direction: not scored */
	float *x, *y, *z, *t, *q, *buf;
	uint16_t *fl;
	size_t *off;
	double (*dir)[3], *log10e;
	int *is_track;
	op_reco_event *ev;
	op_reco_out *seed;
} sample;

static void sample_free(sample *S)
{
	free(S->x), free(S->y), free(S->z), free(S->t), free(S->q), free(S->buf), free(S->fl), free(S->off);
	free(S->dir), free(S->log10e), free(S->is_track), free(S->ev), free(S->seed);
	memset(S, 0, sizeof(*S));
}

/* n events from the generator or every one of the replayed file */
static int sample_load(sample *S, const op_geometry *geo, op_simgen *gen, const op_replay *rep, long n)
{
	memset(S, 0, sizeof(*S));
	size_t cap = 1 << 20, used = 0;
	S->n = n;
	S->x = malloc(cap * 4), S->y = malloc(cap * 4), S->z = malloc(cap * 4), S->t = malloc(cap * 4);
	S->q = malloc(cap * 4), S->fl = malloc(cap * 2);
	S->off = malloc((size_t)(n + 1) * sizeof(size_t));
	S->dir = malloc((size_t)n * sizeof(*S->dir));
	S->log10e = malloc((size_t)n * sizeof(double));
	S->is_track = malloc((size_t)n * sizeof(int));
	S->ev = malloc((size_t)n * sizeof(*S->ev));
	S->seed = malloc((size_t)n * sizeof(*S->seed));
	if (!S->x || !S->y || !S->z || !S->t || !S->q || !S->fl || !S->off || !S->dir || !S->log10e || !S->is_track ||
	    !S->ev || !S->seed)
		return -1;
	for (long e = 0; e < n; e++) {
		const op_pulse *p;
		uint32_t np;
		op_sim_truth st;
		if (rep) {
			p = op_replay_event(rep, (uint32_t)e, &np, &st);
		} else {
			op_sim_event sev;
			op_simgen_next(gen, &sev);
			p = sev.pulses, np = sev.n, st = sev.truth;
		}
		if (used + np > cap) {
			while (used + np > cap)
				cap *= 2;
			float **arr[5] = {&S->x, &S->y, &S->z, &S->t, &S->q};
			for (int i = 0; i < 5; i++) { /* on failure the old block stays, for sample_free */
				float *nb = realloc(*arr[i], cap * 4);
				if (!nb)
					return -1;
				*arr[i] = nb;
			}
			uint16_t *nf = realloc(S->fl, cap * 2);
			if (!nf)
				return -1;
			S->fl = nf;
		}
		S->off[e] = used;
		op_placed_pulses dst = {S->x, S->y, S->z, S->t, S->q, S->fl};
		used += op_geometry_place(geo, p, np, &dst, used);
		S->offered += np;
		memcpy(S->dir[e], st.dir, sizeof(S->dir[e]));
		if (st.dir[0] == 0 && st.dir[1] == 0 && st.dir[2] == 0) /* no truth for this event */
			S->dir[e][0] = NAN, S->no_truth++;
		S->log10e[e] = st.energy_gev > 0 ? log10(st.energy_gev) : NAN;
		S->is_track[e] = st.kind == OP_SIM_TRACK;
	}
	S->off[n] = used;
	S->placed = (long)used;
	S->buf = malloc((used ? used : 1) * 5 * sizeof(float));
	if (!S->buf)
		return -1;
	for (long e = 0; e < n; e++) {
		S->ev[e] = (op_reco_event){.n = (uint32_t)(S->off[e + 1] - S->off[e]), .x_m = S->x + S->off[e],
					   .y_m = S->y + S->off[e], .z_m = S->z + S->off[e], .t_ns = S->t + S->off[e],
					   .q_pe = S->q + S->off[e], .flags = S->fl + S->off[e]};
		op_seed_guess(&S->seed[e], &S->ev[e], S->buf);
	}
	return 0;
}

static int run_model(const op_model *m, op_model_ws **ws, const sample *S, op_reco_out *out)
{
	for (long e = 0; e < S->n; e += 4096) {
		size_t cnt = (size_t)(S->n - e < 4096 ? S->n - e : 4096);
		if (op_model_run(m, ws, 1, S->ev + e, S->seed + e, out + e, cnt) < 0)
			return -1;
	}
	return 0;
}

typedef struct scored {
	double s;
	int track;
} scored;

static int cmps(const void *a, const void *b)
{
	double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
	return (x > y) - (x < y);
}

/* Energy and track/cascade figures of one model on the mixed sample. The area under the ROC
 * curve is the chance that a random track scores above a random cascade (ties count half). */
static void report_energy_kind(const char *method, const char *source, const sample *S, const op_reco_out *out)
{
	double *d[2] = {malloc((size_t)S->n * sizeof(double)), malloc((size_t)S->n * sizeof(double))};
	double *a[2] = {malloc((size_t)S->n * sizeof(double)), malloc((size_t)S->n * sizeof(double))};
	scored *sc = malloc((size_t)S->n * sizeof(scored));
	long nk[2] = {0, 0}, ns = 0, right = 0, failed = 0;
	if (!d[0] || !d[1] || !a[0] || !a[1] || !sc)
		goto out;
	for (long e = 0; e < S->n; e++) {
		const int k = S->is_track[e];
		const double err = out[e].log10_energy_gev - S->log10e[e];
		if (!isfinite(err) || !isfinite(out[e].track_score)) {
			failed++;
			continue;
		}
		d[k][nk[k]] = err, a[k][nk[k]] = fabs(err), nk[k]++;
		sc[ns++] = (scored){out[e].track_score, k};
		right += (out[e].track_score >= 0.5f) == (k == 1);
	}
	qsort(sc, (size_t)ns, sizeof(scored), cmps);
	double rank_sum = 0; /* ranks from 1, ties averaged */
	long tracks = 0;
	for (long i = 0; i < ns;) {
		long j = i;
		while (j < ns && sc[j].s == sc[i].s)
			j++;
		for (long k = i; k < j; k++)
			if (sc[k].track)
				rank_sum += (i + 1 + j) / 2.0, tracks++;
		i = j;
	}
	const long casc = ns - tracks;
	const double auc = tracks && casc ? (rank_sum - tracks * (tracks + 1) / 2.0) / ((double)tracks * casc) : NAN;
	printf("{\"bench\":\"accuracy\",\"method\":\"%s\",\"events\":\"%s\",\"scored\":%ld,\"failed\":%ld,"
	       "\"tracks\":%ld,\"cascades\":%ld,"
	       "\"track_log10e_bias\":%.3f,\"track_log10e_abs_err_median\":%.3f,\"track_log10e_abs_err_p68\":%.3f,"
	       "\"cascade_log10e_bias\":%.3f,\"cascade_log10e_abs_err_median\":%.3f,\"cascade_log10e_abs_err_p68\":%.3f,"
	       "\"kind_correct_at_0_5\":%.4f,\"kind_auc\":%.4f}\n",
	       method, source, ns, failed, nk[1], nk[0], quantile(d[1], nk[1], 0.5), quantile(a[1], nk[1], 0.5),
	       quantile(a[1], nk[1], 0.68), quantile(d[0], nk[0], 0.5), quantile(a[0], nk[0], 0.5),
	       quantile(a[0], nk[0], 0.68), ns ? (double)right / ns : NAN, auc);
	fflush(stdout);
out:
	free(d[0]), free(d[1]), free(a[0]), free(a[1]), free(sc);
}

static const char *base_name(const char *p)
{
	const char *b = strrchr(p, '/');
	return b ? b + 1 : p;
}

int op_bench_accuracy(int argc, char **argv)
{
	long n = 10000;
	uint64_t seed = 424242;
	const char *models[8], *replay = NULL, *truth = NULL;
	int nm = 0;
	for (int i = 1; i < argc; i += 2) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!val || strncmp(opt, "--", 2) != 0) {
			fprintf(stderr, "outpost-bench accuracy: %s '%s'\n", val ? "unknown argument" : "missing value after",
				opt);
			return 2;
		}
		if (!strcmp(opt, "--events")) {
			n = atol(val);
		} else if (!strcmp(opt, "--seed")) {
			seed = strtoull(val, NULL, 0);
		} else if (!strcmp(opt, "--model")) {
			if (nm == 8) {
				fprintf(stderr, "outpost-bench accuracy: at most 8 --model files\n");
				return 2;
			}
			models[nm++] = val;
		} else if (!strcmp(opt, "--replay")) {
			replay = val;
		} else if (!strcmp(opt, "--truth")) {
			truth = val;
		} else {
			fprintf(stderr, "outpost-bench accuracy: unknown argument '%s'\n", opt);
			return 2;
		}
	}
	if (!replay != !truth) {
		fprintf(stderr, "outpost-bench accuracy: --replay and --truth go together\n");
		return 2;
	}
	if (n < 1 || n > 10000000) {
		fprintf(stderr, "outpost-bench accuracy: --events must be 1 to 10,000,000\n");
		return 2;
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
	sample A;
	if (sample_load(&A, geo, gen, rep, n) < 0) {
		sample_free(&A);
		fprintf(stderr, "outpost-bench accuracy: out of memory\n");
		return 1;
	}
	if (gen)
		op_simgen_close(gen), gen = NULL;
	/* pulses on sensors the geometry does not know (IceCube Upgrade strings, say) are dropped:
	 * every method below sees only the placed ones */
	printf("{\"bench\":\"accuracy\",\"figure\":\"sample\",\"events\":\"%s\",\"count\":%ld,\"pulses\":%ld,"
	       "\"pulses_placed\":%ld,\"events_without_truth\":%ld}\n",
	       source, n, A.offered, A.placed, A.no_truth);
	op_reco_out *lf = malloc((size_t)n * sizeof(*lf)), *out = malloc((size_t)n * sizeof(*out));
	double *errs = malloc((size_t)n * sizeof(double));
	if (!lf || !out || !errs)
		return 1;
	for (long e = 0; e < n; e++)
		op_linefit(&lf[e], &A.ev[e], OP_LINEFIT_CHARGE_WEIGHTED | OP_LINEFIT_TRIM);
	/* direction: tracks only (replayed files: every event, there are few) */
	long nt = 0, failed = 0;
	for (long e = 0; e < n; e++)
		if ((A.is_track[e] || rep) && !isnan(A.dir[e][0])) {
			errs[nt++] = angle(lf[e].dir, A.dir[e]);
			failed += !isfinite(lf[e].dir[0]);
		}
	report("linefit-trim-qw (appliance baseline)", source, errs, nt, failed);
	nt = failed = 0;
	for (long e = 0; e < n; e++)
		if ((A.is_track[e] || rep) && !isnan(A.dir[e][0])) {
			errs[nt++] = angle(A.seed[e].dir, A.dir[e]);
			failed += !isfinite(A.seed[e].dir[0]);
		}
	report("linefit-hlc (network seed)", source, errs, nt, failed);
	op_model_ws *ws[1] = {op_model_ws_new()};
	op_model mods[8];
	for (int k = 0; k < nm; k++) {
		if (op_model_load(models[k], &mods[k], err, sizeof(err)) < 0) {
			fprintf(stderr, "outpost-bench: %s\n", err);
			return 1;
		}
		if (run_model(&mods[k], ws, &A, out) < 0)
			return 1;
		nt = failed = 0;
		for (long e = 0; e < n; e++)
			if ((A.is_track[e] || rep) && !isnan(A.dir[e][0])) {
				errs[nt++] = angle(out[e].dir, A.dir[e]);
				failed += !isfinite(out[e].dir[0]);
			}
		report(base_name(models[k]), source, errs, nt, failed);
	}
	/* energy and kind: a second simulated sample, half tracks and half cascades */
	if (!rep && nm) {
		sample B;
		op_simgen_config sc = {.seed = seed + 1, .track_fraction = 0.5, .max_pulses = 5000, .noise_hz = 500};
		if (op_simgen_open(&sc, geo, &gen) < 0)
			return 1;
		if (sample_load(&B, geo, gen, NULL, n) < 0) {
			fprintf(stderr, "outpost-bench accuracy: out of memory\n");
			sample_free(&B);
			return 1;
		}
		op_simgen_close(gen);
		snprintf(source, sizeof(source), "sim-mix-seed-%llu", (unsigned long long)(seed + 1));
		for (int k = 0; k < nm; k++) {
			if (run_model(&mods[k], ws, &B, out) < 0)
				return 1;
			report_energy_kind(base_name(models[k]), source, &B, out);
		}
		sample_free(&B);
	}
	for (int k = 0; k < nm; k++)
		op_model_free(&mods[k]);
	op_model_ws_free(ws[0]);
	sample_free(&A);
	free(lf), free(out), free(errs);
	if (rep)
		op_replay_close(rep);
	op_geometry_close(geo);
	return 0;
}
