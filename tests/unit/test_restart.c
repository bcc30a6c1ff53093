/*
 * test_restart.c — restart backoff doubles to its ceiling, resets after a stable run, and a
 * burst of failures is escalated as a restart storm.
 */
#include "unit/check.h"
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
	return check_finish("test_restart");
}
