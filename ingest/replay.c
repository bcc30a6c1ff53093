/*
 * replay.c — see replay.h. The files are read whole (the largest is 9 MB) and every line is
 * checked; a bad line is an error naming the file and line, never a silently skipped pulse.
 */
#include "ingest/replay.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ev {
	long event_no;
	uint32_t first, n;
	op_sim_truth truth;
	int has_truth;
} ev;

struct op_replay {
	op_pulse *p;
	size_t np, capp;
	ev *e;
	uint32_t ne, cape;
};

static int split(char *line, char **f, int max)
{
	int n = 0;
	for (char *s = line; n < max;) {
		f[n++] = s;
		char *c = strchr(s, ',');
		if (!c)
			break;
		*c = 0;
		s = c + 1;
	}
	return n;
}

static int num(const char *s, double *v)
{
	char *end;
	*v = strtod(s, &end);
	return end != s && (*end == 0 || *end == '\r' || *end == '\n') && isfinite(*v) ? 0 : -1;
}

static int by_time(const void *a, const void *b)
{
	float x = ((const op_pulse *)a)->time_ns, y = ((const op_pulse *)b)->time_ns;
	return (x > y) - (x < y);
}

int op_replay_open(const char *pulses_csv, const char *truth_csv, op_replay **ret, char *err, size_t errcap)
{
	FILE *f = fopen(pulses_csv, "r");
	op_replay *r = calloc(1, sizeof(*r));
	char line[1024], *fld[16];
	int photons = 0, lineno = 1, rc = -EINVAL;

	if (!r || !f) {
		snprintf(err, errcap, "%s: %s", pulses_csv, strerror(f ? ENOMEM : errno));
		rc = f ? -ENOMEM : -errno;
		goto fail;
	}
	if (!fgets(line, sizeof(line), f)) {
		snprintf(err, errcap, "%s:1: empty file", pulses_csv);
		goto fail;
	}
	if (!strncmp(line, "event_no,string_id,sensor_id,x_m,y_m,z_m_icecube,t_ns", 52))
		photons = 1;
	else if (strncmp(line, "event_no,string,dom_number,dom_type,x_m,y_m,z_m,t_ns,charge_pe,hlc", 66)) {
		snprintf(err, errcap, "%s:1: not a pulse or photon file (unexpected header)", pulses_csv);
		goto fail;
	}
	while (fgets(line, sizeof(line), f)) {
		double v[10];
		int nf, want = photons ? 7 : 10;
		lineno++;
		if (line[0] == '\n' || line[0] == '\r')
			continue;
		nf = split(line, fld, 16);
		if (nf != want) {
			snprintf(err, errcap, "%s:%d: %d fields, expected %d", pulses_csv, lineno, nf, want);
			goto fail;
		}
		for (int i = 0; i < nf; i++)
			if (num(fld[i], &v[i]) < 0) {
				snprintf(err, errcap, "%s:%d: field %d is not a number", pulses_csv, lineno, i + 1);
				goto fail;
			}
		double string = v[1], dom = v[2], t = photons ? v[6] : v[7], q = photons ? 1.0 : v[8];
		/* whole numbers where the file means one (1.5 would be read as another sensor), and
		 * what a float carries (1e39 ns became infinity, and the event's times NaN) */
		if (v[0] != floor(v[0]) || string != floor(string) || dom != floor(dom) || fabs(v[0]) > 9e15) {
			snprintf(err, errcap, "%s:%d: event_no, string and DOM must be whole numbers", pulses_csv, lineno);
			goto fail;
		}
		if (fabs(t) > FLT_MAX || fabs(q) > FLT_MAX) {
			snprintf(err, errcap, "%s:%d: time or charge beyond a float's range", pulses_csv, lineno);
			goto fail;
		}
		long event_no = (long)v[0];
		if (string < 1 || dom < 1 || string > 10000 || dom > 10000) {
			snprintf(err, errcap, "%s:%d: string/DOM out of range", pulses_csv, lineno);
			goto fail;
		}
		if (r->ne == 0 || r->e[r->ne - 1].event_no != event_no) {
			if (r->ne == r->cape) {
				r->cape = r->cape ? 2 * r->cape : 64;
				ev *ne = realloc(r->e, r->cape * sizeof(ev));
				if (!ne)
					goto nomem;
				r->e = ne;
			}
			memset(&r->e[r->ne], 0, sizeof(ev));
			r->e[r->ne].event_no = event_no;
			r->e[r->ne].first = (uint32_t)r->np;
			r->ne++;
		}
		if (r->np == r->capp) {
			r->capp = r->capp ? 2 * r->capp : 4096;
			op_pulse *np = realloc(r->p, r->capp * sizeof(op_pulse));
			if (!np)
				goto nomem;
			r->p = np;
		}
		r->p[r->np++] = (op_pulse){.sensor_id = (uint32_t)((string - 1) * 60 + (dom - 1)),
					   .time_ns = (float)t, .charge_pe = (float)q,
					   .flags = (uint16_t)(!photons && v[9] != 0 ? OP_PULSE_F_HLC : 0)};
		r->e[r->ne - 1].n++;
	}
	fclose(f);
	f = NULL;
	for (uint32_t i = 0; i < r->ne; i++) {
		op_pulse *p = r->p + r->e[i].first;
		qsort(p, r->e[i].n, sizeof(op_pulse), by_time);
		float t0 = p[0].time_ns;
		for (uint32_t k = 0; k < r->e[i].n; k++)
			p[k].time_ns -= t0;
	}
	if (truth_csv) {
		f = fopen(truth_csv, "r");
		if (!f || !fgets(line, sizeof(line), f)) {
			snprintf(err, errcap, "%s: cannot read", truth_csv);
			goto fail;
		}
		/* columns by name: event_no, energy_GeV, zenith_rad, azimuth_rad, pid or initial_state_type */
		int ce = -1, cz = -1, ca = -1, cn = -1, cp = -1, nf = split(line, fld, 16);
		for (int i = 0; i < nf; i++) {
			fld[i][strcspn(fld[i], "\r\n")] = 0;
			if (!strcmp(fld[i], "event_no"))
				cn = i;
			else if (!strcmp(fld[i], "energy_GeV"))
				ce = i;
			else if (!strcmp(fld[i], "zenith_rad"))
				cz = i;
			else if (!strcmp(fld[i], "azimuth_rad"))
				ca = i;
			else if (!strcmp(fld[i], "pid") || !strcmp(fld[i], "initial_state_type"))
				cp = i;
		}
		if (cn < 0 || ce < 0 || cz < 0 || ca < 0) {
			snprintf(err, errcap, "%s:1: truth file lacks event_no, energy_GeV, zenith_rad or azimuth_rad", truth_csv);
			goto fail;
		}
		int need = cn > ce ? cn : ce;
		need = cz > need ? cz : need;
		need = ca > need ? ca : need;
		need = (cp > need ? cp : need) + 1;
		lineno = 1;
		while (fgets(line, sizeof(line), f)) {
			double v[16];
			lineno++;
			if (line[0] == '\n' || line[0] == '\r')
				continue;
			nf = split(line, fld, 16);
			if (nf < need) { /* (the columns past the row's end were read uninitialised) */
				snprintf(err, errcap, "%s:%d: %d fields, the header's columns need %d", truth_csv, lineno, nf, need);
				goto fail;
			}
			for (int i = 0; i < nf; i++)
				if (num(fld[i], &v[i]) < 0) {
					snprintf(err, errcap, "%s:%d: field %d is not a number", truth_csv, lineno, i + 1);
					goto fail;
				}
			for (uint32_t i = 0; i < r->ne; i++) {
				if (r->e[i].event_no != (long)v[cn])
					continue;
				op_sim_truth *t = &r->e[i].truth;
				t->energy_gev = v[ce];
				t->zenith_rad = v[cz];
				t->azimuth_rad = v[ca];
				t->dir[0] = -sin(v[cz]) * cos(v[ca]);
				t->dir[1] = -sin(v[cz]) * sin(v[ca]);
				t->dir[2] = -cos(v[cz]);
				/* muon-neutrino charged current makes a track; the rest cascades */
				t->kind = cp >= 0 && fabs(v[cp]) == 14 ? OP_SIM_TRACK : OP_SIM_CASCADE;
				r->e[i].has_truth = 1;
			}
		}
		fclose(f);
		f = NULL;
		/* an event without its truth would be scored (and trained on) as energy 0, straight up */
		for (uint32_t i = 0; i < r->ne; i++)
			if (!r->e[i].has_truth) {
				snprintf(err, errcap, "%s: event %ld (in %s) has no truth row", truth_csv, r->e[i].event_no,
					 pulses_csv);
				goto fail;
			}
	}
	if (r->ne == 0) {
		snprintf(err, errcap, "%s: no events", pulses_csv);
		goto fail;
	}
	*ret = r;
	return 0;
nomem:
	rc = -ENOMEM;
	snprintf(err, errcap, "out of memory reading %s", pulses_csv);
fail:
	if (f)
		fclose(f);
	op_replay_close(r);
	return rc;
}

void op_replay_close(op_replay *r)
{
	if (!r)
		return;
	free(r->p);
	free(r->e);
	free(r);
}

uint32_t op_replay_count(const op_replay *r)
{
	return r->ne;
}

const op_pulse *op_replay_event(const op_replay *r, uint32_t i, uint32_t *n, op_sim_truth *truth)
{
	*n = r->e[i].n;
	if (truth)
		*truth = r->e[i].truth;
	return r->p + r->e[i].first;
}
