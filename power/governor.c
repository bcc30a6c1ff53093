/*
 * governor.c — the PI loop, the actuator map and the figures (see governor.h for the law).
 */
#include "power/governor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JPE_RING 600 /* periods of joules-per-event kept for the percentiles (10 min at 1 s) */

struct op_governor {
	op_governor_params p;
	double u, e_prev, setpoint;
	int have_e_prev;
	double gain_w, idle_w; /* learnt plant: P ≈ idle + gain·u when saturated */
	int gain_known;
	/* window of measured period powers */
	double *win;
	unsigned win_cap, win_n, win_head;
	double jpe[JPE_RING];
	unsigned jpe_n, jpe_head;
	double last_power, last_budget;
	uint64_t periods, failsafe_periods, over_windows, over_1s;
	/* stuck low power */
	double rate_per_u; /* events/s per unit u when saturated, the best learnt */
	double stuck_s, clear_s;
	int stuck;
	/* a budget out of reach: over it at the slowest setting */
	double floor_over_s, floor_clear_s, floor_budget, last_util;
	double win_mean; /* of the periods in the window so far (record) */
	int unreachable;
};

void op_governor_defaults(op_governor_params *p)
{
	memset(p, 0, sizeof(*p));
	p->period_s = 1.0;
	p->kp = 0.1;
	p->ki = 0.5;
	p->margin = 0.015;
	p->batch_max = 256;
	p->batch_min = 16;
	p->batch_sat = 0;
	p->duty_min = 0.05;
	p->clock_min_frac = 0.4;
	p->limit_min_frac = 0.5;
	p->stuck_after_s = 180;
}

static double clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* The batch factor: throughput grows with batch up to batch_sat. */
static double batch_factor(const op_governor_params *p, uint32_t b)
{
	if (!p->batch_sat || b >= p->batch_sat)
		return 1.0;
	return (double)b / p->batch_sat;
}

double op_power_u_floor(const op_governor_params *p)
{
	double f = 1.0;
	if (p->batch_sat)
		f *= batch_factor(p, p->batch_min);
	f *= clampd(p->duty_min, 1e-3, 1.0);
	if (p->clocks)
		f *= clampd(p->clock_min_frac, 0.05, 1.0);
	if (p->power_limit)
		f *= clampd(p->limit_min_frac, 0.05, 1.0);
	return f;
}

void op_power_map(const op_governor_params *p, double u, op_power_setting *o)
{
	double rest = clampd(u, op_power_u_floor(p), 1.0);

	memset(o, 0, sizeof(*o));
	o->batch = p->batch_max;
	o->duty = o->clock_frac = o->limit_frac = 1.0;
	o->limiting = "none";
	/* 1. batch, where it changes throughput */
	if (p->batch_sat && rest < batch_factor(p, p->batch_max)) {
		double want = rest * p->batch_sat;
		uint32_t b = want < p->batch_min ? p->batch_min : (uint32_t)ceil(want);
		if (b > p->batch_max)
			b = p->batch_max;
		o->batch = b;
		rest /= batch_factor(p, b);
		o->limiting = "batch";
	} else if (p->batch_sat) {
		rest /= batch_factor(p, p->batch_max);
	}
	/* 2. duty cycle */
	if (rest < 1.0 - 1e-9) {
		o->duty = clampd(rest, clampd(p->duty_min, 1e-3, 1.0), 1.0);
		rest /= o->duty;
		o->limiting = "duty";
	}
	/* 3. clocks */
	if (p->clocks && rest < 1.0 - 1e-9) {
		o->clock_frac = clampd(rest, p->clock_min_frac, 1.0);
		rest /= o->clock_frac;
		o->limiting = "clocks";
	}
	/* 4. power limit */
	if (p->power_limit && rest < 1.0 - 1e-9) {
		o->limit_frac = clampd(rest, p->limit_min_frac, 1.0);
		o->limiting = "power_limit";
	}
	o->u = batch_factor(p, o->batch) / (p->batch_sat ? batch_factor(p, p->batch_max) : 1.0) * o->duty *
	       (p->clocks ? o->clock_frac : 1.0) * (p->power_limit ? o->limit_frac : 1.0);
}

void op_governor_safe(const op_governor_params *p, op_power_setting *o)
{
	op_power_map(p, 0.0, o);
	o->failsafe = 1;
	o->limiting = "failsafe";
}

op_governor *op_governor_new(const op_governor_params *p, double window_s)
{
	op_governor *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->p = *p;
	g->win_cap = (unsigned)ceil(window_s / (p->period_s > 0 ? p->period_s : 1.0));
	if (g->win_cap < 1)
		g->win_cap = 1;
	g->win = calloc(g->win_cap, sizeof(double));
	if (!g->win) {
		free(g);
		return NULL;
	}
	/* Start at the safe setting and climb: nothing is known of the plant yet. */
	g->u = op_power_u_floor(p);
	g->idle_w = p->idle_hint_w;
	return g;
}

void op_governor_free(op_governor *g)
{
	if (g)
		free(g->win);
	free(g);
}

void op_governor_set_params(op_governor *g, const op_governor_params *p)
{
	g->p = *p;
	if (p->idle_hint_w > 0)
		g->idle_w = p->idle_hint_w;
	g->u = clampd(g->u, op_power_u_floor(p), 1.0);
}

static void record(op_governor *g, const op_governor_input *in)
{
	g->win[g->win_head] = in->power_w;
	g->win_head = (g->win_head + 1) % g->win_cap;
	if (g->win_n < g->win_cap)
		g->win_n++;
	double sum = 0;
	for (unsigned i = 0; i < g->win_n; i++)
		sum += g->win[i];
	g->win_mean = sum / g->win_n;
	if (in->budget_w > 0) {
		if (in->power_w > 1.10 * in->budget_w)
			g->over_1s++;
		if (g->win_n == g->win_cap && g->win_mean > in->budget_w * 1.0001)
			g->over_windows++;
	}
	if (in->events > 0 && in->dt_s > 0) {
		g->jpe[g->jpe_head] = in->power_w * in->dt_s / in->events;
		g->jpe_head = (g->jpe_head + 1) % JPE_RING;
		if (g->jpe_n < JPE_RING)
			g->jpe_n++;
	}
}

/* Learn the plant from this period (measured under the setting u of the period before). */
static void learn(op_governor *g, const op_governor_input *in, double u_applied)
{
	double rho = in->utilisation;
	if (isnan(rho))
		return;
	if (rho < 0.02 && g->p.idle_hint_w <= 0) /* idle: what the node draws doing nothing */
		g->idle_w = g->idle_w > 0 ? 0.7 * g->idle_w + 0.3 * in->power_w : in->power_w;
	/* Power follows the capacity actually used (u·rho): learn the gain whenever inference did
	 * measurable work and the dynamic power is large enough that noise does not decide it. */
	double used = u_applied * rho;
	if (rho >= 0.05 && used > 1e-3 && in->power_w - g->idle_w >= 0.1 * in->power_w) {
		double gain = (in->power_w - g->idle_w) / used;
		if (gain > 0.01) {
			g->gain_w = g->gain_known ? 0.6 * g->gain_w + 0.4 * gain : gain;
			g->gain_known = 1;
		}
	}
	if (rho >= 0.9 && u_applied > 1e-3) {
		double rpu = in->events / in->dt_s / u_applied;
		g->rate_per_u = rpu > g->rate_per_u ? rpu : 0.999 * g->rate_per_u + 0.001 * rpu;
	}
}

static void watch_stuck(op_governor *g, const op_governor_input *in, double u_applied)
{
	/* Running flat out (not throttled, saturated), far under budget, yet far slower than this
	 * node has shown it can be: something holds it in a low-power state (clocks stuck after a
	 * thermal event, a throttled CPU). The governor cannot fix it; it reports it. */
	int cond = in->budget_w > 0 && u_applied > 0.99 && !isnan(in->utilisation) && in->utilisation >= 0.9 &&
		   in->power_w < 0.6 * in->budget_w && g->rate_per_u > 0 &&
		   in->events / in->dt_s < 0.5 * g->rate_per_u;
	if (cond) {
		g->stuck_s += in->dt_s;
		g->clear_s = 0;
		if (g->stuck_s >= g->p.stuck_after_s)
			g->stuck = 1;
	} else {
		g->clear_s += in->dt_s;
		if (g->clear_s >= 30) {
			g->stuck = 0;
			g->stuck_s = 0;
		}
	}
}

static void floor_reset(op_governor *g)
{
	g->floor_over_s = g->floor_clear_s = 0;
	g->unreachable = 0;
}

static void watch_floor(op_governor *g, const op_governor_input *in, double u_applied, double floor_u)
{
	/* At the slowest setting every actuator allows, and the window's mean (what the budget
	 * bounds) still over the budget, without a break for a whole window: the window then holds
	 * nothing but periods at that setting, so the budget cannot be held by throttling. What
	 * draws the power is not inference (an idle draw, another load), or the floor the operator
	 * set keeps more than the budget leaves. Someone has to know. Cleared after 30 s of not;
	 * any other budget starts the watch afresh (floor_reset). "At the slowest setting" allows
	 * a tenth of the floor's capacity above it: the loop's derivative term lifts u off the
	 * floor for a period now and then on a noisy reading (seen: 0.0504 for 0.05), which is
	 * not the governor holding back. */
	double window = g->win_cap * (g->p.period_s > 0 ? g->p.period_s : 1.0);
	int cond = in->budget_w > 0 && u_applied <= floor_u * 1.1 && g->win_mean > in->budget_w * 1.0001;
	if (cond) {
		g->floor_over_s += in->dt_s;
		g->floor_clear_s = 0;
		if (g->floor_over_s >= window - 1e-9)
			g->unreachable = 1;
	} else {
		g->floor_over_s = 0;
		g->floor_clear_s += in->dt_s;
		if (g->floor_clear_s >= 30)
			g->unreachable = 0;
	}
}

void op_governor_step(op_governor *g, const op_governor_input *in, op_power_setting *out)
{
	const op_governor_params *p = &g->p;
	double floor_u = op_power_u_floor(p), u_applied = g->u;

	g->periods++;
	if (isnan(in->power_w) || in->power_w < 0) {
		/* Fail-safe: no valid reading. The safe setting now; climb again from it later. */
		g->failsafe_periods++;
		floor_reset(g); /* nothing measured: nothing known of the budget's reach */
		g->u = floor_u;
		g->have_e_prev = 0;
		op_governor_safe(p, out);
		return;
	}
	g->last_power = in->power_w;
	g->last_budget = in->budget_w;
	g->last_util = in->utilisation;
	record(g, in);
	learn(g, in, u_applied);
	watch_stuck(g, in, u_applied);
	if (in->budget_w != g->floor_budget)
		floor_reset(g);
	g->floor_budget = in->budget_w;
	watch_floor(g, in, u_applied, floor_u);
	if (in->budget_w <= 0) { /* no budget: measure only */
		g->u = 1.0;
		g->setpoint = 0;
		g->have_e_prev = 0;
		op_power_map(p, 1.0, out);
		return;
	}
	double setpoint = in->budget_w * (1.0 - p->margin);
	/* The error of the period just measured is against the setpoint it ran under; a new budget
	 * is fed forward: a cut in full at once (the ceiling holds from the first period under
	 * it), a rise at the cautious gain. */
	int new_budget = g->setpoint <= 0;
	double sp_old = new_budget ? setpoint : g->setpoint;
	double e = sp_old - in->power_w;
	double ff = setpoint - sp_old;
	g->setpoint = setpoint;
	/* Until the gain is known, assume the whole reading is dynamic power (an over-estimate:
	 * cautious steps). */
	double gain = g->gain_known ? g->gain_w : (in->power_w > 1 ? in->power_w / (u_applied > 1e-3 ? u_applied : 1e-3)
								  : setpoint);
	double du = (p->ki * e + (g->have_e_prev ? p->kp * (e - g->e_prev) : 0) + (ff < 0 ? ff : p->ki * ff)) / gain;
	double u = g->u + du;
	/* A new or lower budget: go straight to the capacity the learnt plant says it allows; a
	 * first budget with nothing learnt yet (a model still loading draws little, so the reading
	 * says nothing of full load) starts from the floor and climbs, rather than run free until
	 * the load arrives and the integral catches up. */
	if ((ff < 0 || new_budget) && g->gain_known) {
		double u_model = (setpoint - g->idle_w) / g->gain_w;
		if (u > u_model)
			u = u_model;
	} else if (new_budget && u > floor_u) {
		u = floor_u;
	}
	/* Anti-windup against light input: do not run ahead of what inference uses; and with no
	 * word of what it uses (not started, loading a model), do not climb at all. */
	if (isnan(in->utilisation)) {
		if (u > g->u)
			u = g->u;
	} else if (in->utilisation < 0.9) {
		double used = u_applied * in->utilisation;
		double ceiling = 1.08 * used + 0.01;
		if (u > ceiling)
			u = ceiling;
	}
	g->u = clampd(u, floor_u, 1.0);
	g->e_prev = e;
	g->have_e_prev = 1;
	op_power_map(p, g->u, out);
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void op_governor_figures(const op_governor *g, op_power_figures *f)
{
	memset(f, 0, sizeof(*f));
	f->power_w = g->last_power;
	f->budget_w = g->last_budget;
	f->headroom_w = g->last_budget > 0 ? g->last_budget - g->last_power : 0;
	double sum = 0, mx = 0;
	for (unsigned i = 0; i < g->win_n; i++) {
		sum += g->win[i];
		if (g->win[i] > mx)
			mx = g->win[i];
	}
	f->window_mean_w = g->win_n ? sum / g->win_n : 0;
	f->max_1s_w = mx;
	if (g->jpe_n) {
		double tmp[JPE_RING];
		memcpy(tmp, g->jpe, g->jpe_n * sizeof(double));
		qsort(tmp, g->jpe_n, sizeof(double), cmpd);
		f->j_per_event_p50 = tmp[(g->jpe_n - 1) / 2];
		f->j_per_event_p99 = tmp[(unsigned)floor(0.99 * (g->jpe_n - 1))];
	}
	f->gain_w = g->gain_known ? g->gain_w : 0;
	f->idle_w = g->idle_w;
	f->periods = g->periods;
	f->failsafe_periods = g->failsafe_periods;
	f->over_budget_windows = g->over_windows;
	f->over_1s_periods = g->over_1s;
	f->stuck = g->stuck;
	f->stuck_for_s = g->stuck_s;
	f->unreachable = g->unreachable;
	f->unreachable_for_s = g->floor_over_s;
	f->utilisation = g->last_util;
}
