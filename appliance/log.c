/*
 * log.c — see log.h. Journal when running under systemd with a journal stream, else stderr.
 * Never exits, never allocates on the heap.
 *
 * Rate limit: each call site (told apart by its format string) may log `burst` lines per
 * `window`; what is over is counted, and the first line from that site after the window says
 * how many were suppressed. A flood of bad input therefore costs a few lines per window, not a
 * full disk, and the operator still learns how big the flood was: a flood that stops is
 * counted by op_log_flush once its window is over (the stages at each report, the supervisor
 * every turn of its loop), as the next line from the site would. Sites beyond the table's size
 * share one last slot, where errors are never held back: there a chatty site would otherwise
 * silence a one-off error of another.
 */
#include "appliance/log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <time.h>

static char log_stage[32] = "outpostd";
static int log_level = OP_LOG_INFO;
static int log_journal;
static uint32_t rl_burst = 20;
static uint64_t rl_window_ns = 10000000000ull;

#define RL_SITES 512 /* the supervisor process alone has about 90 call sites */
static struct site {
	const char *fmt;
	uint64_t window_start;
	uint32_t count;
	int level; /* of its last line held back */
	uint64_t suppressed;
} sites[RL_SITES];
static uint64_t held_back; /* lines held back not yet counted in the journal */

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

void op_log_set_rate(uint32_t burst, uint64_t window_ns)
{
	rl_burst = burst;
	rl_window_ns = window_ns;
	memset(sites, 0, sizeof(sites));
	held_back = 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* 1: log it (*suppressed: lines dropped in the window before); 0: over the limit. */
static int admit(int level, const char *key, uint64_t *suppressed)
{
	struct site *s = NULL;
	uint64_t now = now_ns();

	for (int i = 0; i < RL_SITES; i++) {
		if (sites[i].fmt == key || !sites[i].fmt) {
			s = &sites[i];
			s->fmt = key;
			break;
		}
	}
	*suppressed = 0;
	if (!s) { /* the table is full: the shared last slot */
		s = &sites[RL_SITES - 1];
		if (level <= OP_LOG_ERR)
			return 1;
	}
	if (now - s->window_start >= rl_window_ns) {
		*suppressed = s->suppressed;
		held_back -= s->suppressed;
		s->window_start = now;
		s->count = 0;
		s->suppressed = 0;
	}
	if (s->count >= rl_burst) {
		s->suppressed++;
		s->level = level;
		held_back++;
		return 0;
	}
	s->count++;
	return 1;
}

static void emit(int level, const char *fields, const char *msg)
{
	if (log_journal) {
		struct iovec iov[16];
		char prio[16], stage[48];
		int n = 0;
		char m[1040];
		snprintf(m, sizeof(m), "MESSAGE=%s", msg);
		snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
		snprintf(stage, sizeof(stage), "OUTPOST_STAGE=%s", log_stage);
		iov[n++] = (struct iovec){m, strlen(m)};
		iov[n++] = (struct iovec){prio, strlen(prio)};
		iov[n++] = (struct iovec){stage, strlen(stage)};
		iov[n++] = (struct iovec){(char *)"SYSLOG_IDENTIFIER=outpost", 25};
		for (const char *p = fields; p && *p && n < 16;) { /* "KEY=value\nKEY=value" */
			const char *e = strchr(p, '\n');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			iov[n++] = (struct iovec){(char *)p, len};
			p += len + (e ? 1 : 0);
		}
		sd_journal_sendv(iov, n);
		return;
	}
	static const char *const names[8] = {"EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG"};
	if (fields && *fields) {
		char f[256];
		snprintf(f, sizeof(f), "%s", fields);
		for (char *p = f; *p; p++)
			if (*p == '\n')
				*p = ' ';
		fprintf(stderr, "outpost[%s] %s: %s {%s}\n", log_stage, names[level & 7], msg, f);
	} else {
		fprintf(stderr, "outpost[%s] %s: %s\n", log_stage, names[level & 7], msg);
	}
}

static void vlog(int level, const char *key, const char *fields, const char *fmt, va_list ap)
{
	char msg[1024];
	uint64_t suppressed;

	if (level > log_level || !admit(level, key, &suppressed))
		return;
	if (suppressed) {
		char note[160];
		snprintf(note, sizeof(note), "%llu more messages like the next one were suppressed in the last %.0f s",
			 (unsigned long long)suppressed, (double)rl_window_ns / 1e9);
		emit(level, NULL, note);
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	emit(level, fields, msg);
}

void op_log_flush(void)
{
	if (!held_back)
		return;
	const uint64_t now = now_ns();
	for (int i = 0; i < RL_SITES && sites[i].fmt; i++) {
		struct site *s = &sites[i];
		if (!s->suppressed || now - s->window_start < rl_window_ns)
			continue;
		char note[240];
		snprintf(note, sizeof(note), "%llu more messages like \"%.100s\"%s were suppressed in the last %.0f s",
			 (unsigned long long)s->suppressed, s->fmt,
			 i == RL_SITES - 1 ? " (or from places beyond the table, which share its slot)" : "",
			 (double)rl_window_ns / 1e9);
		held_back -= s->suppressed;
		s->suppressed = 0;
		s->count = 0;
		s->window_start = now;
		emit(s->level, NULL, note);
	}
}

void op_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fmt, NULL, fmt, ap);
	va_end(ap);
}

void op_logf(int level, const char *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fmt, fields, fmt, ap);
	va_end(ap);
}

void op_logk(int level, const char *key, const char *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, key, fields, fmt, ap);
	va_end(ap);
}
