/*
 * plant.c — the simulated node (model in plant.h).
 */
#include "power/plant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BIN_S 0.01
#define MAX_BINS 1000

struct op_plant {
	op_plant_params p;
	double bins[MAX_BINS]; /* energy per 10 ms bin, the last nbins */
	unsigned nbins, head;
	double cur_bin_j, cur_bin_t; /* the bin being filled */
	double last_power, energy_j, queue, util;
	uint64_t rng;
};

void op_plant_defaults(op_plant_params *p)
{
	memset(p, 0, sizeof(*p));
	p->idle_w = 30;
	p->full_w = 130;
	p->rate_full = 20000;
	p->clock_exp = 2.4;
	p->noise_w = 1.0;
	p->lag_s = 1.0;
	p->seed = 1;
}

op_plant *op_plant_new(const op_plant_params *p)
{
	op_plant *pl = calloc(1, sizeof(*pl));
	if (!pl)
		return NULL;
	pl->p = *p;
	if (pl->p.event_j <= 0 && pl->p.rate_full > 0)
		pl->p.event_j = (pl->p.full_w - pl->p.idle_w) / pl->p.rate_full;
	pl->nbins = (unsigned)(pl->p.lag_s / BIN_S + 0.5);
	if (pl->nbins < 1)
		pl->nbins = 1;
	if (pl->nbins > MAX_BINS)
		pl->nbins = MAX_BINS;
	pl->rng = p->seed ? p->seed : 1;
	/* the trailing window starts at idle: the node was on before the governor */
	for (unsigned i = 0; i < pl->nbins; i++)
		pl->bins[i] = pl->p.idle_w * BIN_S;
	pl->last_power = pl->p.idle_w;
	return pl;
}

void op_plant_free(op_plant *pl)
{
	free(pl);
}

static void advance(op_plant *pl, double dt, double watts)
{
	pl->last_power = watts;
	pl->energy_j += watts * dt;
	while (dt > 1e-12) {
		double piece = BIN_S - pl->cur_bin_t;
		if (piece > dt)
			piece = dt;
		pl->cur_bin_j += watts * piece;
		pl->cur_bin_t += piece;
		dt -= piece;
		if (pl->cur_bin_t >= BIN_S - 1e-12) {
			pl->bins[pl->head] = pl->cur_bin_j;
			pl->head = (pl->head + 1) % pl->nbins;
			pl->cur_bin_j = pl->cur_bin_t = 0;
		}
	}
}

static double event_j_at(const op_plant *pl, double c)
{
	return pl->p.event_j * pow(c, pl->p.clock_exp - 1.0);
}

double op_plant_run(op_plant *pl, double dt, double offered_rate, const op_power_setting *set)
{
	double c = set->clock_frac > 0 ? set->clock_frac : 1.0;
	double bf = pl->p.batch_sat && set->batch < pl->p.batch_sat ? (double)set->batch / pl->p.batch_sat : 1.0;
	double cap = pl->p.rate_full * bf * set->duty * c * (set->limit_frac > 0 ? set->limit_frac : 1.0);
	double want = pl->queue + offered_rate * dt;
	double done = cap * dt < want ? cap * dt : want;
	pl->queue = want - done;
	pl->util = cap > 0 ? done / (cap * dt) : 1.0;
	advance(pl, dt, pl->p.idle_w + done / dt * event_j_at(pl, c));
	return done;
}

void op_plant_work(op_plant *pl, double dt, double events, double clock_frac)
{
	if (dt <= 0)
		return;
	advance(pl, dt, pl->p.idle_w + events / dt * event_j_at(pl, clock_frac > 0 ? clock_frac : 1.0));
}

double op_plant_power(const op_plant *pl)
{
	return pl->last_power;
}

double op_plant_energy_j(const op_plant *pl)
{
	return pl->energy_j;
}

double op_plant_queue(const op_plant *pl)
{
	return pl->queue;
}

double op_plant_utilisation(const op_plant *pl)
{
	return pl->util;
}

static double gauss(op_plant *pl)
{
	/* xorshift64* and Box–Muller */
	double u[2];
	for (int i = 0; i < 2; i++) {
		pl->rng ^= pl->rng >> 12;
		pl->rng ^= pl->rng << 25;
		pl->rng ^= pl->rng >> 27;
		u[i] = ((pl->rng * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
	}
	if (u[0] < 1e-300)
		u[0] = 1e-300;
	return sqrt(-2.0 * log(u[0])) * cos(2 * M_PI * u[1]);
}

double op_plant_read(op_plant *pl)
{
	double j = 0;
	for (unsigned i = 0; i < pl->nbins; i++)
		j += pl->bins[i];
	/* the full bins cover nbins·BIN_S; the partial one shifts the window by its part */
	double mean = (j - (pl->cur_bin_t / BIN_S) * pl->bins[pl->head] + pl->cur_bin_j) / (pl->nbins * BIN_S);
	return mean + pl->p.noise_w * gauss(pl);
}
