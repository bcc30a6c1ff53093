/*
 * test_restart.c — restart backoff doubles to its ceiling, resets after a stable run, and a
 * burst of failures spends the restart budget; the persistent start counter survives a
 * missing or garbled file and is replaced atomically.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit/check.h"
#include "watchdog/bootcount.h"
#include "watchdog/restart.h"

#define S 1000000000ull

int main(void)
{
	op_restart_policy p = {.burst = 3, .interval_ns = 60 * S, .backoff_ns = 1 * S,
			       .backoff_max_ns = 8 * S, .stable_ns = 30 * S};
	op_restart_state s;
	uint64_t t = 1000 * S, d = 0;

	op_restart_init(&s, &p);
	op_restart_started(&s, t);
	/* Failures 1s apart: 1, 2, 4 s, then the 4th within the interval is a storm. */
	CHECK(op_restart_failed(&s, &p, t += S, &d) == OP_RESTART_AFTER_DELAY && d == 1 * S);
	op_restart_started(&s, t + d);
	CHECK(op_restart_failed(&s, &p, t += 2 * S, &d) == OP_RESTART_AFTER_DELAY && d == 2 * S);
	op_restart_started(&s, t + d);
	CHECK(op_restart_failed(&s, &p, t += 3 * S, &d) == OP_RESTART_AFTER_DELAY && d == 4 * S);
	op_restart_started(&s, t + d);
	CHECK(op_restart_failed(&s, &p, t += 5 * S, &d) == OP_RESTART_ESCALATE);
	CHECK_EQ_U64(d, 8 * S); /* storms retry at the slowest pace, never give up */
	CHECK(s.escalated);
	CHECK_EQ_U64(s.failures_total, 4);

	/* Long stable run: backoff back to 1 s, storm over (old failures out of the interval). */
	op_restart_started(&s, t += 10 * S);
	CHECK(op_restart_failed(&s, &p, t += 120 * S, &d) == OP_RESTART_AFTER_DELAY);
	CHECK_EQ_U64(d, 1 * S);
	CHECK(!s.escalated);

	/* The largest burst the configuration allows (1000) still escalates at its next failure:
	 * with a history shorter than the burst, a crash loop would never escalate. */
	{
		op_restart_policy big = p;
		big.burst = 1000;
		big.interval_ns = 3600 * S;
		op_restart_state b;
		op_restart_init(&b, &big);
		uint64_t tb = 1000 * S;
		int escalated_at = 0;
		for (int i = 1; i <= 1001 && !escalated_at; i++)
			if (op_restart_failed(&b, &big, tb += S, &d) == OP_RESTART_ESCALATE)
				escalated_at = i;
		CHECK_EQ_U64(escalated_at, 1001);
	}

	/* Start counter: missing file → 1, then 2; garbage → reported, counted from 0; set 0. */
	char dir[] = "/tmp/op-bootcount-XXXXXX", path[64], err[256], text[32];
	uint32_t c = 0;
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/start-count", dir);
	CHECK(op_bootcount_bump(path, &c, err, sizeof(err)) == 0 && c == 1);
	CHECK(op_bootcount_bump(path, &c, err, sizeof(err)) == 0 && c == 2);
	FILE *f = fopen(path, "r");
	CHECK(f && fgets(text, sizeof(text), f) && !strcmp(text, "2\n"));
	if (f)
		fclose(f);
	f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs("\x7f\x45garbage", f);
		fclose(f);
	}
	CHECK(op_bootcount_bump(path, &c, err, sizeof(err)) == 1 && c == 1);
	CHECK(strstr(err, "does not hold a start count") != NULL);
	CHECK(op_bootcount_set(path, 0) == 0);
	CHECK(op_bootcount_bump(path, &c, err, sizeof(err)) == 0 && c == 1);
	char tmp[80];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CHECK(access(tmp, F_OK) != 0); /* no temporary left behind */
	/* A directory that does not exist: the error comes back, nothing crashes. */
	char missing[96];
	snprintf(missing, sizeof(missing), "%s/no/such/dir/start-count", dir);
	CHECK(op_bootcount_bump(missing, &c, err, sizeof(err)) < 0);
	unlink(path);
	rmdir(dir);
	return check_finish("test_restart");
}
