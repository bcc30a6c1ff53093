/*
 * notify.c — thin, checked wrappers over sd_notify. See notify.h.
 */
#include "watchdog/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>

int op_notify_enabled(void)
{
	return getenv("NOTIFY_SOCKET") != NULL;
}

uint64_t op_notify_watchdog_interval_ns(void)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0)
		return 0;
	return usec * 1000u;
}

int op_notify_ready(const char *status_line)
{
	if (!op_notify_enabled())
		return 0;
	return sd_notifyf(0, "READY=1\nSTATUS=%s", status_line ? status_line : "running");
}

int op_notify_watchdog(void)
{
	if (!op_notify_enabled())
		return 0;
	return sd_notify(0, "WATCHDOG=1");
}

int op_notify_status(const char *status_line)
{
	if (!op_notify_enabled())
		return 0;
	return sd_notifyf(0, "STATUS=%s", status_line);
}

int op_notify_stopping(void)
{
	if (!op_notify_enabled())
		return 0;
	return sd_notify(0, "STOPPING=1");
}

int op_notify_extend_timeout(uint64_t ns)
{
	if (!op_notify_enabled())
		return 0;
	return sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)(ns / 1000u));
}

int op_notify_watchdog_trigger(void)
{
	if (!op_notify_enabled())
		return 0;
	return sd_notify(0, "WATCHDOG=trigger");
}
