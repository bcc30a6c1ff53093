/*
 * bench_power.c — `outpost-bench power`: the governor holding budgets while the event model
 * runs flat out, in one run: unthrottled first (the baseline), then budgets of 100%, 75% and
 * 50% of the reference. For each: the power held (mean and worst second, as the plant's truth
 * and as the sensor saw it), events/s and joules per event, and their ratios to the baseline.
 *
 * Two plants:
 *   default   the model on the CPU, the power from the simulated node (power/plant.h) turning
 *             the measured work into watts; the reference is the baseline's own draw.
 *   --gpu     the model on the GPU through the CUDA backend, the power read from NVML for real
 *             (the GPU's energy counter); budgets of 100%, 75% and 50% of the GPU's default
 *             power limit, then 90% and 75% of the unthrottled draw (the default limit is
 *             often far above what this model draws, and then holds by itself). Only the duty
 *             cycle throttles: NVML is opened read-only, so the GPU's clocks and power limit
 *             are never touched (they may not be ours: a shared test machine). The power is
 *             the sum over the GPUs NVML sees (on a machine of several, more than the one the
 *             model runs on), and so is the default limit; the host's share of the work
 *             (feature extraction) is not in it.
 *
 *   outpost-bench power [--seconds S] [--method fp4|linefit] [--gpu]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/modelfile.h"
#include "ingest/geometry.h"
#include "ingest/simgen.h"
#include "kernels/reco.h"
#include "power/governor.h"
#include "power/nvml.h"
#include "power/plant.h"
#include "tools/bench/bench.h"

#ifdef OP_BENCH_CUDA
#include <unistd.h>

#include "kernels/backend.h"
#include "kernels/cuda/plugin.h"
#endif

#define NEV 4096

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	if (s <= 0)
		return;
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - floor(s)) * 1e9)};
	nanosleep(&ts, NULL);
}

typedef struct phase_result {
	double true_w, worst_true_w, sensed_w, events_per_s, j_per_event, duty;
} phase_result;

typedef struct bench {
	op_reco *reco;
	op_reco_event ev[NEV];
	op_reco_out out[256];
	size_t next;
	op_plant *plant;
	op_governor *gov;
	op_governor_params gp;
	op_power_setting set;
} bench;

/* One phase: `secs` periods of 1 s; statistics from period `skip` on. budget 0: unthrottled. */
static void run_phase(bench *b, double budget, int secs, int skip, phase_result *r)
{
	double sum_true = 0, worst = 0, sum_sensed = 0, events = 0, energy = 0, duty = 0;
	int n = 0;
	op_power_map(&b->gp, 1.0, &b->set);
	for (int k = 0; k < secs; k++) {
		double t_end = now_s() + 1.0, done = 0, e0 = op_plant_energy_j(b->plant), work = 0;
		while (now_s() < t_end) {
			/* a batch of ~5 ms of work, then the duty cycle's rest (as the infer stage does) */
			size_t m = b->set.duty < 1 ? 32 : 256;
			if (b->next + m > NEV)
				b->next = 0;
			double t0 = now_s();
			op_reco_run(b->reco, b->out, b->ev + b->next, m);
			double w = now_s() - t0;
			b->next += m;
			op_plant_work(b->plant, w, (double)m, 1.0);
			double rest = w * (1.0 - b->set.duty) / b->set.duty;
			double t1 = now_s();
			sleep_s(rest);
			op_plant_work(b->plant, now_s() - t1, 0, 1.0);
			done += (double)m;
			work += w;
		}
		double p_true = op_plant_energy_j(b->plant) - e0, sensed = op_plant_read(b->plant);
		op_governor_input in = {.power_w = sensed, .budget_w = budget, .utilisation = 1.0, .events = done,
					.dt_s = 1.0};
		op_governor_step(b->gov, &in, &b->set);
		if (k >= skip) {
			sum_true += p_true;
			sum_sensed += sensed;
			worst = p_true > worst ? p_true : worst;
			events += done;
			energy += p_true;
			duty += b->set.duty;
			n++;
		}
		(void)work;
	}
	r->true_w = sum_true / n;
	r->worst_true_w = worst;
	r->sensed_w = sum_sensed / n;
	r->events_per_s = events / n;
	r->j_per_event = energy / events;
	r->duty = duty / n;
}

#ifdef OP_BENCH_CUDA
/* ---- the model on the GPU, NVML's watts ------------------------------------------------------ */

typedef struct gpu_bench {
	op_backend *be;
	op_bench_events E;
	op_reco_out *out;
	op_nvml *nv;
	op_governor *gov;
	op_governor_params gp;
	op_power_setting set;
} gpu_bench;

enum { GPU_NE = 65536, GPU_BATCH = 8192, GPU_NP = 40 };

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One phase of `secs` 1 s periods, statistics from period `skip`; budget 0: unthrottled. */
static int gpu_phase(gpu_bench *b, double budget, int secs, int skip, phase_result *r)
{
	double sum = 0, worst = 0, events = 0, duty = 0, w, secs_counted = 0, joules = 0;
	int n = 0;
	size_t next = 0;
	char err[256];
	op_power_map(&b->gp, 1.0, &b->set);
	op_nvml_read(b->nv, now_ns(), &w, err, sizeof(err)); /* the period starts here */
	double t_start = now_s();
	for (int k = 0; k < secs; k++) {
		double t_end = t_start + 1.0, done = 0;
		while (now_s() < t_end) {
			if (next + GPU_BATCH > GPU_NE)
				next = 0;
			double t0 = now_s();
			if (op_backend_run(b->be, b->E.ev + next, b->E.guess + next, b->out, GPU_BATCH) < 0) {
				fprintf(stderr, "outpost-bench power: the backend failed\n");
				return -1;
			}
			double wk = now_s() - t0;
			next += GPU_BATCH;
			done += GPU_BATCH;
			sleep_s(wk * (1.0 - b->set.duty) / b->set.duty);
		}
		if (op_nvml_read(b->nv, now_ns(), &w, err, sizeof(err)) < 0) {
			fprintf(stderr, "outpost-bench power: NVML: %s\n", err);
			return -1;
		}
		/* the period as it ran: a batch and its rest may end past the second */
		const double t1 = now_s(), dt = t1 - t_start;
		t_start = t1;
		op_governor_input in = {.power_w = w, .budget_w = budget, .utilisation = 1.0, .events = done, .dt_s = dt};
		op_governor_step(b->gov, &in, &b->set);
		if (k >= skip) {
			sum += w, events += done, duty += b->set.duty, n++, secs_counted += dt, joules += w * dt;
			worst = w > worst ? w : worst;
		}
	}
	r->true_w = r->sensed_w = sum / n;
	r->worst_true_w = worst;
	r->events_per_s = events / secs_counted;
	r->j_per_event = joules / events;
	r->duty = duty / n;
	return 0;
}

static int bench_power_gpu(int secs)
{
	gpu_bench b;
	char err[512];
	memset(&b, 0, sizeof(b));
	if (op_nvml_open_readonly(&b.nv, err, sizeof(err)) < 0) {
		printf("{\"bench\":\"power\",\"gpu\":true,\"skipped\":\"%s\"}\n", err);
		return 77;
	}
	const double limit = op_nvml_default_limit_w(b.nv);
	op_model m;
	if (op_model_load_default(&m, err, sizeof(err)) < 0 || op_bench_sim_events(&b.E, GPU_NE, GPU_NP) < 0) {
		fprintf(stderr, "outpost-bench power: %s\n", err);
		return 1;
	}
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = nproc > 16 ? 16 : nproc < 1 ? 1 : (int)nproc;
	op_backend_use_plugin(op_cuda_device_plugin());
	if (op_backend_open("cuda", &m, threads, GPU_BATCH, &b.be, err, sizeof(err)) < 0) {
		printf("{\"bench\":\"power\",\"gpu\":true,\"skipped\":\"%s\"}\n", err);
		return 77;
	}
	b.out = malloc(GPU_BATCH * sizeof(*b.out));
	op_governor_defaults(&b.gp); /* batch, clocks and power limit are no actuators here: duty only */
	b.gov = op_governor_new(&b.gp, 60);
	printf("{\"bench\":\"power\",\"gpu\":true,\"nvml\":\"%s\",\"default_limit_w\":%.0f,\"backend\":\"%s\","
	       "\"batch\":%d,\"pulses_per_event\":%d}\n",
	       op_nvml_describe(b.nv), limit, op_backend_describe(b.be), GPU_BATCH, GPU_NP);
	fflush(stdout);
	phase_result base, r;
	int rc = gpu_phase(&b, 0, secs, 3, &base);
	if (rc == 0) {
		printf("{\"bench\":\"power\",\"gpu\":true,\"budget\":\"none\",\"power_w\":%.1f,\"worst_1s_w\":%.1f,"
		       "\"events_per_s\":%.0f,\"uj_per_event\":%.2f}\n",
		       base.true_w, base.worst_true_w, base.events_per_s, 1e6 * base.j_per_event);
		fflush(stdout);
	}
	static const struct {
		const char *of;
		double share;
	} budgets[] = {{"default_limit", 1.0}, {"default_limit", 0.75}, {"default_limit", 0.5},
		       {"unthrottled_draw", 0.9}, {"unthrottled_draw", 0.75}};
	for (size_t i = 0; rc == 0 && i < sizeof(budgets) / sizeof(*budgets); i++) {
		double budget = budgets[i].share * (budgets[i].of[0] == 'd' ? limit : base.true_w);
		if (budget <= 0) { /* NVML gave no default limit */
			printf("{\"bench\":\"power\",\"gpu\":true,\"budget_of\":\"%s\",\"budget_share\":%.2f,"
			       "\"skipped\":\"NVML reports no default power limit\"}\n", budgets[i].of, budgets[i].share);
			continue;
		}
		if ((rc = gpu_phase(&b, budget, secs, 5, &r)) < 0)
			break;
		printf("{\"bench\":\"power\",\"gpu\":true,\"budget_of\":\"%s\",\"budget_share\":%.2f,\"budget_w\":%.1f,"
		       "\"binding\":%s,\"power_w\":%.1f,\"power_vs_budget\":%.4f,\"worst_1s_w\":%.1f,"
		       "\"worst_1s_vs_budget\":%.4f,\"events_per_s\":%.0f,\"events_vs_baseline\":%.3f,"
		       "\"uj_per_event\":%.2f,\"energy_per_event_vs_baseline\":%.3f,\"duty\":%.3f}\n",
		       budgets[i].of, budgets[i].share, budget, budget < base.true_w ? "true" : "false", r.true_w,
		       r.true_w / budget, r.worst_true_w, r.worst_true_w / budget, r.events_per_s,
		       r.events_per_s / base.events_per_s, 1e6 * r.j_per_event, r.j_per_event / base.j_per_event, r.duty);
		fflush(stdout);
	}
	op_backend_close(b.be);
	op_governor_free(b.gov);
	op_nvml_close(b.nv); /* read only: nothing to restore */
	op_model_free(&m);
	op_bench_events_free(&b.E);
	free(b.out);
	return rc < 0 ? 1 : 0;
}
#endif

int op_bench_power(int argc, char **argv)
{
	int secs = 20, gpu = 0;
	const char *method = "fp4";
	bench b;
	op_geometry *geo = NULL;
	op_simgen *gen = NULL;
	char err[256];

	memset(&b, 0, sizeof(b));
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--gpu"))
			gpu = 1;
		else if (i + 1 < argc && !strcmp(argv[i], "--seconds"))
			secs = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--method"))
			method = argv[++i];
	}
	if (secs < 8)
		secs = 8;
	if (gpu) {
#ifdef OP_BENCH_CUDA
		return bench_power_gpu(secs);
#else
		printf("{\"bench\":\"power\",\"gpu\":true,\"skipped\":\"outpost-bench was built without CUDA (no nvcc)\"}\n");
		return 77;
#endif
	}
	op_nvml *nv = NULL;
	if (op_nvml_open_readonly(&nv, err, sizeof(err)) == 0) {
		printf("{\"bench\":\"power\",\"note\":\"NVML present (%s): this run is the CPU's, on the simulated "
		       "node; --gpu runs the model on the GPU against NVML's readings\"}\n",
		       op_nvml_describe(nv));
		op_nvml_close(nv);
	} else {
		printf("{\"bench\":\"power\",\"note\":\"%s; the simulated node turns the measured CPU work into "
		       "watts\"}\n", err);
	}
	/* events: simulated, placed once */
	op_simgen_config sc = {.seed = 2026, .track_fraction = 0.5, .max_pulses = 5000, .noise_hz = 500};
	if (op_geometry_default(&geo) < 0 || op_simgen_open(&sc, geo, &gen) < 0)
		return 1;
	float *x = malloc(NEV * 300 * sizeof(float)), *y = malloc(NEV * 300 * sizeof(float)),
	      *z = malloc(NEV * 300 * sizeof(float)), *t = malloc(NEV * 300 * sizeof(float)),
	      *q = malloc(NEV * 300 * sizeof(float));
	size_t used = 0;
	for (int e = 0; e < NEV; e++) {
		op_sim_event ev;
		op_simgen_next(gen, &ev);
		uint32_t np = ev.n;
		if (used + np > (size_t)NEV * 300)
			np = (uint32_t)((size_t)NEV * 300 - used);
		op_placed_pulses dst = {x, y, z, t, q, NULL};
		uint32_t placed = op_geometry_place(geo, ev.pulses, np, &dst, used);
		b.ev[e] = (op_reco_event){.n = placed, .x_m = x + used, .y_m = y + used, .z_m = z + used,
					  .t_ns = t + used, .q_pe = q + used};
		used += placed;
	}
	op_reco_config rc = {.kind = method, .charge_weighted = 1, .trim = 1, .threads = 1};
	if (!strcmp(method, "fp4")) {
		op_model *model = calloc(1, sizeof(*model));
		if (!model || op_model_load_default(model, err, sizeof(err)) < 0) {
			fprintf(stderr, "outpost-bench power: %s\n", model ? err : "out of memory");
			return 1;
		}
		rc.model = model;
	}
	if (op_reco_open(&rc, &b.reco) < 0)
		return 1;
	/* the simulated node: GB10-like idle; 1 W noise; energy per event set so that this CPU
	 * running flat out draws the GB10's ~130 W (docs/power.md) */
	double t0 = now_s();
	long cal = 0;
	while (now_s() - t0 < 1.0) {
		op_reco_run(b.reco, b.out, b.ev + (cal % (NEV / 256)) * 256, 256);
		cal++;
	}
	double rate = (double)cal * 256 / (now_s() - t0);
	op_plant_params pp;
	op_plant_defaults(&pp);
	pp.rate_full = rate;
	pp.seed = 7;
	b.plant = op_plant_new(&pp);
	op_governor_defaults(&b.gp);
	b.gov = op_governor_new(&b.gp, 60);

	phase_result base, r;
	run_phase(&b, 0, secs, 5, &base);
	printf("{\"bench\":\"power\",\"method\":\"%s\",\"budget\":\"none\",\"power_w\":%.2f,\"worst_1s_w\":%.2f,"
	       "\"events_per_s\":%.0f,\"mj_per_event\":%.3f,\"duty\":%.3f}\n",
	       method, base.true_w, base.worst_true_w, base.events_per_s, 1e3 * base.j_per_event, base.duty);
	static const double shares[3] = {1.0, 0.75, 0.5};
	for (int i = 0; i < 3; i++) {
		double budget = shares[i] * base.true_w;
		run_phase(&b, budget, secs, 5, &r);
		printf("{\"bench\":\"power\",\"method\":\"%s\",\"budget_share\":%.2f,\"budget_w\":%.2f,\"power_w\":%.2f,"
		       "\"power_vs_budget\":%.4f,\"worst_1s_w\":%.2f,\"worst_1s_vs_budget\":%.4f,\"sensed_w\":%.2f,"
		       "\"events_per_s\":%.0f,\"events_vs_baseline\":%.3f,\"mj_per_event\":%.3f,"
		       "\"energy_per_event_vs_baseline\":%.3f,\"duty\":%.3f}\n",
		       method, shares[i], budget, r.true_w, r.true_w / budget, r.worst_true_w, r.worst_true_w / budget,
		       r.sensed_w, r.events_per_s, r.events_per_s / base.events_per_s, 1e3 * r.j_per_event,
		       r.j_per_event / base.j_per_event, r.duty);
	}
	op_reco_close(b.reco); /* and the model with it */
	op_plant_free(b.plant);
	op_governor_free(b.gov);
	free(x), free(y), free(z), free(t), free(q);
	op_simgen_close(gen);
	op_geometry_close(geo);
	return 0;
}
