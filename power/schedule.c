/*
 * schedule.c — power values and the budget schedule (see schedule.h).
 */
#include "power/schedule.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int op_power_parse_mw(const char *s, uint64_t *mw, char *err, size_t cap)
{
	static const struct {
		const char *name;
		double mul;
	} units[] = {{"mW", 1}, {"W", 1e3}, {"kW", 1e6}, {"MW", 1e9}};
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s) && *s != '.') {
		snprintf(err, cap, "'%s' is not a power: write a number and a unit, as 250W or 1.5kW", s);
		return -1;
	}
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0) {
		snprintf(err, cap, "'%s' is not a power: write a number and a unit, as 250W or 1.5kW", s);
		return -1;
	}
	while (*end == ' ')
		end++;
	if (!*end) {
		snprintf(err, cap, "'%s' needs a unit: write '%sW' for watts (units: mW, W, kW, MW)", s, s);
		return -1;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].name)) {
			double x = v * units[i].mul;
			if (x > 1e15) {
				snprintf(err, cap, "'%s' is out of range", s);
				return -1;
			}
			*mw = (uint64_t)llround(x);
			return 0;
		}
	const char *hint = !strcasecmp(end, "w") || !strcasecmp(end, "watt") || !strcasecmp(end, "watts") ? "W"
			   : !strcasecmp(end, "kw") || !strcasecmp(end, "kilowatt") || !strcasecmp(end, "kilowatts") ? "kW"
			   : !strcasecmp(end, "mw") ? "mW (milliwatts) or MW (megawatts)"
						   : NULL;
	if (hint)
		snprintf(err, cap, "'%s': unit '%s' is not one of mW, W, kW, MW; write %s", s, end, hint);
	else
		snprintf(err, cap, "'%s': unknown unit '%s' (units: mW, W, kW, MW)", s, end);
	return -1;
}

void op_power_format(char *out, size_t cap, double w)
{
	if (w >= 10000)
		snprintf(out, cap, "%.2f kW", w / 1000);
	else
		snprintf(out, cap, "%.1f W", w);
}

static int parse_hhmm(const char *s, int *min)
{
	int h, m, n = 0;
	if (sscanf(s, "%2d:%2d%n", &h, &m, &n) != 2 || n != 5 || h < 0 || h > 24 || m < 0 || m > 59 ||
	    (h == 24 && m != 0))
		return -1;
	*min = h * 60 + m;
	return 0;
}

static const int mdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

static int parse_mmdd(const char *s, int *md)
{
	int mo, d, n = 0;
	if (sscanf(s, "%2d-%2d%n", &mo, &d, &n) != 2 || n != 5 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo])
		return -1;
	*md = mo * 100 + d;
	return 0;
}

int op_power_schedule_parse(const char *text, op_power_schedule *out, char *err, size_t cap)
{
	char buf[1024];
	int idx = 0;

	memset(out, 0, sizeof(*out));
	if (snprintf(buf, sizeof(buf), "%s", text) >= (int)sizeof(buf)) {
		snprintf(err, cap, "the schedule is longer than %zu characters", sizeof(buf) - 1);
		return -1;
	}
	for (char *save = NULL, *ent = strtok_r(buf, ";", &save); ent; ent = strtok_r(NULL, ";", &save)) {
		char words[3][64], orig[128];
		int nw = 0;
		idx++;
		while (isspace((unsigned char)*ent))
			ent++;
		size_t L = strlen(ent);
		while (L && isspace((unsigned char)ent[L - 1]))
			ent[--L] = 0;
		if (!L)
			continue;
		snprintf(orig, sizeof(orig), "%s", ent);
		if (out->n == OP_SCHEDULE_MAX) {
			snprintf(err, cap, "more than %d schedule entries", OP_SCHEDULE_MAX);
			return -1;
		}
		for (char *s2 = NULL, *w = strtok_r(ent, " \t", &s2); w; w = strtok_r(NULL, " \t", &s2)) {
			if (nw == 3) {
				snprintf(err, cap, "entry %d '%s': too many parts (write [MM-DD..MM-DD] [HH:MM-HH:MM] POWER)",
					 idx, orig);
				return -1;
			}
			snprintf(words[nw++], sizeof(words[0]), "%s", w);
		}
		struct op_schedule_entry *e = &out->e[out->n];
		e->min_from = e->min_to = -1;
		char perr[160];
		if (strchr(words[nw - 1], ':') || strstr(words[nw - 1], "..")) {
			snprintf(err, cap, "entry %d '%s' has no power at its end (write e.g. '%s 120W')", idx, orig, orig);
			return -1;
		}
		if (op_power_parse_mw(words[nw - 1], &e->mw, perr, sizeof(perr)) < 0) {
			snprintf(err, cap, "entry %d '%s': it must end in a power: %s", idx, orig, perr);
			return -1;
		}
		for (int i = 0; i < nw - 1; i++) {
			char *w = words[i], *dots = strstr(w, ".."), *dash = strchr(w, '-');
			if (dots) {
				*dots = 0;
				if (e->date_from || parse_mmdd(w, &e->date_from) < 0 || parse_mmdd(dots + 2, &e->date_to) < 0) {
					snprintf(err, cap, "entry %d '%s': bad date range (write MM-DD..MM-DD, e.g. 05-01..08-31)",
						 idx, orig);
					return -1;
				}
			} else if (strchr(w, ':') && dash) {
				*dash = 0;
				if (e->min_from >= 0 || parse_hhmm(w, &e->min_from) < 0 || parse_hhmm(dash + 1, &e->min_to) < 0) {
					snprintf(err, cap, "entry %d '%s': bad time range (write HH:MM-HH:MM, e.g. 22:00-06:00)",
						 idx, orig);
					return -1;
				}
			} else {
				snprintf(err, cap, "entry %d '%s': '%s' is neither a date range (MM-DD..MM-DD) nor a time "
						   "range (HH:MM-HH:MM)", idx, orig, words[i]);
				return -1;
			}
		}
		out->n++;
	}
	return 0;
}

static int in_range(int v, int from, int to, int inclusive_end)
{
	if (from <= to)
		return v >= from && (inclusive_end ? v <= to : v < to);
	return v >= from || (inclusive_end ? v <= to : v < to); /* wraps */
}

uint64_t op_power_schedule_budget(const op_power_schedule *s, uint64_t dflt, const struct tm *tm, int *which)
{
	int md = (tm->tm_mon + 1) * 100 + tm->tm_mday, mins = tm->tm_hour * 60 + tm->tm_min;
	for (int i = 0; i < s->n; i++) {
		const struct op_schedule_entry *e = &s->e[i];
		if (e->date_from && !in_range(md, e->date_from, e->date_to, 1))
			continue;
		if (e->min_from >= 0 && e->min_from != e->min_to && !in_range(mins, e->min_from, e->min_to, 0))
			continue;
		if (which)
			*which = i;
		return e->mw;
	}
	if (which)
		*which = -1;
	return dflt;
}
