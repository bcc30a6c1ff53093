/*
 * sensor.c — reading node power from sysfs counters, a fed meter, the simulated plant, and
 * NVML (nvml.c). See sensor.h.
 */
#include "power/sensor.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "power/nvml.h"

#define MAX_CH 32
#define SANE_MAX_W 100000.0
#define WRAP_MAX_W 5000.0 /* no CPU package draws this: more across an apparent wrap is a reset */

typedef struct channel {
	char path[320];   /* energy_uj / energyK_input / powerK_input */
	char label[64];
	int counter;      /* energy counter (µJ) rather than power (µW) */
	uint64_t range;   /* wrap range (RAPL's max_energy_range_uj); 0 = none */
	uint64_t last;    /* last counter value */
	int have_last;
	uint64_t moved_ns; /* when the counter last changed */
	int must_move;     /* a CPU package's (RAPL) counter: frozen after FROZEN_NS */
} channel;

/* A RAPL package counter that has not moved for this long is frozen (a stalled driver or
 * firmware): read as 0 W it would let the governor climb past the budget. A running CPU
 * package always draws power and its counter ticks every millisecond. hwmon devices are not
 * held to it: one may rest for real (a device suspended), and calling that an error would hold
 * the whole node in the fail-safe. */
#define FROZEN_NS 5000000000ull

struct op_power_sensor {
	char kind[8];
	char desc[256];
	char unread[480]; /* what it found but cannot read, and leaves out ("" when none) */
	channel ch[MAX_CH];
	int nch;
	uint64_t last_ns;
	/* meter */
	double meter_w;
	uint64_t meter_ns, stale_ns;
	/* sim */
	op_plant *plant;
	/* nvml */
	op_nvml *nvml;
};

static int read_u64(const char *path, uint64_t *v)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char buf[64];
	int ok = fgets(buf, sizeof(buf), f) != NULL;
	int e = errno;
	fclose(f);
	if (!ok)
		return e ? -e : -EIO;
	char *end, *p = buf;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '-') /* strtoull would take -5000000 for 1.8e19 */
		return -EINVAL;
	errno = 0;
	unsigned long long x = strtoull(p, &end, 10);
	if (errno || end == p)
		return -EINVAL;
	*v = x;
	return 0;
}

static int read_str(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(out, (int)cap, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	out[strcspn(out, "\n")] = 0;
	return 0;
}

static void add_desc(op_power_sensor *s, const char *label)
{
	size_t n = strlen(s->desc);
	snprintf(s->desc + n, sizeof(s->desc) - n, "%s%s", s->nch > 1 ? ", " : "", label);
}

static int name_listed(const char *filter, const char *name)
{
	if (!filter || !filter[0])
		return 1;
	size_t n = strlen(name);
	for (const char *p = filter; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t len = strcspn(p, ", ");
		if (len == n && !strncmp(p, name, n))
			return 1;
		p += len;
	}
	return 0;
}

static int open_rapl(op_power_sensor *s, const char *root, char *err, size_t cap)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/class/powercap", root);
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, cap, "no RAPL: %s: %s", dir, strerror(errno));
		return -ENODEV;
	}
	struct dirent *de;
	int denied = 0, failed = 0;
	char bad[400] = "";
	while ((de = readdir(d)) && s->nch < MAX_CH) {
		/* top-level zones only: intel-rapl:N, not intel-rapl:N:M */
		const char *colon = strchr(de->d_name, ':');
		if (strncmp(de->d_name, "intel-rapl:", 11) || !colon || strchr(colon + 1, ':'))
			continue;
		channel *c = &s->ch[s->nch];
		char p[320], name[64] = "";
		if (snprintf(c->path, sizeof(c->path), "%s/%s/energy_uj", dir, de->d_name) >= (int)sizeof(c->path))
			continue;
		if (snprintf(p, sizeof(p), "%s/%s/max_energy_range_uj", dir, de->d_name) >= (int)sizeof(p))
			continue;
		if (read_u64(p, &c->range) < 0)
			c->range = 0;
		if (snprintf(p, sizeof(p), "%s/%s/name", dir, de->d_name) >= (int)sizeof(p))
			continue;
		read_str(p, name, sizeof(name));
		if (!strcmp(name, "psys")) /* the platform domain covers the packages: never both */
			continue;
		int e = read_u64(c->path, &c->last);
		if (e < 0) { /* a package left out would under-read the node: the first one named */
			if (!bad[0])
				snprintf(bad, sizeof(bad), "%s: %s", c->path, strerror(-e));
			denied |= e == -EACCES || e == -EPERM;
			failed = e;
			continue;
		}
		c->have_last = 1;
		c->counter = 1;
		c->must_move = 1;
		if (snprintf(c->label, sizeof(c->label), "%s", name[0] ? name : de->d_name) >= (int)sizeof(c->label))
			c->label[sizeof(c->label) - 1] = 0;
		s->nch++;
		add_desc(s, c->label);
	}
	closedir(d);
	if (failed) { /* present but not readable, all or some: not "absent" (powerctl says so) */
		snprintf(s->unread, sizeof(s->unread), "RAPL package counter unreadable: %s%s", bad,
			 denied ? " (energy_uj is root-only on this kernel: run as root or grant read access)" : "");
		if (!s->nch) {
			snprintf(err, cap, "%s", s->unread);
			return denied ? -EACCES : failed;
		}
	}
	if (!s->nch) {
		snprintf(err, cap, "no RAPL package under %s", dir);
		return -ENODEV;
	}
	return 0;
}

static int open_hwmon(op_power_sensor *s, const char *root, const char *filter, char *err, size_t cap)
{
	char dir[256];
	snprintf(dir, sizeof(dir), "%s/class/hwmon", root);
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, cap, "no hwmon: %s: %s", dir, strerror(errno));
		return -ENODEV;
	}
	struct dirent *de;
	while ((de = readdir(d)) && s->nch < MAX_CH) {
		if (strncmp(de->d_name, "hwmon", 5))
			continue;
		char p[320], name[64] = "";
		if (snprintf(p, sizeof(p), "%s/%s/name", dir, de->d_name) >= (int)sizeof(p))
			continue;
		read_str(p, name, sizeof(name));
		if (!name_listed(filter, name))
			continue;
		/* the first channel of each device: energy preferred, then power */
		static const char *const files[] = {"energy1_input", "power1_input", "power1_average"};
		for (int i = 0; i < 3; i++) {
			channel *c = &s->ch[s->nch];
			uint64_t v;
			if (snprintf(c->path, sizeof(c->path), "%s/%s/%s", dir, de->d_name, files[i]) >= (int)sizeof(c->path))
			continue;
			if (read_u64(c->path, &v) < 0)
				continue;
			c->counter = i == 0;
			c->last = v;
			c->have_last = 1;
			if (snprintf(c->label, sizeof(c->label), "%s/%s", name[0] ? name : de->d_name, files[i]) >= (int)sizeof(c->label))
				c->label[sizeof(c->label) - 1] = 0;
			s->nch++;
			add_desc(s, c->label);
			break;
		}
	}
	closedir(d);
	if (!s->nch) {
		snprintf(err, cap, "no hwmon device with a power or energy reading under %s%s%s", dir,
			 filter && filter[0] ? " named " : "", filter ? filter : "");
		return -ENODEV;
	}
	return 0;
}

int op_power_sensor_open(const char *kind, const char *root, const char *filter, const op_plant_params *plant,
			 op_power_sensor **out, char *err, size_t cap)
{
	op_power_sensor *s = calloc(1, sizeof(*s));
	int e = 0;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	snprintf(s->kind, sizeof(s->kind), "%s", kind);
	s->stale_ns = 3000000000ull;
	if (!root || !root[0])
		root = "/sys";
	if (!strcmp(kind, "rapl")) {
		snprintf(s->desc, sizeof(s->desc), "rapl: ");
		e = open_rapl(s, root, err, cap);
	} else if (!strcmp(kind, "hwmon")) {
		snprintf(s->desc, sizeof(s->desc), "hwmon: ");
		e = open_hwmon(s, root, filter, err, cap);
	} else if (!strcmp(kind, "meter")) {
		snprintf(s->desc, sizeof(s->desc), "meter: the site meter's readings");
		s->meter_w = NAN;
	} else if (!strcmp(kind, "sim")) {
		op_plant_params pp;
		if (plant)
			pp = *plant;
		else
			op_plant_defaults(&pp);
		s->plant = op_plant_new(&pp);
		if (!s->plant)
			e = -ENOMEM;
		snprintf(s->desc, sizeof(s->desc),
			 "sim: simulated node, %.0f W idle, %.1f mJ per event, %.1f W noise, %.1f s averaging",
			 pp.idle_w, 1e3 * (pp.event_j > 0 ? pp.event_j : (pp.full_w - pp.idle_w) / pp.rate_full),
			 pp.noise_w, pp.lag_s);
	} else if (!strcmp(kind, "nvml")) {
		e = op_nvml_open(&s->nvml, err, cap);
		if (e == 0)
			snprintf(s->desc, sizeof(s->desc), "nvml: %s", op_nvml_describe(s->nvml));
	} else {
		snprintf(err, cap, "unknown sensor '%s' (nvml, rapl, hwmon, meter, sim)", kind);
		e = -EINVAL;
	}
	if (e < 0) {
		op_power_sensor_close(s);
		return e;
	}
	/* the counters' baselines were taken now: the first period starts here */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->last_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	for (int i = 0; i < s->nch; i++)
		s->ch[i].moved_ns = s->last_ns;
	*out = s;
	return 0;
}

void op_power_sensor_close(op_power_sensor *s)
{
	if (!s)
		return;
	op_plant_free(s->plant);
	op_nvml_close(s->nvml);
	free(s);
}

const char *op_power_sensor_kind(const op_power_sensor *s)
{
	return s->kind;
}

const char *op_power_sensor_describe(const op_power_sensor *s)
{
	return s->desc;
}

const char *op_power_sensor_unread(const op_power_sensor *s)
{
	return s->unread;
}

void op_power_sensor_feed(op_power_sensor *s, double watts, uint64_t now_ns)
{
	s->meter_w = watts;
	s->meter_ns = now_ns;
}

void op_power_sensor_set_stale_after(op_power_sensor *s, uint64_t ns)
{
	s->stale_ns = ns;
}

op_plant *op_power_sensor_plant(op_power_sensor *s)
{
	return s->plant;
}

struct op_nvml *op_power_sensor_nvml(op_power_sensor *s)
{
	return s->nvml;
}

static int read_channels(op_power_sensor *s, uint64_t now_ns, double *watts, char *err, size_t cap)
{
	double sum = 0;
	double dt = s->last_ns ? (double)(now_ns - s->last_ns) / 1e9 : 0;
	int again = -1, odd = -1; /* the first channel without a reading, with an implausible one */
	double odd_w = 0;
	uint64_t vals[MAX_CH];

	/* every channel read before any baseline moves: one failed read must not leave the others'
	 * baselines a period ahead of the time they are divided by (their next reading too low) */
	for (int i = 0; i < s->nch; i++) {
		int e = read_u64(s->ch[i].path, &vals[i]);
		if (e < 0) {
			snprintf(err, cap, "%s: %s", s->ch[i].path, strerror(-e));
			return e;
		}
	}
	/* a frozen counter: an error before any baseline moves, as for a failed read */
	for (int i = 0; i < s->nch; i++) {
		const channel *c = &s->ch[i];
		if (c->must_move && c->have_last && vals[i] == c->last && now_ns - c->moved_ns >= FROZEN_NS) {
			snprintf(err, cap, "%s: energy counter has not moved for %.0f s (frozen)", c->path,
				 (double)(now_ns - c->moved_ns) / 1e9);
			return -EIO;
		}
	}
	for (int i = 0; i < s->nch; i++) {
		channel *c = &s->ch[i];
		uint64_t v = vals[i];
		double cw;
		if (!c->counter) {
			cw = (double)v / 1e6; /* µW */
			goto add;
		}
		uint64_t prev = c->last;
		int had = c->have_last;
		c->last = v;
		c->have_last = 1;
		if (!had || v != prev)
			c->moved_ns = now_ns;
		if (!had || dt <= 0) {
			again = again < 0 ? i : again;
			continue;
		}
		uint64_t d;
		if (v >= prev)
			d = v - prev;
		else if (c->range && prev <= c->range && (double)(c->range - prev + v) / 1e6 / dt <= WRAP_MAX_W)
			d = c->range - prev + v; /* wrapped */
		else {
			/* went backwards with no wrap range, or by more than a package could draw across
			 * a wrap in the period: a reset (driver reload, a package reset at a resume); no
			 * reading now. Read as a wrap, a reset gave one period of up to the whole range
			 * (Intel's: 262 kJ), tens of kW, under the sanity limit. */
			again = again < 0 ? i : again;
			continue;
		}
		cw = (double)d / 1e6 / dt; /* µJ over dt */
	add:
		if (!isfinite(cw) || cw > SANE_MAX_W) {
			if (odd < 0) {
				odd = i;
				odd_w = cw;
			}
			continue;
		}
		sum += cw;
	}
	/* the baselines moved (the values were read): the next period's reading is clean */
	s->last_ns = now_ns;
	if (odd >= 0) {
		snprintf(err, cap, "%s: implausible reading %g W", s->ch[odd].path, odd_w);
		return -ERANGE;
	}
	if (again >= 0) {
		snprintf(err, cap, "%s: energy counter baseline (re)taken; a reading next period", s->ch[again].path);
		return -EAGAIN;
	}
	*watts = sum;
	return 0;
}

int op_power_sensor_read(op_power_sensor *s, uint64_t now_ns, double *watts, char *err, size_t cap)
{
	int e = 0;
	double w = NAN;

	if (!strcmp(s->kind, "rapl") || !strcmp(s->kind, "hwmon")) {
		e = read_channels(s, now_ns, &w, err, cap);
	} else if (!strcmp(s->kind, "meter")) {
		if (isnan(s->meter_w) || !s->meter_ns) {
			snprintf(err, cap, "meter: no reading received yet");
			e = -ENODATA;
		} else if (now_ns - s->meter_ns > s->stale_ns) {
			snprintf(err, cap, "meter: last reading %.1f s old", (double)(now_ns - s->meter_ns) / 1e9);
			e = -ETIMEDOUT;
		} else
			w = s->meter_w;
	} else if (!strcmp(s->kind, "sim")) {
		w = op_plant_read(s->plant);
	} else if (!strcmp(s->kind, "nvml")) {
		e = op_nvml_read(s->nvml, now_ns, &w, err, cap);
	}
	if (e < 0)
		return e;
	if (!isfinite(w) || w < 0 || w > SANE_MAX_W) {
		snprintf(err, cap, "%s: implausible reading %g W", s->kind, w);
		return -ERANGE;
	}
	*watts = w;
	return 0;
}
