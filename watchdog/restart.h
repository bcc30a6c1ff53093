/*
 * restart.h — when to restart a failed stage, and when to stop trying and escalate.
 *
 * A pure state machine over monotonic time (no clocks read, no processes touched), so it can
 * be tested exactly. Policy (Erlang/OTP style restart intensity):
 *   - every failure schedules a restart after a backoff that starts at backoff_ns and doubles
 *     up to backoff_max_ns; a stage that stays up for stable_ns resets its backoff;
 *   - more than burst failures within interval_ns is a restart storm: the verdict becomes
 *     OP_RESTART_ESCALATE: the restart budget is spent, and the supervisor escalates (it
 *     asks systemd to restart the whole process: appliance/supervisor.c). The delay then
 *     returned is the maximum backoff, for a caller that chooses to keep retrying instead.
 */
#ifndef OP_WATCHDOG_RESTART_H
#define OP_WATCHDOG_RESTART_H
#include <stdint.h>

#define OP_RESTART_HISTORY 1024 /* > supervisor.restart_burst's largest value (1000) + 1: a burst it
                                  * cannot remember would never escalate */

typedef struct op_restart_policy {
	uint32_t burst;
	uint64_t interval_ns;
	uint64_t backoff_ns;
	uint64_t backoff_max_ns;
	uint64_t stable_ns;
} op_restart_policy;

typedef struct op_restart_state {
	uint64_t failures_total;
	uint64_t started_ns; /* when the current incarnation started */
	uint64_t next_backoff_ns;
	uint64_t history[OP_RESTART_HISTORY]; /* failure times, ring */
	uint32_t history_len, history_head;
	int escalated;
} op_restart_state;

enum op_restart_verdict { OP_RESTART_AFTER_DELAY = 0, OP_RESTART_ESCALATE = 1 };

void op_restart_init(op_restart_state *s, const op_restart_policy *p);
/* The stage (re)started at now_ns. */
void op_restart_started(op_restart_state *s, uint64_t now_ns);
/* The stage failed at now_ns; *delay_ns receives the time to wait before restarting it. */
int op_restart_failed(op_restart_state *s, const op_restart_policy *p, uint64_t now_ns, uint64_t *delay_ns);

#endif
