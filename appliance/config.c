/*
 * config.c — the schema table and the YAML loader behind config.h.
 *
 * One table (keys[] below) says everything about every key: its YAML path, type, unit,
 * bounds, default (written as an operator would write it), target field, whether it can be
 * reloaded, and a one-line description. The loader, check-config, --print-defaults, the
 * effective-config printer and docs/configuration.md are all generated from it.
 *
 * The loader must never half-apply a file: it loads into a copy and commits only when there
 * were no errors. It reports every error of a file in one pass, each as FILE:LINE:COL with the
 * offending line and a caret, because the operator may be editing over a 2.4 kbit/s link.
 */
#include "appliance/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "power/schedule.h"
#include "uplink/sender.h"

enum kind { K_STR, K_BOOL, K_U32, K_U64, K_INT, K_SIZE, K_DUR, K_ENUM, K_POWER, K_PCT, K_RATE };

typedef struct key {
	const char *path;
	enum kind kind;
	const char *def;
	uint64_t min, max;
	size_t off, size;
	int reloadable;
	const char *choices; /* K_ENUM: "a|b|c" */
	const char *desc;
} key;

#define F(field) offsetof(op_config, field), sizeof(((op_config *)0)->field)
/* The longest socket path the stages bind, run_dir + "/ingest-ctl.sock" (appliance/stage.c),
 * must fit sun_path's 107 characters: a longer run_dir passed the check and then every bind
 * failed. */
#define OP_RUN_DIR_MAX (107 - sizeof("/ingest-ctl.sock") + 1)
#define KiB 1024ull
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define SEC 1000000000ull

static const key keys[] = {
	{"site.name", K_STR, "outpost", 1, 63, F(site_name), 0, NULL,
	 "name of this site; goes into every segment and its file name"},
	{"paths.state_dir", K_STR, "/var/lib/outpost", 1, OP_CFG_STR - 1, F(state_dir), 0, NULL,
	 "segments/, outbox/, sent/, quarantine/ live here; must survive reboots"},
	{"paths.run_dir", K_STR, "/run/outpost", 1, OP_RUN_DIR_MAX, F(run_dir), 0, NULL,
	 "control socket and the stages' ipc sockets (a socket's path, run_dir/ingest-ctl.sock, must fit "
	 "Linux's 107 characters)"},
	{"ingest.pull_endpoint", K_STR, "tcp://127.0.0.1:5555", 0, OP_CFG_STR - 1, F(ingest_pull), 0, NULL,
	 "ZeroMQ endpoint the lossless PULL socket binds (loopback by default: open it to the DAQ "
	 "network deliberately); empty = none"},
	{"ingest.sub_endpoint", K_STR, "", 0, OP_CFG_STR - 1, F(ingest_sub), 0, NULL,
	 "PUB endpoint to subscribe to for a live view (lossy upstream; gaps are counted); empty = none"},
	{"ingest.max_pulses", K_U32, "200000", 1, 16777216, F(ingest_max_pulses), 0, NULL,
	 "events with more pulses are rejected (reason too_many_pulses)"},
	{"ingest.max_message_bytes", K_SIZE, "4MiB", 64, 1 * GiB, F(ingest_max_message_bytes), 0, NULL,
	 "larger messages are rejected (reason oversize)"},
	{"ingest.window_events", K_U32, "65536", 16, 16777216, F(ingest_window_events), 0, NULL,
	 "accepted events held until the store says they are durable; when full, ingest stops reading "
	 "and the sender blocks"},
	{"ingest.window_bytes", K_SIZE, "512MiB", 1 * MiB, 64 * GiB, F(ingest_window_bytes), 0, NULL,
	 "memory those held events may take (each is also in ingest's log under paths.run_dir, in "
	 "memory on a tmpfs): ingest stops reading at this, as at window_events, and when the log "
	 "keeps this much for an event held long (beyond its two newest files); one message of "
	 "ingest.max_message_bytes always fits in the window"},
	{"ingest.resend_after", K_DUR, "60s", 1 * SEC, 3600 * SEC, F(ingest_resend_after_ns), 1, NULL,
	 "backstop: resend an event unacknowledged this long (at least 3 x store.rotate_age is used)"},
	{"ingest.rcvhwm", K_U32, "10000", 1, 10000000, F(ingest_rcvhwm), 0, NULL,
	 "ZeroMQ receive high-water mark (messages) of the ingest sockets"},
	{"infer.method", K_ENUM, "fp4", 0, 0, F(infer_method), 0, "fp4|linefit",
	 "reconstruction run on every event: the FP4 event network (seeded by LineFit on HLC pulses) "
	 "or LineFit alone"},
	{"infer.model", K_STR, "", 0, OP_CFG_STR - 1, F(infer_model), 0, NULL,
	 "model file for infer.method fp4 (docs/model-format.md); empty = the model built into outpostd"},
	{"infer.backend", K_ENUM, "auto", 0, 0, F(infer_backend), 0, "auto|cpu|cuda",
	 "where the network runs: auto = the GPU when one is usable, else the CPU (the log says which "
	 "and why); cuda = the GPU or the infer stage does not start"},
	{"infer.threads", K_U32, "1", 1, 64, F(infer_threads), 0, NULL,
	 "CPU threads of the infer stage: LineFit's first guesses and the network (with a GPU: the "
	 "first guesses and the pulse features)"},
	{"infer.charge_weighted", K_BOOL, "true", 0, 1, F(infer_charge_weighted), 0, NULL,
	 "LineFit: weight each pulse by its charge"},
	{"infer.trim", K_BOOL, "true", 0, 1, F(infer_trim), 0, NULL,
	 "LineFit: fit again without pulses far from the first line (noise, scattered light)"},
	{"infer.batch_events", K_U32, "256", 1, 65536, F(infer_batch_events), 0, NULL,
	 "events reconstructed per batch"},
	{"store.rotate_rows", K_U64, "100000", 1, 100000000, F(store_rotate_rows), 1, NULL,
	 "seal the open segment after this many rows"},
	{"store.rotate_bytes", K_SIZE, "64MiB", 64 * KiB, 16 * GiB, F(store_rotate_bytes), 1, NULL,
	 "seal the open segment when its file reaches this size"},
	{"store.rotate_age", K_DUR, "10s", SEC / 10, 86400 * SEC, F(store_rotate_age_ns), 1, NULL,
	 "seal the open segment this long after its first row (events are acknowledged at seal)"},
	{"store.deflate_level", K_INT, "4", 0, 9, F(store_deflate_level), 1, NULL,
	 "HDF5 deflate level of result segments (0 = uncompressed)"},
	{"store.chunk_rows", K_U32, "4096", 16, 1048576, F(store_chunk_rows), 1, NULL,
	 "HDF5 chunk size in rows"},
	{"uplink.north_endpoint", K_STR, "tcp://127.0.0.1:5600", 0, OP_CFG_STR - 1, F(uplink_north), 0, NULL,
	 "outpost-north receiver; empty = keep segments in outbox/"},
	{"uplink.chunk_bytes", K_SIZE, "1MiB", 4 * KiB, 64 * MiB, F(uplink_chunk_bytes), 1, NULL,
	 "bytes per transfer chunk"},
	{"uplink.timeout", K_DUR, "30s", SEC / 10, 3600 * SEC, F(uplink_timeout_ns), 1, NULL,
	 "no reply from north for this long: reconnect and resume"},
	{"uplink.retry", K_DUR, "5s", SEC / 100, 3600 * SEC, F(uplink_retry_ns), 1, NULL,
	 "wait before reconnecting to north"},
	{"uplink.rate", K_RATE, "0", 0, 100000000000ull, F(uplink_rate_bps), 1, NULL,
	 "cap on what the uplink puts on the wire, every byte counted (retransmits, keepalives, framing, an "
	 "estimate of TCP/IP): 2.4kbit/s, 250Mbit/s; 0: none"},
	{"uplink.daily_quota", K_SIZE, "0", 0, 1ull << 50, F(uplink_daily_quota), 1, NULL,
	 "bytes the uplink may send per UTC day, counted like uplink.rate (connections' handshakes included) and "
	 "kept across restarts (0: none); sending, and connecting, stop before it would be exceeded and resume at "
	 "UTC midnight (meanwhile an alert that fits in what is left still goes)"},
	{"uplink.alert_reserve", K_SIZE, "64KiB", 0, 1ull << 50, F(uplink_alert_reserve), 1, NULL,
	 "of each day's uplink.daily_quota, bytes only alerts may spend: results, telemetry and bulk stop this far "
	 "short of the quota, so that a day's data cannot leave an alert no room (at most half the quota; 0: none)"},
	{"uplink.windows", K_STR, "", 0, 255, F(uplink_windows), 1, NULL,
	 "when the link may be used, UTC: 'HH:MM-HH:MM' ranges separated by ';' (e.g. \"02:10-06:40; 14:00-15:30\", "
	 "the satellite's passes); empty: whenever north answers"},
	{"uplink.disk_reserve", K_SIZE, "1GiB", 0, 1ull << 50, F(uplink_disk_reserve), 1, NULL,
	 "free space kept on the state directory's file system: below it, waiting files are evicted (expired "
	 "first, then bulk, telemetry, results, oldest first; never alerts), each reported north as a tombstone (0: "
	 "no reserve)"},
	{"uplink.max_age", K_DUR, "0s", 0, 3650 * 86400 * SEC, F(uplink_max_age_ns), 1, NULL,
	 "files waiting longer than this are evicted as expired, with a tombstone (0: they never expire)"},
	{"uplink.telemetry_interval", K_DUR, "15m", 0, 86400 * SEC, F(uplink_telemetry_ns), 1, NULL,
	 "how often a status snapshot (outpostctl status --json) is queued north as telemetry (0: never); alerts "
	 "(restart budget spent, safe mode, power fail-safe, …) are queued when they happen and go first"},
	{"uplink.telemetry_share", K_PCT, "20%", 1, 98, F(uplink_telemetry_share_pct), 1, NULL,
	 "telemetry's share of the link when results and bulk also wait (alerts always go first)"},
	{"uplink.bulk_share", K_PCT, "10%", 1, 98, F(uplink_bulk_share_pct), 1, NULL,
	 "bulk's share (files placed in state_dir/outbox/bulk/): the floor it keeps when everything waits"},
	{"uplink.curve_key", K_STR, "", 0, OP_CFG_STR - 1, F(uplink_curve_key), 1, NULL,
	 "this appliance's CURVE key pair (a .key file from `outpostctl keygen NAME`, mode 0600); with "
	 "uplink.north_public_key, the link north is encrypted and north admits only listed keys (empty: plaintext)"},
	{"uplink.north_public_key", K_STR, "", 0, OP_CFG_STR - 1, F(uplink_north_public_key), 1, NULL,
	 "north's CURVE public key (its .pub file); set with uplink.curve_key"},
	{"supervisor.stage_deadline", K_DUR, "30s", SEC, 3600 * SEC, F(watchdog_stage_deadline_ns), 1, NULL,
	 "a stage silent, or busy without progress, this long is killed and restarted"},
	{"supervisor.restart_burst", K_U32, "5", 1, 1000, F(restart_burst), 1, NULL,
	 "failures of one stage tolerated per restart_interval; one more spends the restart budget: outpostd "
	 "stops and exits (status 3) for systemd to restart it"},
	{"supervisor.restart_alert_daily", K_U32, "24", 1, 100000, F(restart_alert_daily), 1, NULL,
	 "more failures than this of one stage within 24 h send an alert north (once per 24 h): a stage that "
	 "fails just slowly enough never spends its restart budget, and would otherwise restart all year unseen"},
	{"supervisor.restart_interval", K_DUR, "5m", SEC, 86400 * SEC, F(restart_interval_ns), 1, NULL,
	 "window of the restart budget"},
	{"supervisor.restart_backoff", K_DUR, "1s", SEC / 100, 3600 * SEC, F(restart_backoff_ns), 1, NULL,
	 "first delay before restarting a failed stage; doubles on each failure up to "
	 "supervisor.restart_backoff_max"},
	{"supervisor.restart_backoff_max", K_DUR, "15s", SEC / 100, 3600 * SEC, F(restart_backoff_max_ns), 1, NULL,
	 "longest delay between restarts of a stage that keeps failing (a stage up for 60 s starts again "
	 "from supervisor.restart_backoff); never shorter than restart_backoff; under systemd at most a "
	 "quarter of WatchdogSec (no watchdog pings while a stage is down)"},
	{"supervisor.safe_mode_after", K_U32, "6", 0, 1000, F(safe_mode_after), 0, NULL,
	 "starts in a row that neither ran stable nor ended in a requested stop, before the next start is "
	 "in safe mode (reconstruction "
	 "by LineFit only, rows flagged); 0 = never"},
	{"supervisor.stable_after", K_DUR, "10m", SEC, 86400 * SEC, F(stable_after_ns), 0, NULL,
	 "all stages healthy this long counts as a stable start: the start counter returns to 0"},
	{"supervisor.safe_mode_retry", K_DUR, "24h", 10 * SEC, 365 * 86400 * SEC, F(safe_mode_retry_ns), 0, NULL,
	 "in safe mode, all stages healthy this long: the network is tried again (one more unstable "
	 "start returns to safe mode)"},
	{"supervisor.fault_injection", K_BOOL, "false", 0, 1, F(fault_injection), 0, NULL,
	 "tests only: the infer stage obeys SIGUSR1 (spin without progress) and SIGUSR2 (block)"},
	{"metrics.textfile", K_STR, "", 0, OP_CFG_STR - 1, F(metrics_textfile), 0, NULL,
	 "file for node_exporter's textfile collector (Prometheus text format, replaced atomically; a "
	 "name ending in .prom in its directory); empty = none"},
	{"metrics.interval", K_DUR, "15s", SEC, 3600 * SEC, F(metrics_interval_ns), 1, NULL,
	 "how often the textfile is rewritten"},
	{"power.budget", K_POWER, "0W", 0, 1000000000000ull, F(power_budget_mw), 1, NULL,
	 "the site's power budget for this node, held over power.window (0W: no budget, power is measured and "
	 "reported only)"},
	{"power.schedule", K_STR, "", 0, 511, F(power_schedule), 1, NULL,
	 "budgets by date and time of day, first match wins, else power.budget: entries '[MM-DD..MM-DD] "
	 "[HH:MM-HH:MM] POWER' separated by ';' (local time), e.g. \"05-01..08-31 150W; 22:00-06:00 120W\""},
	{"power.window", K_DUR, "60s", SEC, 3600 * SEC, F(power_window_ns), 0, NULL,
	 "the averaging window the budget is a ceiling over"},
	{"power.period", K_DUR, "1s", SEC / 10, 60 * SEC, F(power_period_ns), 0, NULL,
	 "how often the governor reads power and sets the actuators"},
	{"power.sensors", K_STR, "auto", 1, 63, F(power_sensors), 0, NULL,
	 "what node power is the sum of: auto (every one of nvml, rapl, hwmon found at start) or a list of nvml, "
	 "rapl, hwmon, meter, sim; a listed sensor that cannot be read puts the governor in fail-safe"},
	{"power.hwmon_devices", K_STR, "", 0, 127, F(power_hwmon_devices), 0, NULL,
	 "hwmon devices to count, by their name file, comma-separated (empty: every device with a power or energy "
	 "reading)"},
	{"power.meter_endpoint", K_STR, "", 0, OP_CFG_STR - 1, F(power_meter_endpoint), 0, NULL,
	 "ZeroMQ PUB endpoint of the site's power meter (messages: watts as text, e.g. '143.2'); the meter sensor"},
	{"power.sysfs_root", K_STR, "/sys", 1, OP_CFG_STR - 1, F(power_sysfs_root), 0, NULL,
	 "where sysfs is mounted (RAPL and hwmon are read under it)"},
	{"power.min_duty", K_PCT, "5%", 1, 100, F(power_min_duty_pct), 1, NULL,
	 "the lowest inference duty cycle the governor sets (also the fail-safe's)"},
	{"power.min_batch", K_U32, "16", 1, 65536, F(power_min_batch), 1, NULL,
	 "the smallest inference batch the governor sets where batch size changes power (GPU)"},
	{"power.min_clock", K_PCT, "40%", 5, 100, F(power_min_clock_pct), 1, NULL,
	 "the lowest GPU clock the governor locks, as a share of the maximum (NVML, where permitted)"},
	{"power.min_limit", K_PCT, "50%", 5, 100, F(power_min_limit_pct), 1, NULL,
	 "the lowest GPU power limit the governor sets, as a share of the default (NVML, where permitted)"},
	{"power.idle", K_POWER, "0W", 0, 1000000000000ull, F(power_idle_mw), 1, NULL,
	 "the node's idle draw if known (0W: learnt while inference is idle; a guess too high can overshoot)"},
	{"power.stuck_after", K_DUR, "3m", 10 * SEC, 86400 * SEC, F(power_stuck_after_ns), 1, NULL,
	 "throughput far below what this node has shown, unthrottled and far under budget, this long: reported "
	 "as a stuck low-power fault"},
	{"power.sim.idle", K_POWER, "30W", 0, 1000000000000ull, F(power_sim_idle_mw), 0, NULL,
	 "sensor sim: the simulated node's idle draw (GB10-like; docs/power.md)"},
	{"power.sim.full", K_POWER, "130W", 1, 1000000000000ull, F(power_sim_full_mw), 0, NULL,
	 "sensor sim: its draw at power.sim.rate events/s"},
	{"power.sim.rate", K_U32, "20000", 1, 100000000, F(power_sim_rate), 0, NULL,
	 "sensor sim: events/s at which it draws power.sim.full (energy per event = (full - idle) / rate)"},
	{"power.sim.noise", K_POWER, "1W", 0, 1000000000000ull, F(power_sim_noise_mw), 0, NULL,
	 "sensor sim: standard deviation of its reading's noise"},
	{"log.level", K_ENUM, "info", 0, 0, F(log_level), 1, "error|warning|info|debug",
	 "least severe messages logged"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const kind_names[] = {"string", "bool", "integer", "integer", "integer",
					 "size", "duration", "enum", "power", "percent", "rate"};

/* ---- value parsing (shared by the defaults and by files) ---------------------------------- */

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

static const struct unit {
	const char *name;
	uint64_t mul;
} dur_units[] = {{"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", SEC}, {"m", 60 * SEC},
		 {"h", 3600 * SEC}, {"d", 86400 * SEC}, {NULL, 0}},
  power_units[] = {{"mW", 1}, {"W", 1000}, {"kW", 1000000}, {"MW", 1000000000}, {NULL, 0}},
  rate_units[] = {{"bit/s", 1}, {"kbit/s", 1000}, {"Mbit/s", 1000000}, {"Gbit/s", 1000000000}, {NULL, 0}},
  size_units[] = {{"B", 1}, {"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB}, {"TiB", 1024 * GiB},
		  {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000}, {"TB", 1000000000000ull}, {NULL, 0}};

/* YAML's plain null: "~", "null", "Null", "NULL" (libyaml hands it over as text). */
static int is_yaml_null(const char *s)
{
	return !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* A non-negative number (a fraction allowed) at s, then any spaces: *end after them. */
static int parse_number(const char *s, double *v, char **end)
{
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	*v = strtod(s, end);
	if (errno || *end == s || !isfinite(*v) || *v < 0)
		return -1;
	while (**end == ' ')
		(*end)++;
	return 0;
}

/* "<number><unit>"; number may have a fraction. Returns 0, -1 bad syntax, -2 no/unknown unit,
 * -3 overflow. */
static int parse_unit(const char *s, const struct unit *units, int unit_required, uint64_t *out)
{
	char *end;
	double v;
	if (parse_number(s, &v, &end) < 0)
		return -1;
	if (!*end) {
		if (unit_required)
			return -2;
		if (v != floor(v))
			return -1;
		if (v >= 18446744073709551615.0)
			return -3; /* (uint64_t) of 2^64 or more is undefined: it gave 0, "no limit" */
		*out = (uint64_t)v;
		return 0;
	}
	for (const struct unit *u = units; u->name; u++) {
		if (!strcmp(end, u->name)) {
			double r = v * (double)u->mul;
			if (r >= 18446744073709551615.0)
				return -3;
			*out = (uint64_t)llround(r);
			return v > 0 && *out == 0 ? -6 : 0; /* -6: not 0, but rounds to it (0: none) */
		}
	}
	return -2;
}

int op_config_parse_size(const char *s, uint64_t *out)
{
	return parse_unit(s, size_units, 0, out) == 0 ? 0 : -1;
}

/*
 * A duration: one or more "<number><unit>" parts, largest first or not ("1h30m", "2m30s",
 * "1.5h", "250ms"). Returns 0; -1 bad syntax; -2 a unit that is not one (*bad_unit gets it);
 * -3 overflow; -4 a number alone (no unit at all); -5 a trailing number without a unit
 * ("1h30").
 */
static int parse_duration(const char *s, uint64_t *out, char *bad_unit, size_t bad_cap)
{
	double total = 0;
	int parts = 0;

	while (*s == ' ')
		s++;
	if (!*s)
		return -1;
	while (*s) {
		char *end;
		double v;
		if (parse_number(s, &v, &end) < 0)
			return -1;
		const char *u = end;
		while (isalpha((unsigned char)*end))
			end++;
		if (end == u)
			return *end ? -1 : (parts ? -5 : -4);
		const struct unit *found = NULL;
		for (const struct unit *x = dur_units; x->name; x++)
			if ((size_t)(end - u) == strlen(x->name) && !strncmp(u, x->name, strlen(x->name)))
				found = x;
		if (!found) {
			snprintf(bad_unit, bad_cap, "%.*s", (int)(end - u), u);
			return -2;
		}
		total += v * (double)found->mul;
		parts++;
		while (*end == ' ')
			end++;
		s = end;
	}
	if (total >= 18446744073709551615.0)
		return -3;
	*out = (uint64_t)llround(total);
	return 0;
}

/* What an operator probably meant by a unit we do not take (NULL: no idea). */
static const char *duration_unit_hint(const char *u)
{
	static const struct {
		const char *words, *unit;
	} hints[] = {{"|sec|secs|second|seconds|S|Sec|", "s"},
		     {"|min|mins|minute|minutes|Min|M|", "m (minutes)"},
		     {"|hr|hrs|hour|hours|H|Hr|", "h"},
		     {"|day|days|D|", "d"},
		     {"|msec|msecs|millisecond|milliseconds|MS|", "ms"},
		     {"|usec|microsecond|microseconds|µs|", "us"},
		     {"|w|wk|week|weeks|", "d (there is no week unit: 7d)"}};
	char word[40];
	snprintf(word, sizeof(word), "|%s|", u);
	for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++)
		if (strstr(hints[i].words, word))
			return hints[i].unit;
	return NULL;
}

/* A size unit we do not take: is it ambiguous (binary or decimal?) or a matter of case? */
static void size_unit_hint(const char *value, char *out, size_t cap)
{
	const char *u = value;
	while (*u && (isdigit((unsigned char)*u) || *u == '.' || *u == ' '))
		u++;
	int n = (int)(u - value);
	while (n > 0 && value[n - 1] == ' ')
		n--;
	out[0] = 0;
	if (!*u)
		return;
	static const char prefixes[] = "KMGT";
	char up = (char)toupper((unsigned char)u[0]);
	const char *pp = strchr(prefixes, up);
	if (pp && (!u[1] || ((u[1] == 'b' || u[1] == 'B') && !u[2] && !(u[1] == 'B' && u[0] == up)) ||
		   (u[1] == 'i' && !u[2]))) {
		snprintf(out, cap, "; '%s' is ambiguous: write %.*s%ciB (binary, 1024^%d bytes) or %.*s%cB "
				   "(decimal, 1000^%d bytes)",
			 u, n, value, up, (int)(pp - prefixes) + 1, n, value, up, (int)(pp - prefixes) + 1);
		return;
	}
	for (const struct unit *x = size_units; x->name; x++)
		if (!strcasecmp(u, x->name)) {
			snprintf(out, cap, "; units are case-sensitive: write %.*s%s", n, value, x->name);
			return;
		}
}

static void fmt_unit(char *out, size_t cap, uint64_t v, const struct unit *units, int n_binary)
{
	const struct unit *best = &units[0];
	for (int i = 0; i < n_binary; i++)
		if (units[i].mul <= v && v % units[i].mul == 0)
			best = &units[i];
	if (v == 0)
		best = units == power_units || units == rate_units ? &units[units == power_units] : n_binary == 5 ? &units[0] : &units[3];
	snprintf(out, cap, "%" PRIu64 "%s", v / best->mul, best->name);
}

static void fmt_value(const key *k, const op_config *c, char *out, size_t cap)
{
	const char *base = (const char *)c + k->off;
	switch (k->kind) {
	case K_STR:
	case K_ENUM:
		snprintf(out, cap, "%s", base);
		break;
	case K_BOOL:
	case K_INT:
		if (k->kind == K_BOOL)
			snprintf(out, cap, "%s", *(const int *)base ? "true" : "false");
		else
			snprintf(out, cap, "%d", *(const int *)base);
		break;
	case K_U32:
		snprintf(out, cap, "%" PRIu32, *(const uint32_t *)base);
		break;
	case K_U64:
		snprintf(out, cap, "%" PRIu64, *(const uint64_t *)base);
		break;
	case K_SIZE:
		fmt_unit(out, cap, *(const uint64_t *)base, size_units, 5);
		break;
	case K_DUR:
		fmt_unit(out, cap, *(const uint64_t *)base, dur_units, 7);
		break;
	case K_POWER:
		fmt_unit(out, cap, *(const uint64_t *)base, power_units, 4);
		break;
	case K_PCT:
		snprintf(out, cap, "%" PRIu32 "%%", *(const uint32_t *)base);
		break;
	case K_RATE:
		fmt_unit(out, cap, *(const uint64_t *)base, rate_units, 4);
		break;
	}
}

static void fmt_bound(const key *k, uint64_t v, char *out, size_t cap)
{
	if (k->kind == K_POWER)
		fmt_unit(out, cap, v, power_units, 4);
	else if (k->kind == K_RATE)
		fmt_unit(out, cap, v, rate_units, 4);
	else if (k->kind == K_PCT)
		snprintf(out, cap, "%" PRIu64 "%%", v);
	else if (k->kind == K_SIZE)
		fmt_unit(out, cap, v, size_units, 5);
	else if (k->kind == K_DUR)
		fmt_unit(out, cap, v, dur_units, 7);
	else
		snprintf(out, cap, "%" PRIu64, v);
}

/* power.sensors: "auto" or a comma/space separated list of known sensors, each once. */
static int check_sensors(const char *s, char *err, size_t cap)
{
	static const char *const known[] = {"nvml", "rapl", "hwmon", "meter", "sim"};
	char seen[5] = {0};
	if (!strcmp(s, "auto"))
		return 0;
	for (const char *p = s; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t n = strcspn(p, ", ");
		if (!n)
			break;
		size_t i;
		for (i = 0; i < 5; i++)
			if (strlen(known[i]) == n && !strncmp(p, known[i], n))
				break;
		if (i == 5) {
			snprintf(err, cap, "'power.sensors': unknown sensor '%.*s' (auto, or a list of nvml, rapl, hwmon, "
					   "meter, sim)", (int)n, p);
			return -1;
		}
		if (seen[i]++) {
			snprintf(err, cap, "'power.sensors': '%s' is listed twice (it would be counted twice)", known[i]);
			return -1;
		}
		p += n;
	}
	return 0;
}

/* A number written in hexadecimal ("0x10MiB") or with an exponent ("1e3s", "1.5e2W") somewhere
 * in s. strtod reads both, so such values have always been taken, but not as an operator reads
 * them at a glance (0x10MiB is 16 MiB). Refusing them now would keep an upgraded box whose file
 * has one from starting (its config-last-good.yaml holds the same): they are read as before,
 * with a warning that gives the value as read. No unit starts with x or e. */
static const char *number_notation(const char *s)
{
	for (size_t i = 0; s[i]; i++) {
		int starts = i == 0 || !isalnum((unsigned char)s[i - 1]);
		if (starts && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X'))
			return "hexadecimal";
		if (isdigit((unsigned char)s[i]) && (s[i + 1] == 'e' || s[i + 1] == 'E') &&
		    (isdigit((unsigned char)s[i + 2]) || s[i + 2] == '+' || s[i + 2] == '-'))
			return "exponent";
	}
	return NULL;
}

/* Set field of k from text s. 0 or -1 with a message in err. */
static int set_value(const key *k, op_config *c, const char *s, char *err, size_t errcap)
{
	char *base = (char *)c + k->off;
	uint64_t v = 0;
	int rc;
	char lo[32], hi[32];

	switch (k->kind) {
	case K_STR:
		if (strlen(s) < k->min || strlen(s) > k->max || strlen(s) >= k->size) {
			snprintf(err, errcap, "'%s' must be %" PRIu64 " to %" PRIu64 " characters long (it is %zu)",
				 k->path, k->min, k->max, strlen(s));
			return -1;
		}
		/* A control character comes from an escape in a double-quoted value ("north\east": ESC,
		 * "/srv/outpost\backup": a backspace), never on purpose: no name, path or endpoint holds
		 * one. Written back into effective.yaml for the stages, it would be refused there by
		 * libyaml (every stage exiting, nothing stored); in the site's name, it would reach every
		 * segment and alert. A tab is let through anywhere: libyaml takes it, files that have
		 * one ran before, and refusing them now would keep an upgraded box from starting (its
		 * last good configuration holds the same tab). The two lists (power.schedule,
		 * uplink.windows) may also hold line ends: their parsers take them as spaces, and a YAML
		 * block scalar ends in one. print_scalar writes all three back as escapes. */
		const int list = !strcmp(k->path, "power.schedule") || !strcmp(k->path, "uplink.windows");
		for (size_t i = 0; s[i]; i++)
			if (((unsigned char)s[i] < 0x20 && s[i] != '\t' && !(list && (s[i] == '\n' || s[i] == '\r'))) ||
			    s[i] == 0x7f) {
				snprintf(err, errcap,
					 "'%s' holds a control character (0x%02x, byte %zu): in double quotes a "
					 "backslash starts an escape (\\\\ for a backslash), or use single quotes",
					 k->path, (unsigned char)s[i], i + 1);
				return -1;
			}
		if (!strcmp(k->path, "power.schedule")) {
			op_power_schedule sch;
			char serr[300];
			if (op_power_schedule_parse(s, &sch, serr, sizeof(serr)) < 0) {
				snprintf(err, errcap, "'%s': %s", k->path, serr);
				return -1;
			}
		}
		if (!strcmp(k->path, "power.sensors") && check_sensors(s, err, errcap) < 0)
			return -1;
		if (!strcmp(k->path, "uplink.windows")) {
			uint16_t w[16][2];
			char werr[200];
			if (op_uplink_windows_parse(s, w, 16, werr, sizeof(werr)) < 0) {
				snprintf(err, errcap, "'%s': %s", k->path, werr);
				return -1;
			}
		}
		snprintf(base, k->size, "%s", s);
		return 0;
	case K_ENUM: {
		size_t n = strlen(s);
		for (const char *p = k->choices; *p;) {
			const char *e = strchr(p, '|');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			if (len == n && !strncmp(p, s, n)) {
				snprintf(base, k->size, "%s", s);
				return 0;
			}
			p += len + (e ? 1 : 0);
		}
		snprintf(err, errcap, "'%s' must be one of %s, not '%s'", k->path, k->choices, s);
		return -1;
	}
	case K_BOOL:
		if (!strcmp(s, "true") || !strcmp(s, "false")) {
			*(int *)base = !strcmp(s, "true");
			return 0;
		}
		snprintf(err, errcap, "'%s' must be true or false, not '%s'", k->path, s);
		return -1;
	case K_INT:
	case K_U32:
	case K_U64:
		if (parse_u64(s, &v) < 0) {
			snprintf(err, errcap, "'%s' must be a whole number, not '%s'", k->path, s);
			return -1;
		}
		break;
	case K_POWER: {
		char perr[200];
		if (op_power_parse_mw(s, &v, perr, sizeof(perr)) < 0) {
			snprintf(err, errcap, "'%s': %s", k->path, perr);
			return -1;
		}
		break;
	}
	case K_PCT: {
		char *end;
		errno = 0;
		unsigned long x = strtoul(s, &end, 10);
		if (errno || end == s || (*end && strcmp(end, "%"))) {
			snprintf(err, errcap, "'%s' must be a whole percentage such as 5%%, not '%s'", k->path, s);
			return -1;
		}
		v = x;
		break;
	}
	case K_RATE:
		if (strcmp(s, "0") && (rc = parse_unit(s, rate_units, 1, &v)) == -6) {
			snprintf(err, errcap, "'%s': '%s' is under 1 bit/s and would be 0, which means no cap: write "
					      "1bit/s or more (or 0 for none)", k->path, s);
			return -1;
		}
		if (strcmp(s, "0") && rc < 0) {
			const char *hint = strstr(s, "bps") || strstr(s, "b/s") || strstr(s, "bit") ? " (bits per second: bit/s, kbit/s, Mbit/s, Gbit/s)"
					   : strstr(s, "B/s") || strstr(s, "Bps") ? " (the cap is in bits: 1 MB/s is 8Mbit/s)" : "";
			snprintf(err, errcap, "'%s' must be a rate such as 2.4kbit/s, 250Mbit/s (or 0 for none), not '%s'%s",
				 k->path, s, hint);
			return -1;
		}
		break;
	case K_SIZE:
		rc = parse_unit(s, size_units, 0, &v);
		if (rc == -3) /* past 2^64: out of every key's range, said with the range below */
			v = UINT64_MAX;
		else if (rc == -6) {
			snprintf(err, errcap, "'%s': '%s' is under a byte and would be 0: write a whole number of "
					      "bytes (or 0)", k->path, s);
			return -1;
		} else if (rc < 0) {
			char hint[200];
			size_unit_hint(s, hint, sizeof(hint));
			snprintf(err, errcap, "'%s' must be a size such as 512B, 64KiB, 10GiB (binary) or 10GB "
					      "(decimal), not '%s'%s", k->path, s, hint);
			return -1;
		}
		break;
	case K_DUR: {
		char unit[32] = "";
		rc = parse_duration(s, &v, unit, sizeof(unit));
		if (rc == -4) {
			snprintf(err, errcap, "'%s' needs a unit: write '%ss' for seconds (units: ns, us, ms, s, m, "
					      "h, d)", k->path, s);
			return -1;
		}
		if (rc == -5) {
			snprintf(err, errcap, "'%s': '%s' ends in a number without a unit (write e.g. 1h30m)",
				 k->path, s);
			return -1;
		}
		if (rc == -3) { /* past 2^64 ns (585 years): out of every key's range, said below */
			v = UINT64_MAX;
			break;
		}
		if (rc == -2) {
			const char *h = duration_unit_hint(unit);
			if (h)
				snprintf(err, errcap, "'%s': '%s' is not a unit here; write %s (units: ns, us, ms, s, m, "
						      "h, d)", k->path, unit, h);
			else
				snprintf(err, errcap, "'%s': unknown unit '%s' in '%s' (units: ns, us, ms, s, m, h, d)",
					 k->path, unit, s);
			return -1;
		}
		if (rc < 0) {
			snprintf(err, errcap, "'%s' must be a duration such as 250ms, 30s, 5m, 1h30m, 2d, not '%s'",
				 k->path, s);
			return -1;
		}
		break;
	}
	}
	if (v < k->min || v > k->max) {
		fmt_bound(k, k->min, lo, sizeof(lo));
		fmt_bound(k, k->max, hi, sizeof(hi));
		snprintf(err, errcap, "'%s' must be between %s and %s, not '%s'", k->path, lo, hi, s);
		return -1;
	}
	if (k->kind == K_INT)
		*(int *)base = (int)v;
	else if (k->kind == K_U32 || k->kind == K_PCT)
		*(uint32_t *)base = (uint32_t)v;
	else
		*(uint64_t *)base = v;
	return 0;
}

void op_config_defaults(op_config *c)
{
	char err[256];
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++)
		if (set_value(&keys[i], c, keys[i].def, err, sizeof(err)) != 0)
			abort(); /* a default outside its own bounds is a bug in this table */
}

/* ---- diagnostics ------------------------------------------------------------------------- */

typedef struct diag {
	FILE *out;
	const char *name, *text;
	size_t len;
	int errors, warnings;
	uint32_t set_line[256], set_col[256]; /* per key (index in keys[]): 1-based line it was set on, or 0 */
} diag;

_Static_assert(NKEYS <= 256, "diag.set_line holds 256 keys");

static void report(diag *d, int is_error, size_t line0, size_t col0, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void report(diag *d, int is_error, size_t line0, size_t col0, const char *fmt, ...)
{
	va_list ap;
	const char *p = d->text, *end = d->text + d->len;

	if (is_error)
		d->errors++;
	else
		d->warnings++;
	if (!d->out)
		return;
	fprintf(d->out, "%s:%zu:%zu: %s: ", d->name, line0 + 1, col0 + 1, is_error ? "error" : "warning");
	va_start(ap, fmt);
	vfprintf(d->out, fmt, ap);
	va_end(ap);
	fputc('\n', d->out);
	for (size_t l = 0; l < line0 && p < end; l++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		p = nl ? nl + 1 : end;
	}
	if (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		int n = (int)((nl ? nl : end) - p);
		fprintf(d->out, "  %.*s\n  ", n, p);
		for (size_t i = 0; i < col0 && i < (size_t)n; i++)
			fputc(p[i] == '\t' ? '\t' : ' ', d->out);
		fputs("^\n", d->out);
	}
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), prev[96], cur[96];
	if (la > 90 || lb > 90)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, (lb + 1) * sizeof(size_t));
	}
	return prev[lb];
}

/* Closest known name to an unknown path (section or full key). */
static const char *suggest(const char *path, char *buf, size_t cap)
{
	size_t best = 4;
	const char *found = NULL;
	const char *dot = strrchr(path, '.');
	for (size_t i = 0; i < NKEYS; i++) {
		size_t d = edit_distance(path, keys[i].path);
		/* also compare the last component alone, to catch a key put in the wrong section */
		const char *kd = strrchr(keys[i].path, '.');
		if (dot && kd && edit_distance(dot + 1, kd + 1) == 0)
			d = d < 2 ? d : 2;
		if (d < best) {
			best = d;
			found = keys[i].path;
		}
		/* sections */
		size_t sl = (size_t)(kd - keys[i].path);
		char sec[48];
		snprintf(sec, sizeof(sec), "%.*s", (int)sl, keys[i].path);
		d = edit_distance(path, sec);
		if (d < best) {
			best = d;
			found = NULL;
			snprintf(buf, cap, "%s", sec);
			found = buf;
		}
	}
	return found;
}

static const key *find_key(const char *path)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (!strcmp(keys[i].path, path))
			return &keys[i];
	return NULL;
}

static int is_section(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < NKEYS; i++)
		if (!strncmp(keys[i].path, path, n) && keys[i].path[n] == '.')
			return 1;
	return 0;
}

static int yaml11_bool(const char *s)
{
	static const char *const words[] = {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off",
					    "YES", "NO", "ON", "OFF", "True", "False", "TRUE", "FALSE"};
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcmp(s, words[i]))
			return 1;
	return 0;
}

/* ---- the walk over the YAML document ----------------------------------------------------- */

static size_t key_index(const char *path)
{
	const key *k = find_key(path);
	return k ? (size_t)(k - keys) : 0;
}

/* Keys that only make sense together, reported at the line of the one that was written. */
static void cross_checks(diag *d, const op_config *c)
{
	const size_t ck = key_index("uplink.curve_key"), np = key_index("uplink.north_public_key");
	if (!c->uplink_curve_key[0] != !c->uplink_north_public_key[0]) {
		const size_t set = c->uplink_curve_key[0] ? ck : np;
		report(d, 1, d->set_line[set] ? d->set_line[set] - 1 : 0, d->set_col[set],
		       "'%s' needs '%s' as well: the link north is encrypted only with both (nothing would be sent)",
		       keys[set].path, keys[set == ck ? np : ck].path);
	}
	if (c->uplink_daily_quota && c->uplink_alert_reserve > c->uplink_daily_quota / 2) {
		const size_t r = key_index("uplink.alert_reserve");
		if (d->set_line[r]) /* the default (64 KiB) under a small quota is kept at half of it */
			report(d, 1, d->set_line[r] - 1, d->set_col[r],
			       "uplink.alert_reserve (%llu bytes) is more than half of uplink.daily_quota (%llu bytes): "
			       "results would get less than alerts; at most %llu",
			       (unsigned long long)c->uplink_alert_reserve, (unsigned long long)c->uplink_daily_quota,
			       (unsigned long long)(c->uplink_daily_quota / 2));
	}
	if (c->uplink_telemetry_share_pct + c->uplink_bulk_share_pct > 98) {
		const size_t t = key_index("uplink.telemetry_share"), b = key_index("uplink.bulk_share");
		const size_t at = d->set_line[b] > d->set_line[t] ? b : t;
		report(d, 1, d->set_line[at] ? d->set_line[at] - 1 : 0, d->set_col[at],
		       "uplink.telemetry_share (%u%%) and uplink.bulk_share (%u%%) leave results less than 2%% of the "
		       "link; together they may be at most 98%%",
		       c->uplink_telemetry_share_pct, c->uplink_bulk_share_pct);
	}
}

static void walk(diag *d, yaml_document_t *doc, yaml_node_t *map, const char *prefix, op_config *c)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(doc, p->key), *vn = yaml_document_get_node(doc, p->value);
		char path[160], err[400], sbuf[64];
		if (!kn || !vn)
			continue;
		if (kn->type != YAML_SCALAR_NODE) {
			report(d, 1, kn->start_mark.line, kn->start_mark.column, "keys must be plain names");
			continue;
		}
		const char *kname = (const char *)kn->data.scalar.value;
		/* duplicate keys: libyaml keeps both silently; we refuse them */
		for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *qk = yaml_document_get_node(doc, q->key);
			if (qk && qk->type == YAML_SCALAR_NODE && !strcmp((const char *)qk->data.scalar.value, kname)) {
				report(d, 1, kn->start_mark.line, kn->start_mark.column,
				       "duplicate key '%s' (first set on line %zu)", kname, qk->start_mark.line + 1);
				goto next;
			}
		}
		snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", kname);
		const key *k = find_key(path);
		if (!k) {
			if (is_section(path)) {
				if (vn->type == YAML_MAPPING_NODE)
					walk(d, doc, vn, path, c);
				else if (!(vn->type == YAML_SCALAR_NODE && vn->data.scalar.length == 0))
					report(d, 1, vn->start_mark.line, vn->start_mark.column,
					       "'%s' is a section: it holds keys, not a value", path);
				goto next;
			}
			const char *s = suggest(path, sbuf, sizeof(sbuf));
			if (s)
				report(d, 1, kn->start_mark.line, kn->start_mark.column,
				       "unknown key '%s'; did you mean '%s'?", path, s);
			else
				report(d, 1, kn->start_mark.line, kn->start_mark.column, "unknown key '%s'", path);
			goto next;
		}
		{ /* the same key twice, written two ways (infer: {threads: 4} and infer.threads: 1) */
			const size_t ki = (size_t)(k - keys);
			if (ki < sizeof(d->set_line) / sizeof(d->set_line[0])) {
				if (d->set_line[ki]) {
					report(d, 1, kn->start_mark.line, kn->start_mark.column,
					       "'%s' is set twice (first on line %u)", path, d->set_line[ki]);
					goto next;
				}
				d->set_line[ki] = (uint32_t)kn->start_mark.line + 1;
				d->set_col[ki] = (uint32_t)kn->start_mark.column;
			}
		}
		if (vn->type != YAML_SCALAR_NODE) {
			report(d, 1, vn->start_mark.line, vn->start_mark.column, "'%s' takes a single %s value, not a %s",
			       path, kind_names[k->kind], vn->type == YAML_MAPPING_NODE ? "mapping" : "list");
			goto next;
		}
		const char *val = (const char *)vn->data.scalar.value;
		const int plain = vn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if (strlen(val) != vn->data.scalar.length) { /* a "\0" escape: the rest would be dropped */
			report(d, 1, vn->start_mark.line, vn->start_mark.column,
			       "'%s': the value holds a NUL character (\\0), which no setting takes", path);
			goto next;
		}
		if (k->kind == K_STR && plain && (!val[0] || is_yaml_null(val))) {
			/* "key:" with nothing after it, or YAML's null: an operator who left a value to
			 * fill in later, or meant "none". Said, not refused: files that have one ran
			 * before, and refusing them now would keep an upgraded box from starting (its last
			 * good configuration holds the same line). */
			if (k->min > 0 && val[0])
				report(d, 0, vn->start_mark.line, vn->start_mark.column,
				       "'%s': '%s' is YAML's null, but here it is taken as the text '%s': write the value",
				       path, val, val);
			else if (val[0])
				report(d, 0, vn->start_mark.line, vn->start_mark.column,
				       "'%s': '%s' is YAML's null, taken as empty (none%s%s): write \"\" to say so",
				       path, val, k->def[0] ? "; the default is " : "", k->def);
			else if (k->def[0])
				report(d, 0, kn->start_mark.line, kn->start_mark.column,
				       "'%s' is empty, which means none (the default is %s): write \"\" to say so, or "
				       "delete the line for the default",
				       path, k->def);
			if (k->min == 0)
				val = "";
		}
		if (!val[0] && k->kind != K_STR && plain) {
			char def[64];
			snprintf(def, sizeof(def), "%s", k->def);
			report(d, 1, kn->start_mark.line, kn->start_mark.column,
			       "'%s' has no value: write one (the default is %s) or delete the line", path, def);
			goto next;
		}
		if (k->kind == K_BOOL && yaml11_bool(val)) {
			report(d, 0, vn->start_mark.line, vn->start_mark.column,
			       "'%s' is a YAML 1.1 boolean; outpost accepts only true or false here", val);
		}
		if (set_value(k, c, val, err, sizeof(err)) < 0) {
			report(d, 1, vn->start_mark.line, vn->start_mark.column, "%s", err);
		} else if (k->kind != K_STR && k->kind != K_ENUM && number_notation(val)) {
			char as_read[64];
			fmt_value(k, c, as_read, sizeof(as_read));
			report(d, 0, vn->start_mark.line, vn->start_mark.column,
			       "'%s': '%s' holds a number in %s notation, read as %s; write %s (plain digits): "
			       "a later release may refuse this form",
			       path, val, number_notation(val), as_read, as_read);
		}
next:;
	}
}

/*
 * A syntax error often starts earlier than where libyaml gives up: a quote left open runs on to
 * the next quote, lines below. The first line up to the error with an odd number of quotes of
 * one kind (outside comments) is where to look. 1 and its 0-based line and column, or 0.
 */
static int unclosed_quote(const char *text, size_t len, size_t upto_line, size_t *line, size_t *col)
{
	size_t ln = 0, i = 0;
	while (i < len && ln <= upto_line) {
		size_t start = i, open_at = 0;
		char open = 0;
		for (; i < len && text[i] != '\n'; i++) {
			char ch = text[i];
			if (open) {
				if (ch == '\\' && open == '"')
					i++;
				else if (ch == open)
					open = 0;
			} else if (ch == '#' && (i == start || text[i - 1] == ' ')) {
				while (i < len && text[i] != '\n')
					i++;
				break;
			} else if ((ch == '"' || ch == '\'') &&
				   (i == start || text[i - 1] == ' ' || text[i - 1] == ':' || text[i - 1] == '[' ||
				    text[i - 1] == '{' || text[i - 1] == ',')) {
				open = ch;
				open_at = i;
			}
		}
		if (open) {
			*line = ln;
			*col = open_at - start;
			return 1;
		}
		i++;
		ln++;
	}
	return 0;
}

static int load_string(op_config *c, const char *yaml, size_t len, const char *name, FILE *out, int partial);

int op_config_load_string(op_config *c, const char *yaml, size_t len, const char *name, FILE *out)
{
	return load_string(c, yaml, len, name, out, 0);
}

static int load_string(op_config *c, const char *yaml, size_t len, const char *name, FILE *out, int partial)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	op_config tmp = *c;
	diag d = {.out = out, .name = name ? name : "<config>", .text = yaml, .len = len};

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &doc)) {
		size_t qline, qcol;
		if (parser.error == YAML_READER_ERROR) {
			/* bytes that are not UTF-8, or a control character: libyaml gives only their
			 * offset (its mark stays at 1:1), so the line is counted here */
			size_t off = parser.problem_offset < len ? parser.problem_offset : len, line = 0, col = 0;
			for (size_t i = 0; i < off; i++)
				if (yaml[i] == '\n')
					line++, col = 0;
				else
					col++;
			report(&d, 1, line, col, "YAML syntax: %s (byte 0x%02x): the file must be UTF-8 text without "
						"control characters", parser.problem ? parser.problem : "unreadable",
			       off < len ? (unsigned)(unsigned char)yaml[off] : 0u);
		} else if (unclosed_quote(yaml, len, parser.problem_mark.line, &qline, &qcol))
			report(&d, 1, qline, qcol,
			       "YAML syntax: the quoted value opened here is not closed on its line (the parser "
			       "gave up at line %zu, column %zu: %s)",
			       parser.problem_mark.line + 1, parser.problem_mark.column + 1,
			       parser.problem ? parser.problem : "unreadable");
		else
			report(&d, 1, parser.problem_mark.line, parser.problem_mark.column, "YAML syntax: %s%s%s",
			       parser.problem ? parser.problem : "unreadable", parser.context ? " " : "",
			       parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		return d.errors;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root) {
		if (root->type == YAML_MAPPING_NODE)
			walk(&d, &doc, root, "", &tmp);
		else if (!(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
			report(&d, 1, root->start_mark.line, root->start_mark.column,
			       "the configuration must be a mapping of sections (site:, paths:, ingest:, ...)");
	}
	cross_checks(&d, &tmp);
	/* A second document in the same file is almost certainly a mistake. */
	yaml_document_t extra;
	if (yaml_parser_load(&parser, &extra)) {
		if (yaml_document_get_root_node(&extra))
			report(&d, 1, extra.start_mark.line, extra.start_mark.column,
			       "a second YAML document ('---'); outpost reads one");
		yaml_document_delete(&extra);
	} else { /* what follows the first document does not even parse: said, not dropped */
		report(&d, 1, parser.problem_mark.line, parser.problem_mark.column,
		       "YAML syntax after the first document: %s%s%s", parser.problem ? parser.problem : "unreadable",
		       parser.context ? " " : "", parser.context ? parser.context : "");
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (d.errors == 0 || partial)
		*c = tmp;
	return d.errors;
}

static int load_file(op_config *c, const char *path, FILE *out, int partial);

int op_config_load_file(op_config *c, const char *path, FILE *out)
{
	return load_file(c, path, out, 0);
}

int op_config_load_file_partial(op_config *c, const char *path)
{
	return load_file(c, path, NULL, 1);
}

static int load_file(op_config *c, const char *path, FILE *out, int partial)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rc;

	if (!f)
		return -errno;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 8192;
			if (cap > (16u << 20)) {
				fclose(f);
				free(buf);
				return -EFBIG;
			}
			char *p = realloc(buf, cap);
			if (!p) {
				fclose(f);
				free(buf);
				return -ENOMEM;
			}
			buf = p;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	rc = ferror(f) ? -EIO : 0;
	fclose(f);
	if (rc == 0)
		rc = load_string(c, buf, len, path, out, partial);
	free(buf);
	return rc;
}

/* ---- printing ---------------------------------------------------------------------------- */

static void print_scalar(FILE *out, const key *k, const char *v)
{
	if (k->kind == K_STR) {
		fputc('"', out);
		for (const char *p = v; *p; p++) { /* read back the same (YAML's double-quoted escapes) */
			if (*p == '\t' || *p == '\n' || *p == '\r') {
				fputs(*p == '\t' ? "\\t" : *p == '\n' ? "\\n" : "\\r", out);
				continue;
			}
			if (*p == '"' || *p == '\\')
				fputc('\\', out);
			fputc(*p, out);
		}
		fputc('"', out);
	} else {
		fputs(v, out);
	}
}

static void print_all(const op_config *c, FILE *out, int comments)
{
	char section[48] = "", v[OP_CFG_STR + 8];
	for (size_t i = 0; i < NKEYS; i++) {
		const key *k = &keys[i];
		const char *dot = strchr(k->path, '.');
		if (strncmp(section, k->path, (size_t)(dot - k->path)) || section[dot - k->path]) {
			snprintf(section, sizeof(section), "%.*s", (int)(dot - k->path), k->path);
			fprintf(out, "%s%s:\n", i && comments ? "\n" : "", section);
		}
		if (comments)
			fprintf(out, "  # %s%s\n", k->desc, k->reloadable ? "" : " (restart to change)");
		fmt_value(k, c, v, sizeof(v));
		fprintf(out, "  %s: ", dot + 1);
		print_scalar(out, k, v);
		fputc('\n', out);
	}
}

void op_config_print_defaults(FILE *out)
{
	op_config c;
	op_config_defaults(&c);
	fprintf(out, "# outpost configuration: the embedded defaults. Every key may be left out.\n"
		     "# Sizes: 512B, 64KiB, 10GiB (binary) or 10GB (decimal). Durations: 250ms, 30s, 5m, 1h, 2d.\n\n");
	print_all(&c, out, 1);
}

void op_config_print(const op_config *c, FILE *out)
{
	print_all(c, out, 0);
}

void op_config_hash(const op_config *c, char hex[17])
{
	char *buf = NULL;
	size_t len = 0;
	uint64_t h = 0xcbf29ce484222325ull;
	FILE *f = open_memstream(&buf, &len);

	if (f) {
		op_config_print(c, f);
		fclose(f);
	}
	for (size_t i = 0; buf && i < len; i++) {
		h ^= (unsigned char)buf[i];
		h *= 0x100000001b3ull;
	}
	free(buf);
	snprintf(hex, 17, "%016" PRIx64, h);
}

static void range_of(const key *k, char *range, size_t cap)
{
	char lo[32], hi[32];
	range[0] = 0;
	if (k->kind == K_ENUM) {
		snprintf(range, cap, "%s", k->choices);
		for (char *p = range; *p; p++)
			if (*p == '|')
				*p = ',';
	} else if (k->kind == K_STR) {
		snprintf(range, cap, "%" PRIu64 "–%" PRIu64 " chars", k->min, k->max);
	} else if (k->kind != K_BOOL) {
		fmt_bound(k, k->min, lo, sizeof(lo));
		fmt_bound(k, k->max, hi, sizeof(hi));
		snprintf(range, cap, "%s – %s", lo, hi);
	}
}

void op_config_print_docs(FILE *out)
{
	fprintf(out, "| key | type | default | range | reload | description |\n|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < NKEYS; i++) {
		const key *k = &keys[i];
		char range[96];
		range_of(k, range, sizeof(range));
		fprintf(out, "| `%s` | %s | `%s` | %s | %s | %s |\n", k->path, kind_names[k->kind],
			k->def[0] ? k->def : "\"\"", range, k->reloadable ? "yes" : "restart", k->desc);
	}
}

static void explain_one(const key *k, FILE *out)
{
	char range[96];
	range_of(k, range, sizeof(range));
	fprintf(out, "%s\n  %s\n  type:    %s", k->path, k->desc, kind_names[k->kind]);
	if (k->kind == K_SIZE)
		fprintf(out, " (B, KiB, MiB, GiB, TiB binary; KB, MB, GB, TB decimal)");
	else if (k->kind == K_DUR)
		fprintf(out, " (ns, us, ms, s, m, h, d; combined as in 1h30m)");
	fprintf(out, "\n  default: %s\n", k->def[0] ? k->def : "\"\"");
	if (range[0])
		fprintf(out, "  allowed: %s\n", range);
	fprintf(out, "  reload:  %s\n", k->reloadable ? "yes" : "restart (read at start only)");
}

int op_config_diff(const op_config *a, const op_config *b, char *changed, size_t cap, int *needs_restart)
{
	int n = 0;
	size_t used = 0;

	*needs_restart = 0;
	if (cap)
		changed[0] = 0;
	for (size_t i = 0; i < NKEYS; i++) {
		const key *k = &keys[i];
		const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
		if ((k->kind == K_STR || k->kind == K_ENUM) ? !strcmp(pa, pb) : !memcmp(pa, pb, k->size))
			continue;
		n++;
		if (!k->reloadable)
			*needs_restart = 1;
		if (used < cap) {
			int w = snprintf(changed + used, cap - used, "%s%s%s", n > 1 ? ", " : "", k->path,
					 k->reloadable ? "" : " (restart)");
			used += w > 0 ? (size_t)w : 0;
		}
	}
	return n;
}

int op_config_explain(const char *name, FILE *out)
{
	char sbuf[64];
	size_t n = strlen(name);
	int found = 0;

	for (size_t i = 0; i < NKEYS; i++) {
		if (!strcmp(keys[i].path, name) || (!strncmp(keys[i].path, name, n) && keys[i].path[n] == '.')) {
			if (found)
				fputc('\n', out);
			explain_one(&keys[i], out);
			found++;
		}
	}
	if (found)
		return 0;
	const char *s = suggest(name, sbuf, sizeof(sbuf));
	if (s)
		fprintf(out, "unknown key '%s'; did you mean '%s'?\n", name, s);
	else
		fprintf(out, "unknown key '%s'\n", name);
	return -ENOENT;
}
