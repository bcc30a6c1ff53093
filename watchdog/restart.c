/*
 * restart.c — restart backoff and restart-storm detection. See restart.h for the policy.
 */
#include "watchdog/restart.h"

#include <string.h>

void op_restart_init(op_restart_state *s, const op_restart_policy *p)
{
	memset(s, 0, sizeof(*s));
	s->next_backoff_ns = p->backoff_ns;
}

void op_restart_started(op_restart_state *s, uint64_t now_ns)
{
	s->started_ns = now_ns;
}

int op_restart_failed(op_restart_state *s, const op_restart_policy *p, uint64_t now_ns, uint64_t *delay_ns)
{
	uint32_t recent = 0;
	uint32_t cap = p->burst + 1 < OP_RESTART_HISTORY ? p->burst + 1 : OP_RESTART_HISTORY;

	s->failures_total++;
	if (now_ns - s->started_ns >= p->stable_ns)
		s->next_backoff_ns = p->backoff_ns; /* it had been healthy: start the ladder again */

	s->history[s->history_head] = now_ns;
	s->history_head = (s->history_head + 1) % OP_RESTART_HISTORY;
	if (s->history_len < OP_RESTART_HISTORY)
		s->history_len++;
	for (uint32_t i = 0; i < s->history_len && i < cap; i++) {
		uint32_t k = (s->history_head + OP_RESTART_HISTORY - 1 - i) % OP_RESTART_HISTORY;
		if (now_ns - s->history[k] <= p->interval_ns)
			recent++;
	}

	*delay_ns = s->next_backoff_ns;
	s->next_backoff_ns *= 2;
	if (s->next_backoff_ns > p->backoff_max_ns)
		s->next_backoff_ns = p->backoff_max_ns;

	s->escalated = recent > p->burst;
	if (s->escalated)
		*delay_ns = p->backoff_max_ns;
	return s->escalated ? OP_RESTART_ESCALATE : OP_RESTART_AFTER_DELAY;
}
