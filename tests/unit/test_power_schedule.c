/*
 * test_power_schedule.c — power values and the budget schedule as operators write them: the
 * budget that applies at a given local time (wrapping over midnight and the new year, first
 * match wins, power.budget otherwise) and the errors for what does not parse.
 */
#include <string.h>

#include "check.h"
#include "power/schedule.h"

static struct tm at(int mon, int day, int h, int m)
{
	struct tm t;
	memset(&t, 0, sizeof(t));
	t.tm_mon = mon - 1;
	t.tm_mday = day;
	t.tm_hour = h;
	t.tm_min = m;
	return t;
}

int main(void)
{
	uint64_t mw;
	char err[300];
	op_power_schedule s;
	int which;

	CHECK(op_power_parse_mw("250W", &mw, err, sizeof(err)) == 0 && mw == 250000);
	CHECK(op_power_parse_mw("1.5kW", &mw, err, sizeof(err)) == 0 && mw == 1500000);
	CHECK(op_power_parse_mw("750mW", &mw, err, sizeof(err)) == 0 && mw == 750);
	CHECK(op_power_parse_mw("0.002MW", &mw, err, sizeof(err)) == 0 && mw == 2000000);
	CHECK(op_power_parse_mw("180", &mw, err, sizeof(err)) < 0 && strstr(err, "needs a unit"));
	CHECK(op_power_parse_mw("180w", &mw, err, sizeof(err)) < 0 && strstr(err, "write W"));
	CHECK(op_power_parse_mw("-5W", &mw, err, sizeof(err)) < 0);
	CHECK(op_power_parse_mw("fast", &mw, err, sizeof(err)) < 0);

	CHECK(op_power_schedule_parse("05-01..08-31 150W; 22:00-06:00 120W; 12-20..01-10 08:00-20:00 90W", &s, err,
				      sizeof(err)) == 0);
	CHECK(s.n == 3);
	struct tm t;
	t = at(6, 15, 12, 0); /* winter, noon: entry 1 */
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 150000 && which == 0);
	t = at(6, 15, 23, 0); /* winter night: entry 1 still first */
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 150000 && which == 0);
	t = at(10, 3, 23, 30); /* spring night: entry 2 (wraps over midnight) */
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 120000 && which == 1);
	t = at(10, 3, 5, 59);
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 120000);
	t = at(10, 3, 6, 0); /* the end is exclusive */
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 200000 && which == -1);
	t = at(1, 2, 12, 0); /* summer season, over the new year, by day: entry 3 */
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 90000 && which == 2);
	t = at(12, 31, 7, 59);
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 200000);
	t = at(8, 31, 23, 59); /* inclusive last day */
	CHECK(op_power_schedule_budget(&s, 200000, &t, &which) == 150000);

	CHECK(op_power_schedule_parse("", &s, err, sizeof(err)) == 0 && s.n == 0);
	t = at(3, 3, 3, 3);
	CHECK(op_power_schedule_budget(&s, 0, &t, &which) == 0 && which == -1);
	CHECK(op_power_schedule_parse("02-30..03-01 100W", &s, err, sizeof(err)) < 0 && strstr(err, "bad date range"));
	CHECK(op_power_schedule_parse("22:00-6:00 100W", &s, err, sizeof(err)) < 0 && strstr(err, "bad time range"));
	CHECK(op_power_schedule_parse("100W; night 80W", &s, err, sizeof(err)) < 0 && strstr(err, "entry 2") &&
	      strstr(err, "'night'"));
	CHECK(op_power_schedule_parse("22:00-06:00 08:00-09:00 100W", &s, err, sizeof(err)) < 0);
	return check_finish("test_power_schedule");
}
