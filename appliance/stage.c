/*
 * stage.c — the part every stage process shares: start-up, signals, the report it sends to
 * the supervisor, and dispatch to the stage's own loop.
 *
 * A stage never decides about other stages: it does its work, reports its counters and its
 * progress, and exits non-zero on a fault it can't handle. The supervisor does the rest.
 * Reports are sent with ZMQ_DONTWAIT: a slow or restarting supervisor must never stall the
 * data path (a lost report is replaced 250 ms later).
 */
#include "appliance/stage.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/log.h"

volatile sig_atomic_t op_stage_stop;

uint64_t op_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t op_realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void op_stage_endpoint(char *out, size_t cap, const op_config *cfg, const char *sock)
{
	snprintf(out, cap, "ipc://%s/%s", cfg->run_dir, sock);
}

static void on_stop(int sig)
{
	(void)sig;
	op_stage_stop = 1;
}

/*
 * A reload that changed log.level: the supervisor writes effective.yaml anew (a rename: a new
 * inode), and a stage reads log.level from it again at its next report (the other keys a running
 * stage takes reach it by other means: supervisor.c, reload). Not a signal: ZeroMQ's blocking
 * calls return EINTR for any handled signal, which the stages' send loops take for a failed
 * socket.
 */
static struct stat config_seen;

static void follow_log_level(const op_stage_ctx *s)
{
	struct stat sb;
	if (!s->config_path || stat(s->config_path, &sb) != 0)
		return;
	if (sb.st_ino == config_seen.st_ino && sb.st_dev == config_seen.st_dev &&
	    sb.st_mtim.tv_sec == config_seen.st_mtim.tv_sec && sb.st_mtim.tv_nsec == config_seen.st_mtim.tv_nsec)
		return;
	/* also the first time: a reload may have replaced the file since the stage read it */
	config_seen = sb;
	op_config c;
	op_config_defaults(&c);
	if (op_config_load_file(&c, s->config_path, NULL) == 0)
		op_log_set_level(c.log_level);
	else
		op_err("cannot read %s again for its log.level; keeping the previous one", s->config_path);
}

static void report_append(op_stage_ctx *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (s->report_len >= s->report_cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(s->report + s->report_len, s->report_cap - s->report_len, fmt, ap);
	va_end(ap);
	/* a line whole or not at all: one cut at the cap could still parse, with a wrong number */
	if (n > 0 && (size_t)n < s->report_cap - s->report_len)
		s->report_len += (size_t)n;
	else
		s->report[s->report_len] = 0;
}

void op_report_begin(op_stage_ctx *s, uint64_t progress, int idle)
{
	s->report_len = 0;
	report_append(s, "stage %s\npid %ld\nincarnation %llu\nprogress %llu\nidle %d\n", s->name,
		      (long)getpid(), (unsigned long long)s->incarnation_ns, (unsigned long long)progress, idle);
}

void op_report_counter(op_stage_ctx *s, const char *key, uint64_t v)
{
	report_append(s, "c %s %llu\n", key, (unsigned long long)v);
}

void op_report_gauge(op_stage_ctx *s, const char *key, double v)
{
	report_append(s, "g %s %.17g\n", key, v);
}

void op_report_line(op_stage_ctx *s, const char *tag, const char *text)
{
	report_append(s, "%s %s\n", tag, text);
}

void op_report_send(op_stage_ctx *s)
{
	op_log_flush(); /* a flood that stopped: counted within a window and a report */
	s->last_report_ns = op_now_ns();
	if (s->stats_sock)
		zmq_send(s->stats_sock, s->report, s->report_len, ZMQ_DONTWAIT);
}

int op_report_due(op_stage_ctx *s, uint64_t now_ns)
{
	if (now_ns - s->last_report_ns < OP_STAGE_REPORT_NS)
		return 0;
	follow_log_level(s);
	return 1;
}

int op_stage_main(const char *name, const op_config *cfg, const char *config_path, int safe_mode)
{
	op_stage_ctx s;
	char ep[OP_CFG_STR + 32];
	struct sigaction sa;
	int rc = 2;
	int zero = 0, linger_ms = 1000;

	memset(&s, 0, sizeof(s));
	/* before the handlers: a supervisor that dies sooner ends this process by SIGTERM's
	 * default action (PDEATHSIG), one that dies later is told apart by getppid() */
	s.supervisor_pid = getppid();
	s.cfg = cfg;
	s.config_path = config_path;
	s.name = name;
	s.safe_mode = safe_mode;
	s.incarnation_ns = op_realtime_ns();
	s.report_cap = OP_REPORT_CAP;
	s.report = malloc(s.report_cap);
	if (!s.report)
		return 2;
	op_log_init(name, cfg->log_level);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	follow_log_level(&s); /* what it starts with: a later change is a reload's */

	s.zctx = zmq_ctx_new();
	if (!s.zctx)
		goto out;
	s.stats_sock = zmq_socket(s.zctx, ZMQ_PUSH);
	op_stage_endpoint(ep, sizeof(ep), cfg, "stats.sock");
	zmq_setsockopt(s.stats_sock, ZMQ_LINGER, &linger_ms, sizeof(linger_ms));
	(void)zero;
	if (zmq_connect(s.stats_sock, ep) != 0) {
		op_err("cannot connect stats socket %s: %s", ep, zmq_strerror(errno));
		goto out;
	}

	if (!strcmp(name, "ingest"))
		rc = op_stage_ingest(&s);
	else if (!strcmp(name, "infer"))
		rc = op_stage_infer(&s);
	else if (!strcmp(name, "store"))
		rc = op_stage_store(&s);
	else if (!strcmp(name, "uplink"))
		rc = op_stage_uplink(&s);
	else
		op_err("unknown stage '%s'", name);

out:
	if (s.stats_sock)
		zmq_close(s.stats_sock);
	if (s.zctx)
		zmq_ctx_term(s.zctx);
	free(s.report);
	return rc;
}
