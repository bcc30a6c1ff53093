/*
 * notify.h — talking to systemd (sd_notify) for the supervisor.
 *
 * All calls are no-ops when NOTIFY_SOCKET is not set (run by hand, in tests). The supervisor
 * sends READY=1 only once the pipeline has really processed something or is idle with every
 * stage up, and WATCHDOG=1 only when every stage has shown progress within its deadline
 * (ARCHITECTURE.md invariant 5) — this module only carries the messages; the decision is the
 * supervisor's. Never logs.
 */
#ifndef OP_WATCHDOG_NOTIFY_H
#define OP_WATCHDOG_NOTIFY_H
#include <stdint.h>

/* 1 when a notify socket is configured. */
int op_notify_enabled(void);
/* The WATCHDOG_USEC systemd asks for, in ns, or 0 when the watchdog is off. */
uint64_t op_notify_watchdog_interval_ns(void);
int op_notify_ready(const char *status_line);
int op_notify_watchdog(void);
int op_notify_status(const char *status_line);
int op_notify_stopping(void);
/* Ask systemd for more start-up time (model loading, salvage of segments). */
int op_notify_extend_timeout(uint64_t ns);
/* WATCHDOG=trigger: tell systemd to act as if the watchdog had expired (restart us). */
int op_notify_watchdog_trigger(void);

#endif
