/*
 * supervisor.c — outpostd's parent process.
 *
 * NOTES ON THE DESIGN OF THE SUPERVISOR
 *
 * Each stage is this same binary re-executed as `outpostd --stage NAME -c <run_dir>/effective.yaml`
 * (the supervisor writes the configuration it validated, so every stage runs exactly that one).
 * Per stage:
 *
 *     STOPPED ──spawn──▶ RUNNING ──exit/crash/killed──▶ WAITING (backoff) ──▶ spawn ...
 *                          │  no report, or no progress while busy, for stage_deadline
 *                          └──SIGKILL──▶ (exit is then handled as a crash)
 *
 * Invariants:
 *  1. The supervisor never blocks on a stage: reports arrive on a PULL socket and are read
 *     without waiting; signals arrive through a signalfd polled in the same loop.
 *  2. Counters shown to operators never go backwards: when a stage restarts, the counters of
 *     its previous incarnation are folded into a base that is added to the new ones.
 *  3. When infer or store restarts, ingest is told to resend what it holds (at-least-once);
 *     when ingest dies, the events it held are counted as dropped (reason=ingest_crash).
 *  4. systemd's watchdog is pinged only while every stage reports within its deadline
 *     (ARCHITECTURE.md invariant 5); READY=1 is sent once every stage has reported.
 *  5. Restarts back off exponentially; a restart storm (more than restart_burst failures in
 *     restart_interval) is escalated: logged as critical, shown in status and STATUS=, and the
 *     stage keeps being retried at the slowest pace rather than abandoned.
 */
#include "appliance/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/log.h"
#include "appliance/stage.h"
#include "watchdog/notify.h"
#include "watchdog/restart.h"

#define MAX_KV 96
#define KEY_LEN 48
#define NSTAGES 4

typedef struct kv {
	char key[KEY_LEN];
	double value; /* gauges; counters use cur + base */
	uint64_t cur, base;
	int counter;
} kv;

typedef struct stage_rec {
	const char *name;
	pid_t pid;
	int running;
	uint64_t started_ns, restart_at_ns;
	op_restart_state rs;
	uint64_t restarts;
	int escalated;
	/* last report */
	int reported;
	uint64_t incarnation, progress, last_report_ns, progress_changed_ns;
	int idle, blocked;
	kv kv[MAX_KV];
	int nkv;
	int last_exit_status;
} stage_rec;

typedef struct sup {
	const op_config *cfg;
	char effective_path[OP_CFG_STR + 32];
	void *zctx, *stats, *control, *ingest_ctl;
	int sfd;
	stage_rec st[NSTAGES];
	op_restart_policy policy;
	uint64_t start_ns, last_ping_ns, ping_interval_ns;
	uint64_t dropped_ingest_crash;
	int ready_sent, stopping;
	char config_hash[17];
} sup;

/* Start order: downstream first, so every connect finds its peer bound soon after. */
static const char *const stage_names[NSTAGES] = {"store", "infer", "ingest", "uplink"};

static kv *kv_get(stage_rec *r, const char *key, int counter)
{
	for (int i = 0; i < r->nkv; i++)
		if (!strcmp(r->kv[i].key, key))
			return &r->kv[i];
	if (r->nkv == MAX_KV)
		return NULL;
	kv *k = &r->kv[r->nkv++];
	memset(k, 0, sizeof(*k));
	snprintf(k->key, sizeof(k->key), "%s", key);
	k->counter = counter;
	return k;
}

static uint64_t counter_of(const stage_rec *r, const char *key)
{
	for (int i = 0; i < r->nkv; i++)
		if (!strcmp(r->kv[i].key, key))
			return r->kv[i].cur + r->kv[i].base;
	return 0;
}

static double gauge_of(const stage_rec *r, const char *key)
{
	for (int i = 0; i < r->nkv; i++)
		if (!strcmp(r->kv[i].key, key))
			return r->kv[i].value;
	return 0;
}

static stage_rec *stage_by_name(sup *s, const char *name)
{
	for (int i = 0; i < NSTAGES; i++)
		if (!strcmp(s->st[i].name, name))
			return &s->st[i];
	return NULL;
}

/* A new incarnation's report: fold the old one's counters into the base (invariant 2). */
static void fold_incarnation(stage_rec *r)
{
	for (int i = 0; i < r->nkv; i++) {
		if (r->kv[i].counter) {
			r->kv[i].base += r->kv[i].cur;
			r->kv[i].cur = 0;
		} else {
			r->kv[i].value = 0;
		}
	}
}

static void handle_report(sup *s, char *msg)
{
	char *save = NULL, *line;
	stage_rec *r = NULL;
	uint64_t now = op_now_ns();

	for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[KEY_LEN];
		unsigned long long u;
		double d;
		if (sscanf(line, "stage %47s", key) == 1) {
			r = stage_by_name(s, key);
			if (!r)
				return;
		} else if (!r) {
			return;
		} else if (sscanf(line, "incarnation %llu", &u) == 1) {
			if (r->reported && u != r->incarnation)
				fold_incarnation(r);
			r->incarnation = u;
		} else if (sscanf(line, "progress %llu", &u) == 1) {
			if (!r->reported || u != r->progress)
				r->progress_changed_ns = now;
			r->progress = u;
		} else if (sscanf(line, "idle %llu", &u) == 1) {
			r->idle = (int)u;
		} else if (sscanf(line, "c %47s %llu", key, &u) == 2) {
			kv *k = kv_get(r, key, 1);
			if (k)
				k->cur = u;
		} else if (sscanf(line, "g %47s %lf", key, &d) == 2) {
			kv *k = kv_get(r, key, 0);
			if (k)
				k->value = d;
		}
	}
	if (r) {
		r->blocked = gauge_of(r, "blocked_downstream") > 0;
		r->last_report_ns = now;
		r->reported = 1;
	}
}

static int spawn(sup *s, stage_rec *r)
{
	pid_t pid = fork();

	if (pid < 0) {
		op_err("cannot fork stage %s: %s", r->name, strerror(errno));
		return -errno;
	}
	if (pid == 0) {
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a stage never outlives its supervisor */
		char *argv[] = {"outpostd", "--stage", (char *)r->name, "-c", s->effective_path, NULL};
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	r->pid = pid;
	r->running = 1;
	r->started_ns = r->progress_changed_ns = op_now_ns();
	r->last_report_ns = 0;
	r->restart_at_ns = 0;
	op_restart_started(&r->rs, r->started_ns);
	op_info("started stage %s (pid %d)", r->name, (int)pid);
	if (strcmp(r->name, "infer") == 0 || strcmp(r->name, "store") == 0) {
		if (r->restarts && s->ingest_ctl)
			zmq_send(s->ingest_ctl, "resend", 6, ZMQ_DONTWAIT); /* invariant 3 */
	}
	return 0;
}

static void on_exit_of(sup *s, stage_rec *r, int status)
{
	uint64_t now = op_now_ns(), delay = 0;
	char how[64];

	r->running = 0;
	r->pid = 0;
	r->last_exit_status = status;
	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	if (s->stopping) {
		op_info("stage %s %s", r->name, how);
		return;
	}
	if (!strcmp(r->name, "ingest")) {
		uint64_t lost = (uint64_t)gauge_of(r, "in_flight");
		if (lost) {
			op_err("ingest died holding %" PRIu64 " events not yet durable (reason=ingest_crash)", lost);
			s->dropped_ingest_crash += lost;
		}
	}
	int v = op_restart_failed(&r->rs, &s->policy, now, &delay);
	r->restarts++;
	if (v == OP_RESTART_ESCALATE && !r->escalated) {
		op_log(2, "stage %s is failing repeatedly (more than %u failures in %llu s): restart storm; "
			  "retrying every %llu s",
		       r->name, s->policy.burst, (unsigned long long)(s->policy.interval_ns / 1000000000ull),
		       (unsigned long long)(s->policy.backoff_max_ns / 1000000000ull));
		op_notify_status("DEGRADED: restart storm");
	}
	r->escalated = v == OP_RESTART_ESCALATE;
	op_err("stage %s %s; restarting in %.1f s", r->name, how, (double)delay / 1e9);
	r->restart_at_ns = now + delay;
}

static void reap(sup *s)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < NSTAGES; i++)
			if (s->st[i].running && s->st[i].pid == pid)
				on_exit_of(s, &s->st[i], status);
	}
}

/* Invariant 4 and the stuck-stage check. Returns 1 when every stage is healthy. */
static int check_stages(sup *s, uint64_t now)
{
	int healthy = 1;
	uint64_t deadline = s->cfg->watchdog_stage_deadline_ns;

	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *r = &s->st[i];
		if (!r->running) {
			healthy = 0;
			if (r->restart_at_ns && now >= r->restart_at_ns && !s->stopping)
				spawn(s, r);
			continue;
		}
		uint64_t last = r->last_report_ns > r->started_ns ? r->last_report_ns : r->started_ns;
		const char *why = NULL;
		if (now - last > deadline)
			why = "sent no report";
		else if (!r->idle && !r->blocked && now - r->progress_changed_ns > deadline)
			why = "made no progress while busy";
		if (why) {
			op_err("stage %s (pid %d) %s for %.0f s: killing it", r->name, (int)r->pid, why,
			       (double)deadline / 1e9);
			kill(r->pid, SIGKILL);
			healthy = 0;
		}
		if (!r->reported)
			healthy = 0;
	}
	return healthy;
}

static void events_totals(sup *s, uint64_t *accepted, uint64_t *stored, uint64_t *dropped,
			  uint64_t *in_flight, uint64_t *received, uint64_t *rejected)
{
	stage_rec *g = stage_by_name(s, "ingest");
	*accepted = counter_of(g, "accepted");
	*stored = counter_of(g, "stored");
	*received = counter_of(g, "received");
	*in_flight = g->running ? (uint64_t)gauge_of(g, "in_flight") : 0;
	*dropped = s->dropped_ingest_crash;
	*rejected = 0;
	for (int i = 0; i < g->nkv; i++) {
		if (!g->kv[i].counter)
			continue;
		if (!strncmp(g->kv[i].key, "dropped_", 8))
			*dropped += g->kv[i].cur + g->kv[i].base;
		if (!strncmp(g->kv[i].key, "rejected_", 9))
			*rejected += g->kv[i].cur + g->kv[i].base;
	}
}

static const char *state_of(const stage_rec *r)
{
	if (r->running)
		return r->reported ? "running" : "starting";
	return r->restart_at_ns ? (r->escalated ? "failing" : "restarting") : "stopped";
}

/* Appends to a growing buffer; returns 0 or -ENOMEM. */
typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
		char *q = realloc(b->p, cap);
		if (!q)
			return;
		b->p = q;
		b->cap = cap;
	}
}

static void status_json(sup *s, sbuf *b)
{
	uint64_t acc, sto, dro, inf, rec, rej, now = op_now_ns();

	events_totals(s, &acc, &sto, &dro, &inf, &rec, &rej);
	sb_printf(b, "{\"version\":\"%s\",\"site\":\"%s\",\"config_hash\":\"%s\",\"uptime_s\":%.3f,",
		  OUTPOST_VERSION, s->cfg->site_name, s->config_hash, (double)(now - s->start_ns) / 1e9);
	sb_printf(b, "\"events\":{\"received\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"accepted\":%" PRIu64
		     ",\"stored\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"in_flight\":%" PRIu64
		     ",\"dropped_ingest_crash\":%" PRIu64 ",\"balanced\":%s},",
		  rec, rej, acc, sto, dro, inf, s->dropped_ingest_crash,
		  acc == sto + dro + inf ? "true" : "false");
	sb_printf(b, "\"stages\":{");
	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *r = &s->st[i];
		sb_printf(b, "%s\"%s\":{\"state\":\"%s\",\"pid\":%d,\"restarts\":%" PRIu64
			     ",\"escalated\":%s,\"idle\":%s,\"last_report_age_s\":%.3f,\"counters\":{",
			  i ? "," : "", r->name, state_of(r), (int)r->pid, r->restarts,
			  r->escalated ? "true" : "false", r->idle ? "true" : "false",
			  r->last_report_ns ? (double)(now - r->last_report_ns) / 1e9 : -1.0);
		int first = 1;
		for (int k = 0; k < r->nkv; k++) {
			if (!r->kv[k].counter)
				continue;
			sb_printf(b, "%s\"%s\":%" PRIu64, first ? "" : ",", r->kv[k].key, r->kv[k].cur + r->kv[k].base);
			first = 0;
		}
		sb_printf(b, "},\"gauges\":{");
		first = 1;
		for (int k = 0; k < r->nkv; k++) {
			if (r->kv[k].counter)
				continue;
			sb_printf(b, "%s\"%s\":%.6g", first ? "" : ",", r->kv[k].key, r->kv[k].value);
			first = 0;
		}
		sb_printf(b, "}}");
	}
	sb_printf(b, "}}");
}

static void status_text(sup *s, sbuf *b)
{
	uint64_t acc, sto, dro, inf, rec, rej, now = op_now_ns();
	uint64_t up = (now - s->start_ns) / 1000000000ull;

	events_totals(s, &acc, &sto, &dro, &inf, &rec, &rej);
	sb_printf(b, "outpost %s  site %s  up %" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s  config %s\n",
		  OUTPOST_VERSION, s->cfg->site_name, up / 3600, up / 60 % 60, up % 60, s->config_hash);
	sb_printf(b, "events   received %" PRIu64 "  rejected %" PRIu64 "  accepted %" PRIu64
		     "  stored %" PRIu64 "  dropped %" PRIu64 "  in flight %" PRIu64 "%s\n",
		  rec, rej, acc, sto, dro, inf, acc == sto + dro + inf ? "" : "  (UNBALANCED)");
	sb_printf(b, "%-8s %-10s %7s %8s %12s  %s\n", "stage", "state", "pid", "restarts", "progress", "notes");
	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *r = &s->st[i];
		sb_printf(b, "%-8s %-10s %7d %8" PRIu64 " %12" PRIu64 "  %s%s\n", r->name, state_of(r),
			  (int)r->pid, r->restarts, r->progress, r->idle ? "idle" : "busy",
			  r->escalated ? ", RESTART STORM" : "");
	}
	stage_rec *st = stage_by_name(s, "store"), *up_ = stage_by_name(s, "uplink");
	sb_printf(b, "store    %" PRIu64 " rows sealed in %" PRIu64 " segments, %" PRIu64
		     " duplicates ignored\n",
		  counter_of(st, "rows_sealed"), counter_of(st, "segments_sealed"), counter_of(st, "rows_duplicate"));
	sb_printf(b, "uplink   %" PRIu64 " files confirmed north, %" PRIu64 " bytes; %.0f files waiting\n",
		  counter_of(up_, "files_confirmed"), counter_of(up_, "bytes_confirmed"),
		  gauge_of(up_, "files_pending"));
}

static void handle_control(sup *s)
{
	char req[64];
	int n;
	sbuf b = {0};

	while ((n = zmq_recv(s->control, req, sizeof(req) - 1, ZMQ_DONTWAIT)) >= 0) {
		req[n < (int)sizeof(req) - 1 ? n : (int)sizeof(req) - 1] = 0;
		b.len = 0;
		if (!strcmp(req, "status"))
			status_text(s, &b);
		else if (!strcmp(req, "status-json"))
			status_json(s, &b);
		else if (!strcmp(req, "stop")) {
			sb_printf(&b, "stopping\n");
			s->stopping = 1;
		} else if (!strcmp(req, "ping"))
			sb_printf(&b, "pong\n");
		else
			sb_printf(&b, "error: unknown request '%s'\n", req);
		zmq_send(s->control, b.p ? b.p : "", b.len, 0);
	}
	free(b.p);
}

static void drain_reports(sup *s)
{
	zmq_msg_t m;
	for (;;) {
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s->stats, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		size_t n = zmq_msg_size(&m);
		char *text = malloc(n + 1);
		if (text) {
			memcpy(text, zmq_msg_data(&m), n);
			text[n] = 0;
			handle_report(s, text);
			free(text);
		}
		zmq_msg_close(&m);
	}
}

static int write_effective(sup *s)
{
	char tmp[OP_CFG_STR + 40];
	FILE *f;

	snprintf(s->effective_path, sizeof(s->effective_path), "%s/effective.yaml", s->cfg->run_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->effective_path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "# written by outpostd at start: the configuration every stage runs\n");
	op_config_print(s->cfg, f);
	if (fclose(f) != 0)
		return -EIO;
	if (rename(tmp, s->effective_path) != 0)
		return -errno;
	return 0;
}

static int mkdir_p(const char *path)
{
	char buf[OP_CFG_STR];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	}
	if (mkdir(buf, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Orderly stop without losing what is in flight: ingest stops taking events and waits for the
 * store to seal what it holds (nudged by SIGUSR1); then the other stages stop. */
static void shutdown_stages(sup *s)
{
	stage_rec *ing = stage_by_name(s, "ingest"), *sto = stage_by_name(s, "store");
	uint64_t t0 = op_now_ns(), last_nudge = 0;

	op_notify_stopping();
	op_info("stopping: draining ingest");
	if (ing->running)
		kill(ing->pid, SIGTERM);
	while (ing->running && op_now_ns() - t0 < 20000000000ull) {
		if (sto->running && op_now_ns() - last_nudge > 500000000ull) {
			kill(sto->pid, SIGUSR1);
			last_nudge = op_now_ns();
		}
		drain_reports(s);
		usleep(20000);
		reap(s);
	}
	for (int i = 0; i < NSTAGES; i++)
		if (s->st[i].running)
			kill(s->st[i].pid, SIGTERM);
	t0 = op_now_ns();
	for (;;) {
		int any = 0;
		drain_reports(s);
		reap(s);
		for (int i = 0; i < NSTAGES; i++)
			any |= s->st[i].running;
		if (!any)
			break;
		if (op_now_ns() - t0 > 10000000000ull) {
			for (int i = 0; i < NSTAGES; i++)
				if (s->st[i].running) {
					op_err("stage %s did not stop in 10 s: killing it", s->st[i].name);
					kill(s->st[i].pid, SIGKILL);
				}
		}
		usleep(20000);
	}
}

int op_supervisor_run(const op_config *cfg, const char *config_path)
{
	sup s;
	char ep[OP_CFG_STR + 32];
	sigset_t mask;
	int rc = 1, linger = 0;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.sfd = -1;
	s.start_ns = op_now_ns();
	op_config_hash(cfg, s.config_hash);
	s.policy = (op_restart_policy){.burst = cfg->restart_burst,
				       .interval_ns = cfg->restart_interval_ns,
				       .backoff_ns = cfg->restart_backoff_ns,
				       .backoff_max_ns = 60000000000ull,
				       .stable_ns = 60000000000ull};
	if (s.policy.backoff_max_ns < s.policy.backoff_ns)
		s.policy.backoff_max_ns = s.policy.backoff_ns;
	for (int i = 0; i < NSTAGES; i++) {
		s.st[i].name = stage_names[i];
		op_restart_init(&s.st[i].rs, &s.policy);
	}

	if (mkdir_p(cfg->run_dir) < 0 || mkdir_p(cfg->state_dir) < 0) {
		op_err("cannot create %s or %s: %s", cfg->run_dir, cfg->state_dir, strerror(errno));
		return 1;
	}
	if (write_effective(&s) < 0) {
		op_err("cannot write %s: %s", s.effective_path, strerror(errno));
		return 1;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

	s.zctx = zmq_ctx_new();
	s.stats = zmq_socket(s.zctx, ZMQ_PULL);
	s.control = zmq_socket(s.zctx, ZMQ_REP);
	s.ingest_ctl = zmq_socket(s.zctx, ZMQ_PUSH);
	zmq_setsockopt(s.stats, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(s.control, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(s.ingest_ctl, ZMQ_LINGER, &linger, sizeof(linger));
	op_stage_endpoint(ep, sizeof(ep), cfg, "stats.sock");
	if (zmq_bind(s.stats, ep) != 0)
		goto zfail;
	op_stage_endpoint(ep, sizeof(ep), cfg, "control.sock");
	if (zmq_bind(s.control, ep) != 0)
		goto zfail;
	op_stage_endpoint(ep, sizeof(ep), cfg, "ingest-ctl.sock");
	if (zmq_connect(s.ingest_ctl, ep) != 0)
		goto zfail;

	op_info("outpost %s starting: site %s, config %s (%s), state in %s", OUTPOST_VERSION,
		cfg->site_name, config_path ? config_path : "embedded defaults", s.config_hash, cfg->state_dir);
	s.ping_interval_ns = op_notify_watchdog_interval_ns() / 2;
	for (int i = 0; i < NSTAGES; i++)
		spawn(&s, &s.st[i]);

	while (!s.stopping) {
		zmq_pollitem_t items[3] = {
			{.socket = s.stats, .events = ZMQ_POLLIN},
			{.socket = s.control, .events = ZMQ_POLLIN},
			{.fd = s.sfd, .events = ZMQ_POLLIN},
		};
		if (zmq_poll(items, 3, 100) < 0 && errno != EINTR)
			goto zfail;
		struct signalfd_siginfo si;
		while (read(s.sfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
				s.stopping = 1;
			else if (si.ssi_signo == SIGHUP)
				op_warn("SIGHUP: configuration reload is not supported yet; restart the service");
		}
		reap(&s);
		drain_reports(&s);
		handle_control(&s);

		uint64_t now = op_now_ns();
		int healthy = check_stages(&s, now);
		if (healthy && !s.ready_sent) {
			op_notify_ready("running");
			op_info("all stages up and reporting");
			s.ready_sent = 1;
		}
		if (healthy && s.ping_interval_ns && now - s.last_ping_ns >= s.ping_interval_ns) {
			op_notify_watchdog();
			s.last_ping_ns = now;
		}
	}
	shutdown_stages(&s);
	rc = 0;
	op_info("stopped");
	goto out;
zfail:
	op_err("supervisor socket error on %s: %s", ep, zmq_strerror(errno));
	for (int i = 0; i < NSTAGES; i++)
		if (s.st[i].running)
			kill(s.st[i].pid, SIGTERM);
out:
	if (s.stats)
		zmq_close(s.stats);
	if (s.control)
		zmq_close(s.control);
	if (s.ingest_ctl)
		zmq_close(s.ingest_ctl);
	if (s.zctx)
		zmq_ctx_term(s.zctx);
	if (s.sfd >= 0)
		close(s.sfd);
	return rc;
}
