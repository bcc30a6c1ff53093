/*
 * simgen.c — see simgen.h. The light model is deliberately simple (no ice layers, no
 * wavelength dependence) but physically shaped: what a reconstruction sees is timing that
 * follows the Cherenkov cone, smeared late by scattering, plus noise.
 */
#include "ingest/simgen.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define C_VAC 0.299792458 /* m/ns */
#define N_PHASE 1.32
#define N_GROUP 1.35
#define LAMBDA_ATT 40.0   /* m, effective attenuation */
#define WINDOW_NS 10000.0 /* readout window for noise */

struct op_simgen {
	op_simgen_config cfg;
	const op_geometry *geo;
	uint32_t nsens;
	uint64_t s[4];
	op_pulse *pulses;
	uint32_t cap;
	double *first_time; /* per sensor, for HLC; NAN = not hit */
	uint64_t now_ns;
	double cos_c, sin_c, tan_c;
};

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t next_u64(op_simgen *g) /* xoshiro256** */
{
	uint64_t *s = g->s, r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

static double uni(op_simgen *g)
{
	return (double)(next_u64(g) >> 11) * 0x1.0p-53;
}

static double gauss(op_simgen *g)
{
	double u = uni(g), v = uni(g);
	return sqrt(-2 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

static uint32_t poisson(op_simgen *g, double mu)
{
	if (mu > 30) {
		double x = mu + sqrt(mu) * gauss(g);
		return x < 0 ? 0 : (uint32_t)(x + 0.5);
	}
	double l = exp(-mu), p = 1;
	uint32_t k = 0;
	do {
		k++;
		p *= uni(g);
	} while (p > l);
	return k - 1;
}

int op_simgen_open(const op_simgen_config *cfg, const op_geometry *geo, op_simgen **ret)
{
	op_simgen *g = calloc(1, sizeof(*g));
	uint64_t x;

	if (!g)
		return -ENOMEM;
	g->cfg = *cfg;
	if (!g->cfg.max_pulses)
		g->cfg.max_pulses = 5000;
	if (g->cfg.noise_hz < 0)
		g->cfg.noise_hz = 0;
	if (!g->cfg.rate_hz)
		g->cfg.rate_hz = 2700;
	g->geo = geo;
	g->nsens = op_geometry_id_limit(geo);
	g->cap = g->cfg.max_pulses + 1024;
	g->pulses = malloc(g->cap * sizeof(op_pulse));
	g->first_time = malloc(g->nsens * sizeof(double));
	if (!g->pulses || !g->first_time) {
		op_simgen_close(g);
		return -ENOMEM;
	}
	x = cfg->seed;
	for (int i = 0; i < 4; i++) { /* splitmix64 seeding */
		uint64_t z = (x += 0x9E3779B97F4A7C15ull);
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
		z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
		g->s[i] = z ^ (z >> 31);
	}
	g->cos_c = 1.0 / N_PHASE;
	g->sin_c = sqrt(1 - g->cos_c * g->cos_c);
	g->tan_c = g->sin_c / g->cos_c;
	g->now_ns = cfg->start_time_ns;
	*ret = g;
	return 0;
}

void op_simgen_close(op_simgen *g)
{
	if (!g)
		return;
	free(g->pulses);
	free(g->first_time);
	free(g);
}

static void add_pulse(op_simgen *g, uint32_t *n, uint32_t sensor, double t, double q)
{
	if (*n >= g->cap)
		return;
	g->pulses[*n] = (op_pulse){.sensor_id = sensor, .time_ns = (float)t, .charge_pe = (float)q, .flags = 0};
	(*n)++;
}

static int by_time(const void *a, const void *b)
{
	float x = ((const op_pulse *)a)->time_ns, y = ((const op_pulse *)b)->time_ns;
	return (x > y) - (x < y);
}

int op_simgen_next(op_simgen *g, op_sim_event *ev)
{
	op_sim_truth *tr = &ev->truth;
	double cz = 2 * uni(g) - 1, az = 2 * M_PI * uni(g), sz = sqrt(1 - cz * cz);
	double p0[3] = {(2 * uni(g) - 1) * 500, (2 * uni(g) - 1) * 500, (2 * uni(g) - 1) * 450};
	uint32_t n = 0;

	memset(tr, 0, sizeof(*tr));
	tr->kind = uni(g) < g->cfg.track_fraction ? OP_SIM_TRACK : OP_SIM_CASCADE;
	tr->zenith_rad = acos(cz);
	tr->azimuth_rad = az;
	for (int k = 0; k < 3; k++)
		tr->dir[k] = -(k == 0 ? sz * cos(az) : k == 1 ? sz * sin(az) : cz);
	if (tr->kind == OP_SIM_TRACK)
		tr->energy_gev = pow(10, 2 + 3 * uni(g));
	else
		tr->energy_gev = pow(10, 3 + 3 * uni(g));
	/* light yield: tracks radiate along their length, cascades at a point */
	double yield = tr->kind == OP_SIM_TRACK ? 60 * pow(tr->energy_gev / 1000, 0.7)
						: 400 * pow(tr->energy_gev / 1000, 0.9);
	if (tr->kind == OP_SIM_TRACK) {
		/* closest approach of the line to the detector centre, for the truth record */
		double l = -(p0[0] * tr->dir[0] + p0[1] * tr->dir[1] + p0[2] * tr->dir[2]);
		for (int k = 0; k < 3; k++)
			tr->vertex_m[k] = p0[k] + l * tr->dir[k];
	} else {
		memcpy(tr->vertex_m, p0, sizeof(p0));
	}

	for (uint32_t id = 0; id < g->nsens; id++) {
		float x[3];
		g->first_time[id] = NAN;
		if (op_geometry_position(g->geo, id, x) < 0)
			continue;
		double w[3] = {x[0] - p0[0], x[1] - p0[1], x[2] - p0[2]}, d, t;
		if (tr->kind == OP_SIM_TRACK) {
			double l = w[0] * tr->dir[0] + w[1] * tr->dir[1] + w[2] * tr->dir[2];
			double r2 = w[0] * w[0] + w[1] * w[1] + w[2] * w[2] - l * l;
			d = sqrt(r2 > 0 ? r2 : 0);
			/* emitted at s = l - d/tan(theta_c), travels d/sin(theta_c) in ice */
			t = (l - d / g->tan_c) / C_VAC + d / g->sin_c / (C_VAC / N_GROUP);
		} else {
			d = sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
			t = d / (C_VAC / N_GROUP);
		}
		if (d < 1)
			d = 1;
		double mu = yield * exp(-d / LAMBDA_ATT) / d;
		if (mu < 1e-4)
			continue;
		uint32_t npe = poisson(g, mu);
		if (npe == 0)
			continue;
		/* scattering delay: exponential, mean growing with distance; PMT jitter 2 ns */
		double delay = -log(1 - uni(g)) * (1.0 + 2.0 * d * d / (d + 30.0)) + 2 * gauss(g);
		double q = npe * (1 + 0.3 * gauss(g));
		add_pulse(g, &n, id, t + delay, q < 0.1 ? 0.1 : q);
	}
	/* dark noise over the readout window */
	double t_lo = -2000, mean_noise = g->cfg.noise_hz * 1e-9 * WINDOW_NS * g->nsens;
	if (n > 0) {
		double tmin = g->pulses[0].time_ns;
		for (uint32_t i = 1; i < n; i++)
			if (g->pulses[i].time_ns < tmin)
				tmin = g->pulses[i].time_ns;
		t_lo = tmin - 2000;
	}
	uint32_t nn = poisson(g, mean_noise);
	for (uint32_t i = 0; i < nn; i++) {
		uint32_t id = (uint32_t)(uni(g) * g->nsens);
		float x[3];
		if (op_geometry_position(g->geo, id, x) < 0)
			continue;
		double q = 1 + 0.3 * gauss(g);
		add_pulse(g, &n, id, t_lo + uni(g) * WINDOW_NS, q < 0.1 ? 0.1 : q);
	}
	qsort(g->pulses, n, sizeof(op_pulse), by_time);
	if (n > g->cfg.max_pulses)
		n = g->cfg.max_pulses;
	/* HLC: a neighbour on the same string (±1, ±2 DOMs) hit within 1 us */
	for (uint32_t i = 0; i < n; i++)
		if (isnan(g->first_time[g->pulses[i].sensor_id]))
			g->first_time[g->pulses[i].sensor_id] = g->pulses[i].time_ns;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t id = g->pulses[i].sensor_id, dom = id % 60;
		for (int dd = -2; dd <= 2; dd++) {
			int nd = (int)dom + dd;
			if (dd == 0 || nd < 0 || nd >= 60)
				continue;
			double ft = g->first_time[id - dom + (uint32_t)nd];
			if (!isnan(ft) && fabs(ft - g->pulses[i].time_ns) < 1000)
				g->pulses[i].flags |= OP_PULSE_F_HLC;
		}
	}
	/* times relative to the first pulse; the event's detector time is that pulse's */
	double t0 = n ? g->pulses[0].time_ns : 0;
	for (uint32_t i = 0; i < n; i++)
		g->pulses[i].time_ns = (float)(g->pulses[i].time_ns - t0);
	g->now_ns += (uint64_t)(-log(1 - uni(g)) / g->cfg.rate_hz * 1e9) + 1;
	ev->pulses = g->pulses;
	ev->n = n;
	ev->detector_time_ns = g->now_ns;
	return 0;
}
