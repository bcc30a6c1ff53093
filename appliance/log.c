/*
 * log.c — see log.h. Journal when running under systemd with a journal stream, else stderr.
 * Never exits, never allocates on the heap.
 */
#include "appliance/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

static char log_stage[32] = "outpostd";
static int log_level = OP_LOG_INFO;
static int log_journal;

static int level_from_name(const char *s)
{
	if (!s)
		return OP_LOG_INFO;
	if (!strcmp(s, "error"))
		return OP_LOG_ERR;
	if (!strcmp(s, "warning"))
		return OP_LOG_WARNING;
	if (!strcmp(s, "debug"))
		return OP_LOG_DEBUG;
	return OP_LOG_INFO;
}

void op_log_init(const char *stage, const char *level_name)
{
	snprintf(log_stage, sizeof(log_stage), "%s", stage);
	log_level = level_from_name(level_name);
	/* JOURNAL_STREAM is set by systemd when stderr is connected to the journal. */
	log_journal = getenv("JOURNAL_STREAM") != NULL && getenv("OUTPOST_LOG_STDERR") == NULL;
}

void op_log_set_level(const char *level_name)
{
	log_level = level_from_name(level_name);
}

void op_log(int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	if (log_journal) {
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", level, "OUTPOST_STAGE=%s", log_stage,
				"SYSLOG_IDENTIFIER=outpost", NULL);
		return;
	}
	static const char *const names[8] = {"EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG"};
	fprintf(stderr, "outpost[%s] %s: %s\n", log_stage, names[level & 7], msg);
}
