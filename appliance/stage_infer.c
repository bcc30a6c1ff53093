/*
 * stage_infer.c — the infer stage: one result row for every event it is given.
 *
 * Stateless by design: it keeps nothing that is not also held by ingest, so killing it loses
 * nothing (ingest resends what was in flight). Per batch: decode each event (already validated
 * by ingest, checked again because this is a process boundary), place its pulses with the
 * geometry table, run the configured reconstruction, send the rows to the store.
 * It must never drop an event silently: an event it cannot decode is counted and logged, and
 * stays unacknowledged so that ingest's accounting shows it.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/log.h"
#include "appliance/modelfile.h"
#include "appliance/stage.h"
#include "ingest/geometry.h"
#include "ingest/wire.h"
#include "kernels/backend.h"
#include "kernels/fp4_gemm.h"
#include "kernels/reco.h"

typedef struct scratch {
	float *x, *y, *z, *t, *q;
	uint16_t *fl;
	size_t cap, used;
	op_pulse *pulses;
	size_t pulses_cap;
} scratch;

static int scratch_reserve(scratch *sc, size_t need)
{
	if (sc->used + need <= sc->cap)
		return 0;
	size_t cap = sc->cap ? sc->cap : 4096;
	while (cap < sc->used + need)
		cap *= 2;
	float **arr[5] = {&sc->x, &sc->y, &sc->z, &sc->t, &sc->q};
	for (int i = 0; i < 5; i++) {
		float *p = realloc(*arr[i], cap * sizeof(float));
		if (!p)
			return -ENOMEM;
		*arr[i] = p;
	}
	uint16_t *f = realloc(sc->fl, cap * sizeof(uint16_t));
	if (!f)
		return -ENOMEM;
	sc->fl = f;
	sc->cap = cap;
	return 0;
}

/*
 * Fault injection for the soak test (supervisor.fault_injection, off in production, where the
 * two signals are ignored): SIGUSR1 makes the stage spin — busy, reporting, never advancing —
 * the failure a thread-alive heartbeat would miss; SIGUSR2 makes it block for ever without
 * reporting, as in a deadlock. Neither ends on SIGTERM: only the supervisor's SIGKILL ends it.
 */
static volatile sig_atomic_t injected_fault;

static void on_fault_signal(int sig)
{
	injected_fault = sig == SIGUSR1 ? 1 : 2;
}

static void run_injected_fault(op_stage_ctx *s, uint64_t events)
{
	volatile uint64_t spin = 0;

	op_err("fault injection: %s", injected_fault == 1 ? "spinning without progress" : "blocking for ever");
	for (;;) {
		if (injected_fault == 2) {
			pause();
			continue;
		}
		spin++;
		if (op_report_due(s, op_now_ns())) {
			op_report_begin(s, events, 0);
			op_report_gauge(s, "injected_fault", 1);
			op_report_send(s);
		}
	}
}

/*
 * The power governor's actuators (power/governor.h), applied here: a batch-size cap and a duty
 * cycle (after a batch that took t of work, sleep t·(1 − d)/d before taking more). The
 * supervisor sends "power <batch> <duty> <failsafe> <safe batch> <safe duty>" every period on
 * infer-ctl.sock ("power off" when no budget is in force). When the
 * budget is enforced (OUTPOST_POWER_ENFORCED in the environment, set by the supervisor), the
 * stage starts at the safe setting and falls back to it by itself when it has heard nothing for
 * three periods and a second: a governor that failed must not leave inference running free.
 */
typedef struct throttle {
	uint32_t batch;
	double duty;
	uint32_t safe_batch; /* the fail-safe setting: power.min_batch and min_duty, as last heard */
	double safe_duty;
	int failsafe;
	int enforced;
	uint64_t last_cmd_ns, silence_ns, debt_ns;
	uint64_t overslept_ns; /* rest taken beyond the debt (timer slack): counted against the next */
	int silent_logged;
	double ns_per_event; /* measured work per event (EWMA) */
} throttle;

/* The batch to take now. Throttled, on the CPU (where batch size does not change the energy an
 * event costs) batches are cut to about 1 ms of work, so the duty cycle's on/off pattern is
 * fine-grained against a 1 s power average: at a 6% duty that is some 60 bursts a second, and
 * where a second's edges fall moves its average by one burst, under 2% of the work. Measured in
 * power_hold (3 runs each): worst second +1.4…+2.6% of the budget at 1 ms, +3.1…+5.5% at 5 ms. */
static uint32_t throttle_batch(const throttle *th)
{
	if (th->duty >= 1.0 || th->ns_per_event <= 0)
		return th->batch;
	double b = 1e6 / th->ns_per_event;
	uint32_t lo = th->batch < 16 ? th->batch : 16;
	return b < lo ? lo : b > th->batch ? th->batch : (uint32_t)b;
}

static void throttle_safe(throttle *th)
{
	th->batch = th->safe_batch;
	th->duty = th->safe_duty;
	th->failsafe = 1;
}

static void throttle_poll(throttle *th, void *ctl, const op_config *cfg, uint64_t now)
{
	char msg[128];
	int n;
	while ((n = zmq_recv(ctl, msg, sizeof(msg) - 1, ZMQ_DONTWAIT)) >= 0) {
		unsigned b, sb;
		double d, sd;
		int fs, nf;
		msg[n < (int)sizeof(msg) - 1 ? n : (int)sizeof(msg) - 1] = 0;
		if (!strcmp(msg, "power off")) { /* no budget in force: run free */
			if (th->enforced)
				op_info("no power budget in force: inference unthrottled");
			th->batch = cfg->infer_batch_events;
			th->duty = 1.0;
			th->failsafe = 0;
			th->enforced = 0;
			th->debt_ns = th->overslept_ns = 0;
			th->silent_logged = 0;
			continue;
		}
		nf = sscanf(msg, "power %u %lf %d %u %lf", &b, &d, &fs, &sb, &sd);
		if (nf < 3 || b < 1 || !(d > 0 && d <= 1) || (nf == 5 && (sb < 1 || !(sd > 0 && sd <= 1)))) {
			op_warn("infer-ctl: ignoring malformed power command '%s'", msg);
			continue;
		}
		if (nf == 5) { /* a reload of power.min_batch or min_duty reaches the fail-safe too */
			th->safe_batch = sb < cfg->infer_batch_events ? sb : cfg->infer_batch_events;
			th->safe_duty = sd;
		}
		th->batch = b < cfg->infer_batch_events ? b : cfg->infer_batch_events;
		th->duty = d;
		th->failsafe = fs;
		th->enforced = 1;
		th->last_cmd_ns = now;
		if (th->silent_logged) {
			op_info("power governor heard again: duty %.0f%%", 100 * d);
			th->silent_logged = 0;
		}
	}
	if (th->enforced && now - th->last_cmd_ns > th->silence_ns && !th->silent_logged) {
		throttle_safe(th);
		op_err("no word from the power governor for %.1f s: running at the fail-safe setting (duty %.0f%%, "
		       "batch %u) until it is heard again",
		       (double)(now - th->last_cmd_ns) / 1e9, 100 * th->duty, th->batch);
		th->silent_logged = 1;
	}
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* What status shows the network running on, now: the GPU by its name ("cuda: NVIDIA H200"), or
 * the CPU rung — also after a GPU fault, when the CPU has taken over for the rest of the run. */
static const char *backend_now(op_backend *be, const char *cpu, char *buf, size_t len)
{
	if (be && op_backend_fault(be)) {
		snprintf(buf, len, "%.40s (the GPU failed)", cpu);
		return buf;
	}
	if (!be || op_backend_kind(be) != OP_BACKEND_CUDA)
		return cpu;
	const char *d = op_backend_describe(be);
	size_t n = strcspn(d, "(;");
	while (n && d[n - 1] == ' ')
		n--;
	snprintf(buf, len, "%.*s", (int)n, d);
	return buf;
}

int op_stage_infer(op_stage_ctx *s)
{
	const op_config *cfg = s->cfg;
	op_geometry *geo = NULL;
	op_reco *reco = NULL;
	void *in = NULL, *out = NULL;
	char ep[OP_CFG_STR + 32];
	int rc = 1, linger = 0, sndtimeo = 100;
	uint32_t batch = cfg->infer_batch_events;
	zmq_msg_t *msgs = calloc(batch, sizeof(zmq_msg_t));
	op_reco_event *evs = calloc(batch, sizeof(op_reco_event));
	op_reco_out *outs = calloc(batch, sizeof(op_reco_out));
	op_stage_result *res = calloc(batch, sizeof(op_stage_result));
	op_wire_header *hdrs = calloc(batch, sizeof(op_wire_header));
	uint64_t *serials = calloc(batch, sizeof(uint64_t));
	size_t *offs = calloc(batch, sizeof(size_t));
	uint32_t *unknown = calloc(batch, sizeof(uint32_t));
	scratch sc;
	uint64_t events = 0, batches = 0, pulses = 0, unknown_pulses = 0, bad = 0, blocked_ms = 0;
	uint64_t reco_ns = 0, work_ns = 0, wait_ns = 0, duty_sleep_ns = 0, failsafe_events = 0;
	uint32_t last_batch = 0;
	int blocked = 0;
	void *ctl = NULL;
	throttle th = {.batch = batch,
		       .duty = 1.0,
		       .safe_batch = cfg->power_min_batch < batch ? cfg->power_min_batch : batch,
		       .safe_duty = cfg->power_min_duty_pct / 100.0};

	memset(&sc, 0, sizeof(sc));
	if (!msgs || !evs || !outs || !res || !hdrs || !serials || !offs || !unknown)
		goto out;
	if (op_geometry_default(&geo) < 0) {
		op_err("cannot load the embedded detector geometry");
		goto out;
	}
	struct sigaction fsa;
	memset(&fsa, 0, sizeof(fsa));
	fsa.sa_handler = cfg->fault_injection ? on_fault_signal : SIG_IGN;
	sigaction(SIGUSR1, &fsa, NULL);
	sigaction(SIGUSR2, &fsa, NULL);

	/* Tell the supervisor a model is loading (it extends systemd's start timeout meanwhile). */
	op_report_begin(s, 0, 1);
	op_report_gauge(s, "loading", 1);
	op_report_send(s);
	op_reco_config rcfg = {.kind = s->safe_mode ? "linefit" : cfg->infer_method,
				.charge_weighted = cfg->infer_charge_weighted,
				.trim = cfg->infer_trim, .threads = (int)cfg->infer_threads,
				.backend = cfg->infer_backend, .max_events = batch};
	char bwhy[512] = "";
	rcfg.why = bwhy;
	rcfg.whylen = sizeof(bwhy);
	if (s->safe_mode)
		op_warn("safe mode: the network is off; LineFit only, every row flagged safe_mode");
	if (!strcmp(rcfg.kind, "fp4")) {
		char merr[512];
		op_model *model = calloc(1, sizeof(*model));
		int lerr = !model ? -ENOMEM
				  : cfg->infer_model[0] ? op_model_load(cfg->infer_model, model, merr, sizeof(merr))
							: op_model_load_default(model, merr, sizeof(merr));
		if (lerr < 0) {
			op_err("infer.model: %s", model ? merr : strerror(ENOMEM));
			free(model);
			goto out;
		}
		rcfg.model = model;
	}
	int err = op_reco_open(&rcfg, &reco);
	if (err < 0) {
		op_err("cannot open reconstruction '%s': %s", rcfg.kind, bwhy[0] ? bwhy : strerror(-err));
		goto out;
	}
	in = zmq_socket(s->zctx, ZMQ_PULL);
	out = zmq_socket(s->zctx, ZMQ_PUSH);
	zmq_setsockopt(in, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(out, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(out, ZMQ_SNDTIMEO, &sndtimeo, sizeof(sndtimeo));
	op_stage_endpoint(ep, sizeof(ep), cfg, "infer.sock");
	if (zmq_bind(in, ep) != 0)
		goto zfail;
	op_stage_endpoint(ep, sizeof(ep), cfg, "store.sock");
	if (zmq_connect(out, ep) != 0)
		goto zfail;
	ctl = zmq_socket(s->zctx, ZMQ_PULL);
	zmq_setsockopt(ctl, ZMQ_LINGER, &linger, sizeof(linger));
	op_stage_endpoint(ep, sizeof(ep), cfg, "infer-ctl.sock");
	if (zmq_bind(ctl, ep) != 0)
		goto zfail;
	th.silence_ns = 3 * cfg->power_period_ns + 1000000000ull;
	if (getenv("OUTPOST_POWER_ENFORCED")) {
		/* a power budget is in force: start safe until the governor speaks */
		throttle_safe(&th);
		th.enforced = 1;
		th.last_cmd_ns = op_now_ns();
	}
	/* what runs the reconstruction, and why there (infer.backend) */
	op_backend *be = op_reco_backend(reco);
	char backend[48];
	snprintf(backend, sizeof(backend), "cpu/%s, %u thread%s", op_fp4_rung_name(op_fp4_rung_best()),
		 cfg->infer_threads, cfg->infer_threads == 1 ? "" : "s");
	op_info("reconstruction %s (model id %u) on %s, batches of up to %u events", op_reco_model_name(reco),
		op_reco_model_id(reco), be ? op_backend_describe(be) : backend, batch);
	if (be)
		op_info("infer.backend %s: %s", cfg->infer_backend, bwhy);
	int gpu_fault_logged = 0;
	char now_desc[64];
	op_stage_model named = {.model_id = op_reco_model_id(reco)};
	snprintf(named.name, sizeof(named.name), "%s", op_reco_model_name(reco));

	while (!op_stage_stop) {
		zmq_pollitem_t it = {.socket = in, .events = ZMQ_POLLIN};
		uint32_t n = 0;
		int idle = 1;

		throttle_poll(&th, ctl, cfg, op_now_ns());
		if (th.debt_ns) {
			/* the duty cycle's rest: short sleeps, so reports, commands and stop stay prompt */
			uint64_t nap = th.debt_ns < 50000000ull ? th.debt_ns : 50000000ull, t0 = op_now_ns();
			struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)nap};
			nanosleep(&ts, NULL);
			/* the rest actually taken: with 1 ms bursts a nap's timer slack (tens of µs) is a
			 * sizeable part of it, and a signal may cut it short */
			uint64_t slept = op_now_ns() - t0;
			if (slept >= th.debt_ns) {
				/* timer slack is credited, up to 1 ms: a stall (descheduled, stopped) is not
				 * rest owed back as a burst of unthrottled work */
				th.overslept_ns = slept - th.debt_ns < 1000000ull ? slept - th.debt_ns : 1000000ull;
				th.debt_ns = 0;
			} else
				th.debt_ns -= slept;
			duty_sleep_ns += slept;
			idle = 0; /* throttled, not idle */
			goto report;
		}
		uint64_t tp = op_now_ns();
		if (zmq_poll(&it, 1, 100) < 0 && errno != EINTR)
			goto zfail;
		uint64_t tw = op_now_ns(), cw = cpu_ns();
		wait_ns += tw - tp;
		if (injected_fault)
			run_injected_fault(s, events);
		sc.used = 0;
		uint32_t take = throttle_batch(&th);
		while (n < take) {
			zmq_msg_init(&msgs[n]);
			if (zmq_msg_recv(&msgs[n], in, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&msgs[n]);
				break;
			}
			const uint8_t *p = zmq_msg_data(&msgs[n]);
			size_t len = zmq_msg_size(&msgs[n]);
			int werr = len < 8 ? OP_WIRE_ETRUNCATED
					   : op_wire_decode(&hdrs[n], p + 8, len - 8, cfg->ingest_max_pulses);
			if (werr != OP_WIRE_OK) {
				bad++;
				op_err("internal message %s: not a valid event (%s); left unacknowledged",
				       len >= 8 ? "from ingest" : "too short", op_wire_strerror(werr));
				zmq_msg_close(&msgs[n]);
				continue;
			}
			serials[n] = op_get_le64(p);
			uint32_t np = hdrs[n].pulse_count;
			if (np > sc.pulses_cap) {
				op_pulse *pp = realloc(sc.pulses, (size_t)np * sizeof(op_pulse));
				if (!pp) {
					op_err("cannot hold event stream %u sequence %" PRIu64 " with %u pulses: out of memory "
					       "(ingest resends it; ingest.max_pulses bounds what is accepted)",
					       hdrs[n].stream_id, hdrs[n].sequence, np);
					zmq_msg_close(&msgs[n]);
					goto out;
				}
				sc.pulses = pp;
				sc.pulses_cap = np;
			}
			if (scratch_reserve(&sc, np) < 0) {
				op_err("cannot hold event stream %u sequence %" PRIu64 " with %u pulses (%zu in this batch): out "
				       "of memory (ingest resends it; ingest.max_pulses bounds what is accepted)",
				       hdrs[n].stream_id, hdrs[n].sequence, np, sc.used);
				zmq_msg_close(&msgs[n]);
				goto out;
			}
			op_wire_get_pulses(sc.pulses, p + 8, &hdrs[n]);
			offs[n] = sc.used;
			op_placed_pulses dst = {sc.x, sc.y, sc.z, sc.t, sc.q, sc.fl};
			uint32_t placed = op_geometry_place(geo, sc.pulses, np, &dst, sc.used);
			unknown[n] = np - placed;
			sc.used += placed;
			pulses += np;
			unknown_pulses += unknown[n];
			zmq_msg_close(&msgs[n]);
			n++;
		}
		last_batch = n;
		if (n > 0) {
			/* Pointers are taken only now: the scratch arrays may have moved while growing. */
			for (uint32_t k = 0; k < n; k++) {
				size_t end = k + 1 < n ? offs[k + 1] : sc.used;
				evs[k] = (op_reco_event){.n = (uint32_t)(end - offs[k]),
							 .x_m = sc.x + offs[k], .y_m = sc.y + offs[k],
							 .z_m = sc.z + offs[k], .t_ns = sc.t + offs[k],
							 .q_pe = sc.q + offs[k], .flags = sc.fl + offs[k]};
			}
			uint64_t t0 = op_now_ns();
			const int rr = op_reco_run(reco, outs, evs, n); /* (a batch too big: in parts first) */
			if (rr < 0) {
				op_err("reconstruction of a batch of %u events (%zu pulses placed) failed: %s", n,
				       (size_t)sc.used, strerror(-rr));
				goto out;
			}
			reco_ns += op_now_ns() - t0;
			if (be && !gpu_fault_logged && op_backend_fault(be)) {
				/* the batch was redone on the CPU; the GPU is tried again when the stage restarts */
				op_err("infer.backend: %s", op_backend_fault(be));
				gpu_fault_logged = 1;
			}
			for (uint32_t k = 0; k < n; k++) {
				op_result_row *row = &res[k].row;
				res[k].serial = serials[k];
				memset(row, 0, sizeof(*row));
				row->stream_id = hdrs[k].stream_id;
				row->sequence = hdrs[k].sequence;
				row->detector_time_ns = hdrs[k].detector_time_ns;
				row->n_pulses = hdrs[k].pulse_count;
				row->dir_x = outs[k].dir[0];
				row->dir_y = outs[k].dir[1];
				row->dir_z = outs[k].dir[2];
				row->zenith_rad = outs[k].zenith_rad;
				row->azimuth_rad = outs[k].azimuth_rad;
				row->log10_energy_gev = outs[k].log10_energy_gev;
				row->track_score = outs[k].track_score;
				row->guess_dir_x = outs[k].guess_dir[0];
				row->guess_dir_y = outs[k].guess_dir[1];
				row->guess_dir_z = outs[k].guess_dir[2];
				row->model_id = op_reco_model_id(reco);
				row->flags = outs[k].status;
				if (unknown[k])
					row->flags |= OP_RESULT_F_UNKNOWN_SENSOR;
				if (hdrs[k].flags & OP_WIRE_F_SIMULATED)
					row->flags |= OP_RESULT_F_SIMULATED;
				if (hdrs[k].flags & OP_WIRE_F_REPLAY)
					row->flags |= OP_RESULT_F_REPLAY;
				if (s->safe_mode)
					row->flags |= OP_RESULT_F_SAFE_MODE;
				if (th.failsafe)
					row->flags |= OP_RESULT_F_POWER_FAILSAFE;
			}
			/* The store may be restarting: keep trying (and keep reporting) until it takes
			 * the batch or we are told to stop. Nothing is lost if we are killed here:
			 * ingest still holds every one of these events. The model's name goes first:
			 * this process is the one that knows which model it runs (the file may have
			 * been replaced since it was read, and a store restarted since would read
			 * another). */
			const void *frame[2] = {&named, res};
			size_t flen[2] = {sizeof(named), n * sizeof(op_stage_result)};
			for (int f = 0; f < 2; f++)
				while (zmq_send(out, frame[f], flen[f], f == 0 ? ZMQ_SNDMORE : 0) < 0) {
					if (errno != EAGAIN || op_stage_stop)
						goto zfail;
					blocked = 1;
					blocked_ms += (uint64_t)sndtimeo;
					if (op_report_due(s, op_now_ns())) {
						op_report_begin(s, events, 0);
						op_report_gauge(s, "blocked_downstream", 1);
						op_report_send(s);
					}
				}
			blocked = 0;
			events += n;
			batches++;
			if (th.failsafe) /* science events only: the start-up probe is never stored */
				for (uint32_t k = 0; k < n; k++)
					failsafe_events += !(serials[k] & OP_PROBE_SERIAL_BIT);
			idle = 0;
		}
		if (n > 0) {
			/* The work the duty cycle and the governor count: CPU time where inference is one
			 * thread (time descheduled by other processes is not work and draws no power;
			 * counting it would starve inference and then let it surge), wall time otherwise. */
			uint64_t w = op_now_ns() - tw;
			if (cfg->infer_threads == 1) {
				uint64_t c = cpu_ns() - cw;
				if (c < w)
					w = c;
			}
			work_ns += w;
			double per = (double)w / n;
			th.ns_per_event = th.ns_per_event > 0 ? 0.8 * th.ns_per_event + 0.2 * per : per;
			if (th.duty < 1.0) {
				uint64_t rest = (uint64_t)((double)w * (1.0 - th.duty) / th.duty);
				th.debt_ns = rest > th.overslept_ns ? rest - th.overslept_ns : 0;
				th.overslept_ns = rest > th.overslept_ns ? 0 : th.overslept_ns - rest;
			}
		}
	report:
		if (op_report_due(s, op_now_ns())) {
			op_report_begin(s, events, idle);
			op_report_counter(s, "events", events);
			op_report_counter(s, "batches", batches);
			op_report_counter(s, "pulses", pulses);
			op_report_counter(s, "unknown_sensor_pulses", unknown_pulses);
			op_report_counter(s, "invalid_internal", bad);
			op_report_counter(s, "blocked_downstream_ms", blocked_ms);
			op_report_counter(s, "reco_ns", reco_ns);
			op_report_counter(s, "work_ns", work_ns);
			op_report_counter(s, "wait_ns", wait_ns);
			op_report_counter(s, "duty_sleep_ns", duty_sleep_ns);
			op_report_counter(s, "power_failsafe_events", failsafe_events);
			op_report_gauge(s, "power_duty", th.duty);
			op_report_gauge(s, "power_batch", th.batch);
			op_report_gauge(s, "power_failsafe", th.failsafe);
			op_report_gauge(s, "blocked_downstream", blocked);
			/* its input's depth, as far as it can see it: a full batch means more is waiting */
			op_report_gauge(s, "input_batch_fill", (double)last_batch / batch);
			op_report_gauge(s, "loading", 0);
			op_report_gauge(s, "safe_mode", s->safe_mode);
			op_report_gauge(s, "model_id", op_reco_model_id(reco));
			op_report_line(s, "t model", op_reco_model_name(reco));
			op_report_line(s, "t backend", backend_now(be, backend, now_desc, sizeof(now_desc)));
			op_report_send(s);
		}
	}
	rc = 0;
	goto out;
zfail:
	if (!op_stage_stop) {
		op_err("infer socket error: %s", zmq_strerror(errno));
		rc = 1;
	} else {
		rc = 0;
	}
out:
	if (in)
		zmq_close(in);
	if (out)
		zmq_close(out);
	if (ctl)
		zmq_close(ctl);
	op_reco_close(reco);
	op_geometry_close(geo);
	free(msgs);
	free(evs);
	free(outs);
	free(res);
	free(hdrs);
	free(serials);
	free(offs);
	free(unknown);
	free(sc.x);
	free(sc.y);
	free(sc.z);
	free(sc.t);
	free(sc.q);
	free(sc.fl);
	free(sc.pulses);
	return rc;
}
