/*
 * governor.h — the power-budget governor: a PI loop on measured node power that holds the
 * site's budget by throttling inference, gentlest actuator first (ARCHITECTURE.md invariant 6).
 *
 * The loop runs once per period (power.period, default 1 s) in the supervisor. Its state is one
 * number, u ∈ [u_floor, 1]: the fraction of full inference capacity the budget allows. The
 * actuators turn u into settings, in order, each taking over only when the one before it is at
 * its limit (op_power_map):
 *
 *   1. batch size   — only where throughput scales with it (a GPU below full occupancy);
 *   2. duty cycle   — infer works for a fraction of each interval and sleeps the rest;
 *   3. GPU clocks   — NVML locked clocks, where the driver allows it;
 *   4. power limit  — NVML power management limit, where the driver allows it (not on GB10).
 *
 * Control law (velocity form, so the clamps are the anti-windup: the state never leaves its
 * range): with e = setpoint − P, and G the plant's gain dP/du learnt from measurements,
 *
 *     u[k] = clamp(u[k−1] + (kp·(e[k] − e[k−1]) + ki·e[k]) / G, u_floor, u_ceiling)
 *
 * The sensors average over about one period (NVML's power is a 1 s mean), so the plant is one
 * period of delay: ki·G_true = 1 would be deadbeat. Power follows the capacity actually used,
 * u·rho (rho: the share of its allowed time inference worked rather than waited for input), so
 * G is estimated as (P − P_idle)/(u·rho) from every period with measurable work, with P_idle
 * learnt from periods when inference was idle (0 until then, which over-estimates G: slower,
 * never overshooting). ki = 0.5 by default: a step settles to 3% in 5 periods, and sensor noise
 * is passed on at 0.6×. A new or lower budget is fed forward: u goes at once to the capacity
 * the learnt plant says the new setpoint allows.
 *
 * u_ceiling: while inference is not using its allowance (input lighter than capacity), u may
 * not run ahead of what is used (8% above it): a sudden surge of events then raises power by
 * at most that, instead of jumping to full power from a wound-up integrator. With no word of
 * the utilisation (inference starting, loading its model) u does not climb at all.
 *
 * Fail-safe: a period with no valid reading (any counted sensor unreadable) drops to the safe
 * setting (every actuator at its minimum) in that same period, and recovers from there when
 * readings return. The infer stage also falls back to it by itself when it stops hearing from
 * the governor (the governor failed).
 */
#ifndef OP_POWER_GOVERNOR_H
#define OP_POWER_GOVERNOR_H
#include <stdint.h>

/* What the actuators are set to. */
typedef struct op_power_setting {
	double u;          /* capacity fraction the setting allows (product of the factors) */
	uint32_t batch;    /* inference batch size (events) */
	double duty;       /* fraction of time inference may work, (0, 1] */
	double clock_frac; /* GPU clock as a fraction of its maximum (1 = not locked) */
	double limit_frac; /* GPU power limit as a fraction of its default (1 = not set) */
	const char *limiting; /* the actuator now limiting: "none", "batch", "duty", "clocks", "power_limit" */
	int failsafe;      /* no reading: the safe setting */
} op_power_setting;

typedef struct op_governor_params {
	double period_s;   /* 1 */
	double kp, ki;     /* normalised gains (ki·G/G_true; 1 = deadbeat): 0.1, 0.7 */
	double margin;     /* setpoint = budget·(1 − margin): 0.015 */
	/* actuators: each multiplies capacity by a factor in [lo, 1] */
	uint32_t batch_max;  /* configured batch size */
	uint32_t batch_min;  /* smallest batch the governor may set */
	uint32_t batch_sat;  /* batch at which throughput stops growing; 0: batch is no actuator (CPU) */
	double duty_min;     /* (0, 1] */
	int clocks;          /* GPU locked clocks are settable */
	double clock_min_frac;
	int power_limit;     /* GPU power limit is settable */
	double limit_min_frac;
	double idle_hint_w;  /* the node's idle draw if known (0: learn it) */
	double stuck_after_s; /* "stuck low power" after this long (180) */
} op_governor_params;

typedef struct op_governor_input {
	double power_w;     /* the period's measured node power; NaN: no valid reading */
	double budget_w;    /* the budget now (schedule or override); <= 0: none (measure only) */
	double utilisation; /* fraction of the allowed capacity inference used, [0, 1]; NaN unknown */
	double events;      /* events inferred during the period */
	double dt_s;        /* length of the period */
} op_governor_input;

/* Figures for status and metrics. */
typedef struct op_power_figures {
	double power_w, budget_w, headroom_w; /* last period */
	double window_mean_w;    /* mean over the averaging window */
	double max_1s_w;         /* highest period in the window */
	double j_per_event_p50, j_per_event_p99; /* over the last 10 minutes of periods with events */
	double gain_w, idle_w;   /* the plant as learnt */
	uint64_t periods, failsafe_periods, over_budget_windows, over_1s_periods;
	int stuck;               /* throughput far below expectation at low power, for minutes */
	double stuck_for_s;
	int unreachable;         /* window mean over the budget at the slowest setting, a whole window */
	double unreachable_for_s; /* seconds of it without a break (0 once broken) */
	double utilisation;      /* the last period's: what inference used of what it was allowed */
} op_power_figures;

typedef struct op_governor op_governor;

void op_governor_defaults(op_governor_params *p);
/* Returns NULL on out of memory. window_s: the averaging window the budget holds over. */
op_governor *op_governor_new(const op_governor_params *p, double window_s);
void op_governor_free(op_governor *g);
/* New limits (a reload): the learnt plant and the state are kept. */
void op_governor_set_params(op_governor *g, const op_governor_params *p);
/* One period: the setting to apply now. */
void op_governor_step(op_governor *g, const op_governor_input *in, op_power_setting *out);
void op_governor_figures(const op_governor *g, op_power_figures *f);
/* The safe setting (every actuator at its minimum). */
void op_governor_safe(const op_governor_params *p, op_power_setting *out);
/* Pure: the actuator settings for capacity fraction u, gentlest actuator first. */
void op_power_map(const op_governor_params *p, double u, op_power_setting *out);
/* The smallest u the actuators can reach. */
double op_power_u_floor(const op_governor_params *p);

#endif
