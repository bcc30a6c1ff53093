/*
 * plant.h — a simulated GB10 node for the governor's tests and for running the appliance with
 * a power budget where no real sensor exists (power.sensors: sim).
 *
 * The model (assumptions, written down; docs/power.md has the reasoning and sources):
 *  - the node draws idle_w doing nothing (board, memory, CPU cores idling, fans);
 *  - inference adds energy per event: event_j at full clock, i.e. power = idle + rate·event_j.
 *    At full capacity (rate_full events/s) that is full_w; by default event_j is
 *    (full_w − idle_w)/rate_full;
 *  - throughput at clock fraction c scales with c; dynamic power with c^clock_exp (voltage falls
 *    with frequency), so energy per event scales with c^(clock_exp − 1);
 *  - below batch_sat events per batch the GPU is not fully occupied: capacity scales with
 *    batch/batch_sat (0: batch does not matter, as on a CPU);
 *  - the duty cycle and a power-limit fraction scale capacity;
 *  - the sensor reports the mean over the last lag_s seconds (NVML's power reading is a 1 s
 *    average on recent GPUs) plus Gaussian noise of noise_w.
 * Two ways to drive it: a simulated workload (op_plant_run: offered events/s against the
 * capacity the setting allows, excess queued) or measured work (op_plant_work: the events the
 * real infer stage reports, turned into watts).
 */
#ifndef OP_POWER_PLANT_H
#define OP_POWER_PLANT_H
#include <stdint.h>

#include "power/governor.h"

typedef struct op_plant_params {
	double idle_w, full_w, rate_full, event_j;
	uint32_t batch_sat;
	double clock_exp, noise_w, lag_s;
	uint64_t seed;
} op_plant_params;

typedef struct op_plant op_plant;

void op_plant_defaults(op_plant_params *p); /* 30 W idle, 130 W full at 20,000 events/s */
op_plant *op_plant_new(const op_plant_params *p);
void op_plant_free(op_plant *pl);
/* Simulated workload: dt seconds with offered_rate events/s arriving; what cannot be done
 * waits in a queue. Returns the events done. */
double op_plant_run(op_plant *pl, double dt, double offered_rate, const op_power_setting *set);
/* Measured work: `events` were done in the last dt seconds at clock fraction clock_frac. */
void op_plant_work(op_plant *pl, double dt, double events, double clock_frac);
/* True mean power over the last advance, and the energy so far (J). */
double op_plant_power(const op_plant *pl);
double op_plant_energy_j(const op_plant *pl);
/* What a sensor reads now: the trailing lag_s mean with noise. */
double op_plant_read(op_plant *pl);
double op_plant_queue(const op_plant *pl);
/* The capacity fraction of the last op_plant_run that was used, [0, 1]. */
double op_plant_utilisation(const op_plant *pl);

#endif
