/*
 * powerctl.c — the governor in the supervisor (see powerctl.h and power/governor.h).
 */
#include "appliance/powerctl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/log.h"
#include "appliance/outbox.h"
#include "appliance/stage.h"
#include "power/governor.h"
#include "power/nvml.h"
#include "power/schedule.h"
#include "power/sensor.h"
#include "uplink/escape.h"
#include "uplink/segment.h"

#define MAX_SENSORS 5

static void budget_now(struct op_powerctl *p);
static int save_override(struct op_powerctl *p);

struct op_powerctl {
	op_config cfg;
	void *infer_ctl, *meter;
	op_power_sensor *sensor[MAX_SENSORS];
	int nsensors;
	char missing[512];   /* what auto did not find, or what a listed sensor said */
	int listed_missing;  /* a sensor the config lists could not be opened: fail-safe */
	char unread[512];    /* auto: sensors present but unreadable, left out of node power */
	op_nvml *nvml;
	op_governor *gov;
	op_governor_params gp;
	op_power_schedule sched;
	/* budget */
	uint64_t override_mw;
	time_t override_until; /* 0: until cleared; the wall-clock time it was set to end, as shown */
	uint64_t override_end_ns; /* when it ends by CLOCK_MONOTONIC (0: until cleared): a wall clock
				   * stepped back (no RTC after a reboot, a GPS or NTP correction) must not
				   * keep a raised budget in force past its duration */
	long long override_secs; /* what was left of it when last saved (0: until cleared) */
	uint64_t override_saved_ns; /* when the file was last written with what is left */
	char override_path[OP_CFG_STR + 32];
	uint64_t budget_mw;
	char budget_source[64];
	/* periods */
	uint64_t last_step_ns, last_feed_ns;
	op_power_infer last_inf, feed_inf;
	double feed_work_ns, feed_events; /* the simulated plant's long-run work per event (decayed sums) */
	int have_last;
	op_power_setting set;
	double last_w;
	int reading_ok;
	char reading_err[600];
	uint64_t failsafe_entered_ns;
	int in_failsafe, was_stuck, failsafe_alerted, was_unreachable;
	uint64_t unreachable_alert_ns; /* the last power_budget_unreachable alert north (0: none) */
	double unreachable_budget_w;   /* the budget it was about */
	char brief[96];
	int enforced;
	uint64_t sensor_errors;
	uint64_t meter_rejected; /* site meter messages that were not a reading (bad input: counted) */
};

static int enforcing(const op_powerctl *p)
{
	return p->budget_mw > 0;
}

static void params_from(op_governor_params *gp, const op_config *c, const op_nvml *nv)
{
	op_governor_defaults(gp);
	gp->period_s = (double)c->power_period_ns / 1e9;
	gp->batch_max = c->infer_batch_events;
	gp->batch_min = c->power_min_batch < c->infer_batch_events ? c->power_min_batch : c->infer_batch_events;
	gp->batch_sat = 0; /* the CPU backend: batch size does not change its power (docs/power.md) */
	gp->duty_min = c->power_min_duty_pct / 100.0;
	gp->clocks = op_nvml_can_lock_clocks(nv);
	gp->clock_min_frac = c->power_min_clock_pct / 100.0;
	gp->power_limit = op_nvml_can_set_limit(nv);
	gp->limit_min_frac = c->power_min_limit_pct / 100.0;
	gp->idle_hint_w = (double)c->power_idle_mw / 1e3;
	gp->stuck_after_s = (double)c->power_stuck_after_ns / 1e9;
}

/* An override that ends: from now, `left` seconds (>= 0, at most 3650 days, as a command can
 * set) of it. */
static void override_ends_in(op_powerctl *p, long long left)
{
	if (left > 3650ll * 86400)
		left = 3650ll * 86400;
	p->override_secs = left;
	p->override_until = time(NULL) + (time_t)left;
	p->override_end_ns = op_now_ns() + (uint64_t)left * 1000000000ull;
	if (!p->override_end_ns)
		p->override_end_ns = 1;
}

static void load_override(op_powerctl *p)
{
	FILE *f = fopen(p->override_path, "re");
	unsigned long long mw = 0;
	long long until = 0, secs = 0;
	p->override_mw = 0;
	p->override_until = 0;
	p->override_end_ns = 0;
	p->override_secs = 0;
	if (!f)
		return;
	int got = fscanf(f, "%llu %lld %lld", &mw, &until, &secs);
	if ((got == 2 || (got == 3 && secs >= 0)) && mw > 0) {
		p->override_mw = mw;
		if (until) {
			/* what is left of it by the wall clock (the only clock across a restart), never more
			 * than what was left when the file was last written (every minute): a clock that
			 * went back since, or restarts each on an early clock (no RTC), must not lengthen
			 * it (a file of the older form, without that figure, is taken as it says) */
			long long left = until - (long long)time(NULL);
			if (got == 3 && left > secs) /* (0 left is 0 left: "until cleared" is until 0) */
				left = secs;
			override_ends_in(p, left > 0 ? left : 0);
			save_override(p); /* what is left now: the next start counts from it */
			p->override_saved_ns = op_now_ns();
		}
	} else
		op_warn("%s is not an override (\"<milliwatts> <until, unix time or 0> <seconds left when saved>\"); ignored",
			p->override_path);
	fclose(f);
}

static int save_override(op_powerctl *p)
{
	char tmp[OP_CFG_STR + 48];
	snprintf(tmp, sizeof(tmp), "%s.tmp", p->override_path);
	if (!p->override_mw) {
		if (unlink(p->override_path) != 0)
			return errno == ENOENT ? 0 : -errno;
		return op_segment_sync_dir(p->cfg.state_dir); /* a clear that a power cut cannot undo */
	}
	FILE *f = fopen(tmp, "we");
	if (!f)
		return -errno;
	fprintf(f, "%" PRIu64 " %lld %lld\n", p->override_mw, (long long)p->override_until, p->override_secs);
	int bad = fflush(f) != 0 || fsync(fileno(f)) != 0;
	bad |= fclose(f) != 0;
	if (bad || rename(tmp, p->override_path) != 0) {
		int e = errno;
		unlink(tmp);
		return -e;
	}
	return op_segment_sync_dir(p->cfg.state_dir); /* the rename kept through a power cut */
}

/* list += "; " + text (the first item without the separator); cut at the list's size */
static void list_add(char *list, size_t cap, const char *text)
{
	size_t m = strlen(list);
	snprintf(list + m, cap - m, "%s%s", m ? "; " : "", text);
}

static void open_sensors(op_powerctl *p)
{
	const op_config *c = &p->cfg;
	const char *list = !strcmp(c->power_sensors, "auto") ? "nvml,rapl,hwmon" : c->power_sensors;
	int is_auto = !strcmp(c->power_sensors, "auto");
	op_plant_params pp;
	op_plant_defaults(&pp);
	pp.idle_w = (double)c->power_sim_idle_mw / 1e3;
	pp.full_w = (double)c->power_sim_full_mw / 1e3;
	pp.rate_full = c->power_sim_rate;
	pp.noise_w = (double)c->power_sim_noise_mw / 1e3;
	pp.seed = (uint64_t)getpid();

	p->missing[0] = p->unread[0] = 0;
	for (const char *q = list; *q && p->nsensors < MAX_SENSORS;) {
		char kind[16], err[256];
		while (*q == ',' || *q == ' ')
			q++;
		size_t n = strcspn(q, ", ");
		if (!n)
			break;
		snprintf(kind, sizeof(kind), "%.*s", (int)n, q);
		q += n;
		op_power_sensor *s;
		int e = op_power_sensor_open(kind, c->power_sysfs_root, c->power_hwmon_devices, &pp, &s, err, sizeof(err));
		if (e < 0) {
			list_add(p->missing, sizeof(p->missing), err);
			if (!is_auto) {
				p->listed_missing = 1;
				op_err("power.sensors lists %s, which cannot be read: %s", kind, err);
			} else if (e != -ENODEV) {
				/* There but not readable (RAPL root-only under the shipped unit): node power
				 * leaves it out and reads low, the site's meter shows more than the budget
				 * while status shows less. Not a fail-safe (auto counts what it can); said at
				 * start (below) and on every status. Absent sensors (-ENODEV) are normal. */
				list_add(p->unread, sizeof(p->unread), err);
			}
			continue;
		}
		const char *part = op_power_sensor_unread(s);
		if (part[0]) { /* some of it cannot be read: counted as far as it can, and said; listed
				* by name, the fail-safe (the site asked for all of it) */
			list_add(p->unread, sizeof(p->unread), part);
			if (!is_auto) {
				p->listed_missing = 1;
				list_add(p->missing, sizeof(p->missing), part);
				op_err("power.sensors lists %s, which cannot be read in full: %s", kind, part);
			}
		}
		op_power_sensor_set_stale_after(s, 2 * c->power_period_ns); /* a meter must publish each period */
		p->sensor[p->nsensors++] = s;
		op_info("power sensor %s", op_power_sensor_describe(s));
		if (!strcmp(kind, "nvml"))
			p->nvml = op_power_sensor_nvml(s);
	}
	if (!p->nsensors)
		op_info("no power sensor (%s)", p->missing[0] ? p->missing : "none listed");
	else if (p->unread[0]) /* counted without it: a sum that reads low */
		op_warn("power.sensors auto: present but unreadable, and left out of node power, which reads low: %s",
			p->unread);
}

int op_powerctl_open(op_powerctl **out, const op_config *cfg, void *zctx)
{
	op_powerctl *p = calloc(1, sizeof(*p));
	char ep[OP_CFG_STR + 32];
	int linger = 0, hwm = 4;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->cfg = *cfg;
	snprintf(p->override_path, sizeof(p->override_path), "%s/power-override", cfg->state_dir);
	open_sensors(p);
	params_from(&p->gp, cfg, p->nvml);
	p->gov = op_governor_new(&p->gp, (double)cfg->power_window_ns / 1e9);
	if (!p->gov) {
		op_powerctl_close(p);
		return -ENOMEM;
	}
	char err[300];
	if (op_power_schedule_parse(cfg->power_schedule, &p->sched, err, sizeof(err)) < 0)
		p->sched.n = 0; /* the loader checked it: cannot happen */
	load_override(p);
	op_governor_safe(&p->gp, &p->set);
	budget_now(p); /* before the stages start: infer must know whether a budget is in force */
	p->infer_ctl = zmq_socket(zctx, ZMQ_PUSH);
	zmq_setsockopt(p->infer_ctl, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(p->infer_ctl, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	op_stage_endpoint(ep, sizeof(ep), cfg, "infer-ctl.sock");
	if (zmq_connect(p->infer_ctl, ep) != 0) {
		op_err("power: cannot connect %s: %s", ep, zmq_strerror(errno));
		op_powerctl_close(p);
		return -EIO;
	}
	if (cfg->power_meter_endpoint[0]) {
		p->meter = zmq_socket(zctx, ZMQ_SUB);
		zmq_setsockopt(p->meter, ZMQ_LINGER, &linger, sizeof(linger));
		zmq_setsockopt(p->meter, ZMQ_SUBSCRIBE, "", 0);
		if (zmq_connect(p->meter, cfg->power_meter_endpoint) != 0)
			op_err("power.meter_endpoint %s: %s", cfg->power_meter_endpoint, zmq_strerror(errno));
	}
	*out = p;
	return 0;
}

void op_powerctl_close(op_powerctl *p)
{
	if (!p)
		return;
	for (int i = 0; i < p->nsensors; i++)
		op_power_sensor_close(p->sensor[i]); /* NVML restores clocks and limits */
	if (p->infer_ctl)
		zmq_close(p->infer_ctl);
	if (p->meter)
		zmq_close(p->meter);
	op_governor_free(p->gov);
	free(p);
}

void op_powerctl_reconfigure(op_powerctl *p, const op_config *cfg)
{
	char err[300];
	p->cfg = *cfg;
	params_from(&p->gp, cfg, p->nvml);
	op_governor_set_params(p->gov, &p->gp);
	if (op_power_schedule_parse(cfg->power_schedule, &p->sched, err, sizeof(err)) < 0)
		p->sched.n = 0;
	p->last_step_ns = 0; /* a new budget acts now */
}

static void budget_now(op_powerctl *p)
{
	time_t t = time(NULL);
	uint64_t mw;
	const uint64_t now = op_now_ns(); /* once: the end may pass between two readings */
	if (p->override_mw && p->override_end_ns && now >= p->override_end_ns) {
		char w[32];
		op_power_format(w, sizeof(w), (double)p->override_mw / 1e3);
		op_info("power override %s expired", w);
		p->override_mw = 0;
		p->override_until = 0;
		p->override_end_ns = 0;
		p->override_secs = 0;
		save_override(p);
	} else if (p->override_mw && p->override_end_ns && now - p->override_saved_ns >= 60000000000ull) {
		/* what is left, once a minute: a restart gives back at most a minute of it */
		const uint64_t end = p->override_end_ns; /* > now: not expired */
		override_ends_in(p, (long long)((end - now) / 1000000000ull));
		p->override_end_ns = end; /* the end stays where it was (the file's figure rounds down) */
		save_override(p);
		p->override_saved_ns = now;
	}
	if (p->override_mw) {
		mw = p->override_mw;
		snprintf(p->budget_source, sizeof(p->budget_source), "override");
	} else {
		struct tm tm;
		int which;
		localtime_r(&t, &tm);
		mw = op_power_schedule_budget(&p->sched, p->cfg.power_budget_mw, &tm, &which);
		if (which >= 0)
			snprintf(p->budget_source, sizeof(p->budget_source), "schedule entry %d", which + 1);
		else
			snprintf(p->budget_source, sizeof(p->budget_source), "power.budget");
	}
	if (mw != p->budget_mw) {
		char a[32], b[32];
		op_power_format(a, sizeof(a), (double)p->budget_mw / 1e3);
		op_power_format(b, sizeof(b), (double)mw / 1e3);
		if (mw)
			op_info("power budget %s (%s; was %s)", b, p->budget_source, p->budget_mw ? a : "none");
		else
			op_info("no power budget now (was %s): measuring only", a);
		p->budget_mw = mw;
	}
	/* infer starts safe only while a budget is in force */
	if (enforcing(p) != p->enforced) {
		p->enforced = enforcing(p);
		if (p->enforced)
			setenv("OUTPOST_POWER_ENFORCED", "1", 1);
		else
			unsetenv("OUTPOST_POWER_ENFORCED");
	}
}

static void drain_meter(op_powerctl *p, uint64_t now)
{
	char msg[64];
	int n;
	if (!p->meter)
		return;
	while ((n = zmq_recv(p->meter, msg, sizeof(msg) - 1, ZMQ_DONTWAIT)) >= 0) {
		msg[n < (int)sizeof(msg) - 1 ? n : (int)sizeof(msg) - 1] = 0;
		for (int k = (int)strlen(msg); k > 0 && (msg[k - 1] == '\n' || msg[k - 1] == '\r' || msg[k - 1] == ' '); k--)
			msg[k - 1] = 0; /* "143.2W\n" as a line-oriented meter sends it */
		char *end;
		double w = strtod(msg, &end);
		while (*end == ' ')
			end++;
		if (end == msg || (*end && strcmp(end, "W")) || !isfinite(w) || w < 0) { /* "nan", "-5W": no reading */
			op_text_printable(msg); /* off the wire, into the journal */
			p->meter_rejected++;
			op_warn("power meter: '%s' is not a reading in watts; ignored (%llu so far)", msg,
				(unsigned long long)p->meter_rejected);
			continue;
		}
		for (int i = 0; i < p->nsensors; i++)
			if (!strcmp(op_power_sensor_kind(p->sensor[i]), "meter"))
				op_power_sensor_feed(p->sensor[i], w, now);
	}
}

/* The simulated plant turns the work infer reports into watts, continuously. */
static void feed_plant(op_powerctl *p, uint64_t now, const op_power_infer *inf)
{
	if (!p->last_feed_ns) {
		p->last_feed_ns = now;
		p->feed_inf = *inf;
		return;
	}
	double dt = (double)(now - p->last_feed_ns) / 1e9, ev = inf->events - p->feed_inf.events;
	/* infer reports its count every 250 ms: spread each report's events over the time since the
	 * one before, rather than putting them all into the moment the report arrived */
	if (dt < 0.05 || (ev == 0 && dt < 0.5))
		return;
	if (ev < 0)
		ev = 0;
	/* Energy follows the work, not the count: an event of 300 pulses costs the node more than
	 * one of 10. The interval's events are weighed by their work against the long-run work per
	 * event (a minute's decayed sums), so event_j stays the energy of an average event while
	 * the watts follow the time inference ran, as a real node's do. Counted as plain events,
	 * the mix of small and large events in each second made the simulated watts swing ±5% at
	 * a steady duty cycle: noise no controller can act on before the second is over. */
	double work = inf->work_ns - p->feed_inf.work_ns;
	if (ev > 0 && work > 0) {
		double decay = exp(-dt / 60.0);
		p->feed_work_ns = p->feed_work_ns * decay + work;
		p->feed_events = p->feed_events * decay + ev;
		ev = work * p->feed_events / p->feed_work_ns;
	}
	for (int i = 0; i < p->nsensors; i++) {
		op_plant *pl = op_power_sensor_plant(p->sensor[i]);
		if (pl)
			op_plant_work(pl, dt, ev, p->set.clock_frac);
	}
	p->last_feed_ns = now;
	p->feed_inf = *inf;
}

static void send_setting(op_powerctl *p)
{
	char msg[96];
	/* every period, so a restarted infer stage hears it within one; "off" when no budget holds.
	 * The fail-safe setting rides along (power.min_batch, power.min_duty): infer falls back to
	 * it by itself when the governor falls silent, and a reload changes it without a restart. */
	int n = p->enforced ? snprintf(msg, sizeof(msg), "power %u %.4f %d %u %.4f", p->set.batch, p->set.duty,
				       p->set.failsafe, p->gp.batch_min, p->gp.duty_min)
			    : snprintf(msg, sizeof(msg), "power off");
	zmq_send(p->infer_ctl, msg, (size_t)n, ZMQ_DONTWAIT);
}

static void slowest_setting(const op_powerctl *p, char *out, size_t cap);

void op_powerctl_tick(op_powerctl *p, uint64_t now, const op_power_infer *inf)
{
	drain_meter(p, now);
	feed_plant(p, now, inf);
	budget_now(p);
	uint64_t period = p->cfg.power_period_ns;
	if (p->last_step_ns && now - p->last_step_ns < period) {
		return;
	}
	double dt = p->last_step_ns ? (double)(now - p->last_step_ns) / 1e9 : (double)period / 1e9;
	p->last_step_ns = now;

	/* node power: the sum of every counted sensor; any one unreadable = no reading */
	double sum = 0;
	int ok = p->nsensors > 0 && !p->listed_missing;
	p->reading_err[0] = 0;
	if (!p->nsensors)
		snprintf(p->reading_err, sizeof(p->reading_err), "no power sensor (%s)", p->missing);
	else if (p->listed_missing)
		snprintf(p->reading_err, sizeof(p->reading_err), "a listed sensor is missing: %s", p->missing);
	for (int i = 0; i < p->nsensors && ok; i++) {
		double w;
		char err[256];
		if (op_power_sensor_read(p->sensor[i], now, &w, err, sizeof(err)) < 0) {
			ok = 0;
			p->sensor_errors++;
			snprintf(p->reading_err, sizeof(p->reading_err), "%s", err);
		} else
			sum += w;
	}
	p->reading_ok = ok;
	if (ok)
		p->last_w = sum;

	op_governor_input in = {.power_w = ok ? sum : NAN, .budget_w = (double)p->budget_mw / 1e3,
				.utilisation = NAN, .events = 0, .dt_s = dt};
	if (p->have_last && inf->reported) {
		double work = inf->work_ns - p->last_inf.work_ns, wait = inf->wait_ns - p->last_inf.wait_ns;
		if (work >= 0 && wait >= 0 && work + wait > 0)
			in.utilisation = work / (work + wait);
		in.events = inf->events - p->last_inf.events;
		if (in.events < 0)
			in.events = 0;
	}
	p->last_inf = *inf;
	p->have_last = 1;

	if (!enforcing(p) && !ok) {
		/* no budget and nothing to read: nothing to hold, and no fail-safe either (a budget set
		 * later while still blind enters a new one, logged and alerted afresh) */
		op_power_map(&p->gp, 1.0, &p->set);
		if (p->in_failsafe)
			op_info("no power budget in force: the fail-safe ends after %.1f s (readings still missing: %s)",
				(double)(now - p->failsafe_entered_ns) / 1e9, p->reading_err);
		p->in_failsafe = p->failsafe_alerted = 0;
		send_setting(p);
		return;
	}
	op_governor_step(p->gov, &in, &p->set);
	if (p->set.failsafe && enforcing(p) && !p->in_failsafe) {
		p->in_failsafe = 1;
		p->failsafe_entered_ns = now;
		op_err("power fail-safe: %s; inference at its slowest setting (duty %.0f%%) until readings return",
		       p->reading_err, 100 * p->set.duty);

	} else if (!p->set.failsafe && p->in_failsafe) {
		p->in_failsafe = 0;
		op_info("power readings back after %.1f s: the governor controls again",
			(double)(now - p->failsafe_entered_ns) / 1e9);
	}
	/* north hears of a fail-safe that lasts (3 periods): a counter baseline at start or one lost
	 * reading is in the telemetry's failsafe_periods, not worth a person's attention */
	if (p->in_failsafe && !p->failsafe_alerted && now - p->failsafe_entered_ns >= 3 * period) {
		char text[700];
		snprintf(text, sizeof(text), "power fail-safe for %.0f s: %s", (double)(now - p->failsafe_entered_ns) / 1e9,
			 p->reading_err);
		op_outbox_alert(&p->cfg, "power_failsafe", text);
		p->failsafe_alerted = 1;
	}
	if (!p->in_failsafe)
		p->failsafe_alerted = 0;
	send_setting(p);
	if (p->nvml && (p->gp.clocks || p->gp.power_limit)) {
		char err[256];
		if (op_nvml_set(p->nvml, p->set.clock_frac, p->set.limit_frac, err, sizeof(err)) < 0)
			op_warn("power: %s", err);
	}
	op_power_figures f;
	op_governor_figures(p->gov, &f);
	if (f.stuck && !p->was_stuck)
		op_outbox_alert(&p->cfg, "power_stuck_low", "throughput far below expectation at low power, unthrottled");
	if (f.stuck && !p->was_stuck)
		op_err("power: stuck at low power: throughput far below what this node has shown, unthrottled and "
		       "%.0f W under budget, for %.0f s (clocks held low? a throttled CPU?)",
		       f.headroom_w, f.stuck_for_s);
	p->was_stuck = f.stuck;
	if (f.unreachable && !p->was_unreachable) {
		char text[600], floor_keys[160];
		slowest_setting(p, floor_keys, sizeof(floor_keys));
		/* how much of what it was allowed inference used: near nothing, and the draw is not
		 * its own; near all, and the floor keeps more than the budget leaves */
		char used[48] = "";
		if (!isnan(f.utilisation))
			snprintf(used, sizeof(used), ", inference using %.0f%% of it", 100 * f.utilisation);
		snprintf(text, sizeof(text),
			 "power budget out of reach: %.1f W mean over the window at the slowest setting (%s%s), over "
			 "the budget of %.1f W for %.0f s; throttling inference cannot hold it: the draw is not "
			 "inference's (an idle draw, another load), or those settings keep more than the budget leaves",
			 f.window_mean_w, floor_keys, used, f.budget_w, f.unreachable_for_s);
		op_err("%s", text);
		p->unreachable_budget_w = f.budget_w;
		/* north hears of it once an hour at most: a budget on the edge may come and go */
		if (!p->unreachable_alert_ns || now - p->unreachable_alert_ns >= 3600ull * 1000000000ull) {
			op_outbox_alert(&p->cfg, "power_budget_unreachable", text);
			p->unreachable_alert_ns = now;
		}
	} else if (!f.unreachable && p->was_unreachable && f.budget_w == p->unreachable_budget_w && !p->set.failsafe) {
		/* (another budget, or none, ends the report without saying anything of its reach) */
		op_info("power: the budget of %.1f W is within reach again (%.1f W mean over the window)", f.budget_w,
			f.window_mean_w);
	}
	p->was_unreachable = f.unreachable;
}

/* The governor's slowest setting, named by the keys that set it: "power.min_duty 5%, …". */
static void slowest_setting(const op_powerctl *p, char *out, size_t cap)
{
	size_t m = (size_t)snprintf(out, cap, "power.min_duty %.0f%%", 100 * p->gp.duty_min);
	if (p->gp.batch_sat && m < cap)
		m += (size_t)snprintf(out + m, cap - m, ", power.min_batch %u", p->gp.batch_min);
	if (p->gp.clocks && m < cap)
		m += (size_t)snprintf(out + m, cap - m, ", power.min_clock %.0f%%", 100 * p->gp.clock_min_frac);
	if (p->gp.power_limit && m < cap)
		snprintf(out + m, cap - m, ", power.min_limit %.0f%%", 100 * p->gp.limit_min_frac);
}

static int parse_duration_s(const char *s, long *out)
{
	/* 90s, 30m, 2h, 1d */
	char *end;
	double v = strtod(s, &end);
	if (end == s || !isfinite(v) || v <= 0)
		return -1;
	double mul = !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600 : !strcmp(end, "d") ? 86400 : -1;
	/* at least a second (0 would mean "until cleared"), at most ten years */
	if (mul < 0 || v * mul < 1 || v * mul > 3650.0 * 86400)
		return -1;
	*out = (long)(v * mul);
	return 0;
}

void op_powerctl_command(op_powerctl *p, const char *args, char *reply, size_t cap)
{
	char a[4][48] = {{0}};
	int n = sscanf(args, "%47s %47s %47s %47s", a[0], a[1], a[2], a[3]);
	char w[32];

	if (n >= 1 && !strcmp(a[0], "set")) {
		uint64_t mw;
		char err[200];
		long secs = 0;
		if (n < 2 || op_power_parse_mw(a[1], &mw, err, sizeof(err)) < 0 || mw == 0) {
			snprintf(reply, cap, "error: power set: %s\n", n < 2 ? "say the budget, e.g. 180W" : mw == 0 && n >= 2 ? "a budget must be above 0W (power clear ends the override)" : err);
			return;
		}
		if (n >= 3) {
			const char *d = !strcmp(a[2], "for") ? a[3] : a[2];
			if (parse_duration_s(d, &secs) < 0) {
				snprintf(reply, cap, "error: power set: '%s' is not a duration (90s, 30m, 2h, 1d)\n", d);
				return;
			}
		}
		p->override_mw = mw;
		p->override_secs = 0;
		p->override_until = 0;
		p->override_end_ns = 0;
		if (secs)
			override_ends_in(p, secs);
		p->override_saved_ns = op_now_ns();
		int e = save_override(p);
		op_power_format(w, sizeof(w), (double)mw / 1e3);
		op_info("power override %s set by the operator%s", w, secs ? " for a limited time" : " until cleared");
		p->last_step_ns = 0;
		snprintf(reply, cap, "power budget %s%s%s\n", w,
			 secs ? " until " : " until `outpostctl power clear`", "");
		if (secs) {
			struct tm tm;
			time_t until = p->override_until;
			localtime_r(&until, &tm);
			size_t m = strlen(reply) - 1;
			strftime(reply + m, cap - m, "%Y-%m-%d %H:%M:%S %Z\n", &tm);
		}
		if (e < 0) {
			size_t m = strlen(reply);
			snprintf(reply + m, cap - m, "warning: could not save it in %s (%s): a restart forgets it\n",
				 p->override_path, strerror(-e));
		}
		return;
	}
	if (n >= 1 && !strcmp(a[0], "clear")) {
		int had = p->override_mw != 0;
		p->override_mw = 0;
		p->override_until = 0;
		p->override_end_ns = 0;
		p->override_secs = 0;
		save_override(p);
		p->last_step_ns = 0;
		budget_now(p);
		op_power_format(w, sizeof(w), (double)p->budget_mw / 1e3);
		snprintf(reply, cap, "%s; budget now %s (%s)\n", had ? "override cleared" : "there was no override",
			 p->budget_mw ? w : "none", p->budget_source);
		return;
	}
	if (n <= 0 || !strcmp(a[0], "show")) {
		op_powerctl_status(p, reply, cap);
		return;
	}
	snprintf(reply, cap, "error: power: unknown request '%s' (set POWER [for DURATION], clear, show)\n", a[0]);
}

void op_powerctl_status(op_powerctl *p, char *out, size_t cap)
{
	op_power_figures f;
	char pw[32], bw[32], mw[32];
	size_t m = 0;
#define OUT(...) (m += (size_t)snprintf(out + m, m < cap ? cap - m : 0, __VA_ARGS__))
	out[0] = 0;
	op_governor_figures(p->gov, &f);
	if (!p->nsensors && !enforcing(p)) {
		OUT("power    not measured: %s; no budget\n", p->missing[0] ? p->missing : "no sensor listed");
		return;
	}
	op_power_format(pw, sizeof(pw), p->last_w);
	op_power_format(bw, sizeof(bw), (double)p->budget_mw / 1e3);
	op_power_format(mw, sizeof(mw), f.window_mean_w);
	if (enforcing(p))
		OUT("power    %s of %s budget (%s), %.0f%% used; %.0f s mean %s, headroom %.1f W\n",
		    p->reading_ok ? pw : "no reading", bw, p->budget_source,
		    p->reading_ok ? 100 * p->last_w / ((double)p->budget_mw / 1e3) : 0.0,
		    (double)p->cfg.power_window_ns / 1e9, mw, f.headroom_w);
	else
		OUT("power    %s (no budget: measuring only); %.0f s mean %s\n", p->reading_ok ? pw : "no reading",
		    (double)p->cfg.power_window_ns / 1e9, mw);
	if (enforcing(p))
		OUT("governor limiting: %s (duty %.0f%%, batch %u%s%s); %.1f mJ/event p50, %.1f p99; "
		    "%" PRIu64 " windows over budget, %" PRIu64 " seconds over by >10%%\n",
		    p->set.limiting, 100 * p->set.duty, p->set.batch, p->gp.clocks ? ", clocks " : "",
		    p->gp.clocks ? (p->set.clock_frac < 1 ? "locked" : "free") : "", 1e3 * f.j_per_event_p50,
		    1e3 * f.j_per_event_p99, f.over_budget_windows, f.over_1s_periods);
	if (p->set.failsafe && enforcing(p))
		OUT("POWER    FAIL-SAFE: %s; slowest setting until readings return (%" PRIu64 " periods so far)\n",
		    p->reading_err, f.failsafe_periods);
	if (f.stuck)
		OUT("POWER    STUCK LOW: throughput far below what this node has shown while unthrottled and far "
		    "under budget, for %.0f s\n", f.stuck_for_s);
	if (f.unreachable && enforcing(p)) {
		char floor_keys[160];
		slowest_setting(p, floor_keys, sizeof(floor_keys));
		OUT("POWER    BUDGET OUT OF REACH: the window mean over it at the slowest setting (%s) for %.0f s; "
		    "throttling inference cannot hold it\n",
		    floor_keys, f.unreachable_for_s);
	}
	if (p->override_mw) {
		char ow[32];
		op_power_format(ow, sizeof(ow), (double)p->override_mw / 1e3);
		if (p->override_until) {
			char until[64];
			struct tm tm;
			/* the end by the monotonic clock, shown in today's wall-clock time */
			uint64_t now = op_now_ns();
			time_t u = time(NULL) + (time_t)(p->override_end_ns > now ? (p->override_end_ns - now) / 1000000000ull : 0);
			localtime_r(&u, &tm);
			strftime(until, sizeof(until), "%Y-%m-%d %H:%M %Z", &tm);
			OUT("override %s set by an operator, until %s\n", ow, until);
		} else
			OUT("override %s set by an operator, until cleared (outpostctl power clear)\n", ow);
	}
	OUT("sensors  ");
	for (int i = 0; i < p->nsensors; i++)
		OUT("%s%s", i ? "; " : "", op_power_sensor_describe(p->sensor[i]));
	OUT("%s\n", p->nsensors ? "" : "none");
	if (p->unread[0]) /* (with no sensor at all, the "not measured" line above names it) */
		OUT("POWER    NOT COUNTED (present, unreadable; node power reads low): %s\n", p->unread);
#undef OUT
}

const char *op_powerctl_brief(op_powerctl *p)
{
	op_power_figures f;
	op_governor_figures(p->gov, &f);
	p->brief[0] = 0;
	if (enforcing(p) && p->set.failsafe)
		snprintf(p->brief, sizeof(p->brief), "POWER FAIL-SAFE (no reading)");
	else if (enforcing(p))
		snprintf(p->brief, sizeof(p->brief), "power %.0f/%.0f W", p->last_w, (double)p->budget_mw / 1e3);
	if (f.stuck) {
		size_t m = strlen(p->brief);
		snprintf(p->brief + m, sizeof(p->brief) - m, "%sPOWER STUCK LOW", m ? ", " : "");
	}
	if (f.unreachable && enforcing(p)) {
		size_t m = strlen(p->brief);
		snprintf(p->brief + m, sizeof(p->brief) - m, "%sPOWER BUDGET OUT OF REACH", m ? ", " : "");
	}
	return p->brief;
}

void op_powerctl_metrics(op_powerctl *p, char *out, size_t cap)
{
	op_power_figures f;
	size_t m = 0;
#define OUT(...) (m += (size_t)snprintf(out + m, m < cap ? cap - m : 0, __VA_ARGS__))
	out[0] = 0;
	op_governor_figures(p->gov, &f);
	static const char *const acts[] = {"none", "batch", "duty", "clocks", "power_limit", "failsafe"};
	OUT("# HELP outpost_power_watts Node power, the sum of the counted sensors (last period).\n"
	    "# TYPE outpost_power_watts gauge\n");
	if (p->reading_ok)
		OUT("outpost_power_watts %.3f\n", p->last_w);
	else
		OUT("outpost_power_watts NaN\n");
	OUT("# HELP outpost_power_budget_watts The power budget in force (0: none).\n"
	    "# TYPE outpost_power_budget_watts gauge\noutpost_power_budget_watts %.3f\n", (double)p->budget_mw / 1e3);
	OUT("# HELP outpost_power_window_mean_watts Mean power over power.window.\n"
	    "# TYPE outpost_power_window_mean_watts gauge\noutpost_power_window_mean_watts %.3f\n", f.window_mean_w);
	OUT("# HELP outpost_power_headroom_watts Budget minus power (last period).\n"
	    "# TYPE outpost_power_headroom_watts gauge\noutpost_power_headroom_watts %.3f\n", f.headroom_w);
	OUT("# HELP outpost_power_joules_per_event_p50 Energy per inferred event, median over the last 10 minutes.\n"
	    "# TYPE outpost_power_joules_per_event_p50 gauge\noutpost_power_joules_per_event_p50 %.6f\n",
	    f.j_per_event_p50);
	OUT("# HELP outpost_power_joules_per_event_p99 Energy per inferred event, 99th percentile over the last 10 "
	    "minutes.\n# TYPE outpost_power_joules_per_event_p99 gauge\noutpost_power_joules_per_event_p99 %.6f\n",
	    f.j_per_event_p99);
	OUT("# HELP outpost_power_duty Inference duty cycle set by the governor.\n"
	    "# TYPE outpost_power_duty gauge\noutpost_power_duty %.4f\n", p->set.duty);
	OUT("# HELP outpost_power_limiting The actuator now limiting (1 for the one that is).\n"
	    "# TYPE outpost_power_limiting gauge\n");
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
		OUT("outpost_power_limiting{actuator=\"%s\"} %d\n", acts[i], !strcmp(acts[i], p->set.limiting));
	OUT("# HELP outpost_power_failsafe 1 while the governor has no reading and holds the safe setting.\n"
	    "# TYPE outpost_power_failsafe gauge\noutpost_power_failsafe %d\n", p->set.failsafe && enforcing(p));
	OUT("# HELP outpost_power_failsafe_periods_total Periods spent in the fail-safe.\n"
	    "# TYPE outpost_power_failsafe_periods_total counter\noutpost_power_failsafe_periods_total %" PRIu64 "\n",
	    f.failsafe_periods);
	OUT("# HELP outpost_power_over_budget_windows_total Periods whose window mean was over the budget.\n"
	    "# TYPE outpost_power_over_budget_windows_total counter\noutpost_power_over_budget_windows_total %" PRIu64 "\n",
	    f.over_budget_windows);
	OUT("# HELP outpost_power_stuck_low 1 while throughput is far below expectation at low power.\n"
	    "# TYPE outpost_power_stuck_low gauge\noutpost_power_stuck_low %d\n", f.stuck);
	OUT("# HELP outpost_power_budget_unreachable 1 while power is over the budget at the slowest setting.\n"
	    "# TYPE outpost_power_budget_unreachable gauge\noutpost_power_budget_unreachable %d\n",
	    f.unreachable && enforcing(p));
	OUT("# HELP outpost_power_sensor_errors_total Failed sensor reads.\n"
	    "# TYPE outpost_power_sensor_errors_total counter\noutpost_power_sensor_errors_total %" PRIu64 "\n",
	    p->sensor_errors);
	OUT("# HELP outpost_power_meter_rejected_total Site meter messages that were not a reading in watts.\n"
	    "# TYPE outpost_power_meter_rejected_total counter\noutpost_power_meter_rejected_total %" PRIu64 "\n",
	    p->meter_rejected);
#undef OUT
}

void op_powerctl_json(op_powerctl *p, char *out, size_t cap)
{
	op_power_figures f;
	op_governor_figures(p->gov, &f);
	snprintf(out, cap,
		 "\"power\": {\"watts\": %.3f, \"reading\": %s, \"budget_watts\": %.3f, \"budget_source\": \"%s\", "
		 "\"window_mean_watts\": %.3f, \"headroom_watts\": %.3f, \"limiting\": \"%s\", \"duty\": %.4f, "
		 "\"batch\": %u, \"failsafe\": %s, \"failsafe_periods\": %" PRIu64 ", \"over_budget_windows\": %" PRIu64
		 ", \"over_1s_periods\": %" PRIu64 ", \"j_per_event_p50\": %.6f, \"j_per_event_p99\": %.6f, "
		 "\"stuck_low\": %s, \"budget_unreachable\": %s, \"sensors\": %d, \"failsafe_for_s\": %.3f}",
		 p->reading_ok ? p->last_w : 0.0, p->reading_ok ? "true" : "false", (double)p->budget_mw / 1e3,
		 p->budget_source, f.window_mean_w, f.headroom_w, p->set.limiting, p->set.duty, p->set.batch,
		 p->set.failsafe && enforcing(p) ? "true" : "false", f.failsafe_periods, f.over_budget_windows,
		 f.over_1s_periods, f.j_per_event_p50, f.j_per_event_p99, f.stuck ? "true" : "false",
		 f.unreachable && enforcing(p) ? "true" : "false", p->nsensors,
		 p->in_failsafe ? (double)(op_now_ns() - p->failsafe_entered_ns) / 1e9 : 0.0);
}
