/*
 * outpost-dataset — events with their truth and the network's input features, for training
 * (tools/train.py) and for scoring (outpost-bench accuracy reads the same events).
 *
 *   outpost-dataset --out FILE [--count N] [--seed S] [--kind track|cascade|mix]
 *                   [--max-pulses N] [--replay PULSES.csv --truth TRUTH.csv]
 *
 * The features come from kernels/features.c, the code the appliance runs, so training sees
 * exactly the numbers inference will see. Output: "OPDATA01", u32 array count, then per array
 * a 24-byte name, u32 dtype (0 = float32, 1 = uint32), u32 rows, u32 cols and the data, all
 * little-endian. Arrays: offsets (events+1 × 1, into the pulse rows), pulse_feat, event_feat,
 * truth_dir, truth_log10e, truth_track, linefit_dir.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/geometry.h"
#include "ingest/replay.h"
#include "ingest/simgen.h"
#include "kernels/features.h"
#include "kernels/linefit.h"

typedef struct growf {
	float *p;
	size_t n, cap;
} growf;

static int gpush(growf *g, const float *v, size_t k)
{
	if (g->n + k > g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 1u << 16;
		while (cap < g->n + k)
			cap *= 2;
		float *p = realloc(g->p, cap * sizeof(float));
		if (!p)
			return -ENOMEM;
		g->p = p, g->cap = cap;
	}
	memcpy(g->p + g->n, v, k * sizeof(float));
	g->n += k;
	return 0;
}

static int put_array(FILE *f, const char *name, uint32_t dtype, uint32_t rows, uint32_t cols, const void *data)
{
	char nm[24] = {0};
	uint32_t h[3] = {dtype, rows, cols};
	strncpy(nm, name, sizeof(nm) - 1);
	if (fwrite(nm, 1, 24, f) != 24 || fwrite(h, 4, 3, f) != 3)
		return -1;
	size_t n = (size_t)rows * cols;
	return n && fwrite(data, 4, n, f) != n ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *out = NULL, *kind = "mix", *replay = NULL, *truth = NULL;
	long count = 10000;
	uint64_t seed = 1;
	uint32_t max_pulses = 128;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "outpost-dataset: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--out"))
			out = v;
		else if (!strcmp(a, "--count"))
			count = atol(v);
		else if (!strcmp(a, "--seed"))
			seed = strtoull(v, NULL, 0);
		else if (!strcmp(a, "--kind"))
			kind = v;
		else if (!strcmp(a, "--max-pulses"))
			max_pulses = (uint32_t)atol(v);
		else if (!strcmp(a, "--replay"))
			replay = v;
		else if (!strcmp(a, "--truth"))
			truth = v;
		else {
			fprintf(stderr, "usage: outpost-dataset --out FILE [--count N] [--seed S] "
					"[--kind track|cascade|mix] [--max-pulses N] [--replay PULSES.csv --truth TRUTH.csv]\n");
			return 2;
		}
	}
	if (!out || count <= 0 || max_pulses == 0) {
		fprintf(stderr, "outpost-dataset: --out is required; --count and --max-pulses must be > 0\n");
		return 2;
	}
	op_geometry *geo = NULL;
	op_simgen *gen = NULL;
	op_replay *rep = NULL;
	if (op_geometry_default(&geo) < 0)
		return 1;
	if (replay) {
		char err[256];
		if (op_replay_open(replay, truth, &rep, err, sizeof(err)) < 0) {
			fprintf(stderr, "outpost-dataset: %s\n", err);
			return 1;
		}
		if ((long)op_replay_count(rep) < count)
			count = (long)op_replay_count(rep);
	} else {
		op_simgen_config sc = {.seed = seed, .noise_hz = 500, .max_pulses = 5000,
				       .track_fraction = !strcmp(kind, "track") ? 1.0 : !strcmp(kind, "cascade") ? 0.0 : 0.7};
		if (op_simgen_open(&sc, geo, &gen) < 0)
			return 1;
	}

	growf pf = {0}, ef = {0}, tdir = {0}, te = {0}, tk = {0}, lfd = {0};
	uint32_t *offs = malloc(((size_t)count + 1) * sizeof(uint32_t));
	float *x = NULL, *y = NULL, *z = NULL, *t = NULL, *q = NULL, *feat = NULL, *sbuf = NULL;
	uint16_t *fl = NULL;
	uint64_t *scratch = NULL;
	size_t cap = 0, rows = 0;
	if (!offs)
		return 1;
	for (long e = 0; e < count; e++) {
		const op_pulse *p;
		uint32_t n;
		op_sim_truth tr;
		if (rep) {
			p = op_replay_event(rep, (uint32_t)e, &n, &tr);
		} else {
			op_sim_event ev;
			op_simgen_next(gen, &ev);
			p = ev.pulses, n = ev.n, tr = ev.truth;
		}
		if (n > cap) {
			cap = n * 2;
			x = realloc(x, cap * 4), y = realloc(y, cap * 4), z = realloc(z, cap * 4);
			t = realloc(t, cap * 4), q = realloc(q, cap * 4);
			feat = realloc(feat, cap * OP_FEAT_PULSE * 4);
			scratch = realloc(scratch, cap * 8);
			sbuf = realloc(sbuf, cap * 5 * 4);
			fl = realloc(fl, cap * 2);
			if (!x || !y || !z || !t || !q || !feat || !scratch || !sbuf || !fl)
				return 1;
		}
		op_placed_pulses dst = {x, y, z, t, q, fl};
		uint32_t m = op_geometry_place(geo, p, n, &dst, 0);
		op_reco_event ev = {.n = m, .x_m = x, .y_m = y, .z_m = z, .t_ns = t, .q_pe = q, .flags = fl};
		op_reco_out g;
		float evf[OP_FEAT_EVENT];
		op_reco_out lf;
		op_linefit(&lf, &ev, OP_LINEFIT_CHARGE_WEIGHTED | OP_LINEFIT_TRIM);
		op_seed_guess(&g, &ev, sbuf);
		uint32_t used = op_features(&ev, &g, max_pulses, feat, evf, scratch);
		offs[e] = (uint32_t)rows;
		rows += used;
		float td[3] = {(float)tr.dir[0], (float)tr.dir[1], (float)tr.dir[2]};
		float le = (float)log10(tr.energy_gev > 0 ? tr.energy_gev : 1), trk = tr.kind == OP_SIM_TRACK;
		if (gpush(&pf, feat, (size_t)used * OP_FEAT_PULSE) || gpush(&ef, evf, OP_FEAT_EVENT) ||
		    gpush(&tdir, td, 3) || gpush(&te, &le, 1) || gpush(&tk, &trk, 1) || gpush(&lfd, lf.dir, 3))
			return 1;
	}
	offs[count] = (uint32_t)rows;

	FILE *f = fopen(out, "wb");
	if (!f) {
		fprintf(stderr, "outpost-dataset: cannot write %s: %s\n", out, strerror(errno));
		return 1;
	}
	uint32_t narr = 7, ne = (uint32_t)count;
	int bad = fwrite("OPDATA01", 1, 8, f) != 8 || fwrite(&narr, 4, 1, f) != 1;
	bad = bad || put_array(f, "offsets", 1, ne + 1, 1, offs);
	bad = bad || put_array(f, "pulse_feat", 0, (uint32_t)rows, OP_FEAT_PULSE, pf.p);
	bad = bad || put_array(f, "event_feat", 0, ne, OP_FEAT_EVENT, ef.p);
	bad = bad || put_array(f, "truth_dir", 0, ne, 3, tdir.p);
	bad = bad || put_array(f, "truth_log10e", 0, ne, 1, te.p);
	bad = bad || put_array(f, "truth_track", 0, ne, 1, tk.p);
	bad = bad || put_array(f, "linefit_dir", 0, ne, 3, lfd.p);
	if (fclose(f) != 0 || bad) {
		fprintf(stderr, "outpost-dataset: writing %s failed: %s\n", out, strerror(errno));
		return 1;
	}
	fprintf(stderr, "outpost-dataset: %ld events, %zu pulses -> %s\n", count, rows, out);
	return 0;
}
