/*
 * schedule.h — the site's power budget over time, and power values as operators write them.
 *
 * power.schedule is one line of entries separated by ';'. Each entry is an optional date range
 * (MM-DD..MM-DD, wrapping over the new year), an optional time-of-day range (HH:MM-HH:MM,
 * wrapping over midnight, end exclusive), and a power. The first entry that matches the box's
 * local time gives the budget; when none does, power.budget does. For example
 *
 *     power:
 *       budget: 200W
 *       schedule: "05-01..08-31 150W; 22:00-06:00 120W"
 *
 * holds 150 W through the austral winter, otherwise 120 W at night and 200 W by day.
 * Power values: a number with a unit, mW, W, kW or MW, as 250W, 1.5kW (case as written).
 */
#ifndef OP_POWER_SCHEDULE_H
#define OP_POWER_SCHEDULE_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define OP_SCHEDULE_MAX 32

typedef struct op_power_schedule {
	struct op_schedule_entry {
		int date_from, date_to; /* month·100 + day; 0: every day */
		int min_from, min_to;   /* minutes after midnight; -1: all day */
		uint64_t mw;
	} e[OP_SCHEDULE_MAX];
	int n;
} op_power_schedule;

/* "250W", "1.5kW" → milliwatts. 0, or -1 with the reason in err. */
int op_power_parse_mw(const char *text, uint64_t *mw, char *err, size_t errcap);
/* "250 W", "1.5 kW" */
void op_power_format(char *out, size_t cap, double watts);
/* 0, or -1 with the reason (naming the entry, by number and text) in err. */
int op_power_schedule_parse(const char *text, op_power_schedule *out, char *err, size_t errcap);
/* The budget at local time tm: the first matching entry's (its index in *which), else dflt
 * (*which = -1). */
uint64_t op_power_schedule_budget(const op_power_schedule *s, uint64_t dflt_mw, const struct tm *tm, int *which);

#endif
