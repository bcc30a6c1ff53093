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
 * The escalation ladder (docs/reliability.md), each rung taken only when the one below failed:
 *   1. a stage that crashes, stops reporting, or is busy without progress for stage_deadline is
 *      killed and restarted together with every stage downstream of it (OTP's rest_for_one:
 *      ingest → infer → store → uplink), after a backoff;
 *   2. a stage failing more than restart_burst times in restart_interval spends the restart
 *      budget: the supervisor says why in STATUS=, drains and stops the stages, sends
 *      WATCHDOG=trigger and exits with status 3, and systemd restarts the whole process;
 *   3. too many process failures in a row hit the unit's start limit (StartLimitAction=reboot);
 *   4. a persistent count of starts that neither became stable nor ended in a requested stop
 *      (state_dir/start-count) puts the
 *      next start into safe mode: the network is off, LineFit reconstructs every event, each
 *      row says so (flag safe_mode, visible north), and after safe_mode_retry of health the
 *      network is tried again.
 *
 * Invariants:
 *  1. The supervisor never blocks on a stage: reports arrive on a PULL socket and are read
 *     without waiting; signals arrive through a signalfd polled in the same loop.
 *  2. Counters shown to operators never go backwards: when a stage restarts, the counters of
 *     its previous incarnation are folded into a base that is added to the new ones.
 *  3. When infer or store restarts, ingest is told to resend what it holds (at-least-once);
 *     when ingest dies, the events it held are counted as dropped (reason=ingest_crash).
 *  4. systemd's watchdog is pinged only while every stage is running and reports within its
 *     deadline (ARCHITECTURE.md invariant 5). READY=1 is sent only after the start-up probe
 *     (stage.h) went ingest → infer → store and back; while the infer stage loads its model,
 *     EXTEND_TIMEOUT_USEC keeps systemd's start timeout from running out.
 *  5. A stage killed because an upstream stage failed (rest_for_one) or restarted on purpose
 *     is not charged to its own restart budget.
 */
#include "appliance/supervisor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/log.h"
#include "appliance/outbox.h"
#include "appliance/powerctl.h"
#include "appliance/stage.h"
#include "uplink/escape.h"
#include "uplink/segment.h"
#include "watchdog/bootcount.h"
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
	uint64_t restarts, spawns, collateral_restarts, planned_restarts;
	int rank;       /* position in the pipeline: ingest 0, infer 1, store 2, uplink 3 */
	int collateral; /* being stopped because of another stage, or on purpose: not a failure */
	int safe_storm_alerted; /* in safe mode, north was told this stage keeps failing */
	uint64_t day_start_ns;  /* failures in the 24 h from day_start_ns (restart_alert_daily) */
	uint32_t day_failures;
	int day_alerted;
	int kill_sent;  /* SIGKILLed for a missed deadline, not yet reaped */
	int reported_since_spawn; /* this process reported: its gauges are its own */
	int escalated;
	/* last report */
	int reported;
	uint64_t incarnation, progress, last_report_ns, progress_changed_ns;
	uint64_t failed_ns; /* when its last failure was noticed (reaped), 0: never */
	int idle, blocked;
	kv kv[MAX_KV];
	int nkv;
	char model[64], backend[64]; /* infer: "t model …", "t backend …" report lines */
	char refusal[240];           /* uplink: "t refusal …", north's last reason for refusing a file */
	char file_refusal[240];      /* uplink: "t file_refusal …", the last about a file alone */
	uint64_t report_seq;         /* ingest: "rseq N", the number of its last report */
	int last_exit_status;
} stage_rec;

typedef struct sup {
	const op_config *cfg; /* = &cfg_now */
	op_config cfg_now;    /* the configuration running now (replaced by a reload) */
	const char *config_path;
	int config_fallback; /* config_path is broken (> 0) or unreadable (-errno); running on config-last-good.yaml */
	char effective_path[OP_CFG_STR + 32];
	void *zctx, *stats, *control, *ingest_ctl;
	int sfd;
	stage_rec st[NSTAGES];
	op_restart_policy policy;
	uint64_t start_ns, last_ping_ns, ping_interval_ns, watchdog_ns;
	uint64_t dropped_ingest_crash;
	uint64_t dropped_log_lost; /* kept in ingest's log at the last stop, not taken back (kept_settle) */
	uint64_t kept;             /* ingest-kept: to write at this stop, or read at this start */
	int kept_file;             /* read at this start: settled at the first ingest report */
	/* what a dead ingest held by its last report, until its successor says whether its log
	 * let it take them over (then they are in its in_flight) or not (then: ingest_crash) */
	uint64_t ingest_unsettled, unsettled_incarnation;
	int ingest_spawned; /* an ingest was started in this run (fill_marks) */
	int have_leftover;  /* an earlier outpostd's ingest left its log: leftover_inc */
	unsigned long long leftover_inc;
	int ready_sent, stopping;
	char config_hash[17];
	/* escalation */
	int budget_spent;
	char budget_reason[256];
	uint64_t last_failure_ns, healthy_since_ns;
	/* persistent start counter and safe mode */
	char count_path[OP_CFG_STR + 32];
	uint32_t start_count;
	int safe_mode;
	uint64_t safe_mode_entered_ns;
	char model_error[512]; /* infer.model cannot be used: safe mode for this whole run */
	/* systemd protocol */
	uint64_t last_probe_ns, last_extend_ns, last_status_ns;
	/* ingest's per-stream sequence marks from its last report, handed to its next incarnation:
	 * the "m" lines as ingest wrote them (stage_ingest.c reads them back; they are not parsed
	 * here), one a line */
	char *marks;
	size_t marks_len;
	uint64_t last_textfile_ns;
	int textfile_failed;
	/* reloads */
	uint64_t reloads_applied, reloads_failed, reloads_refused;
	/* rates: (time, accepted, stored) once a second, the last 11 */
	struct rate_sample {
		uint64_t t, accepted, stored;
	} rate[11];
	unsigned rate_n, rate_head;
	char reload_last[640];
	op_powerctl *power; /* the power governor (powerctl.h) */
	uint64_t last_telemetry_ns;
} sup;

/* Start order: downstream first, so every connect finds its peer bound soon after. */
static const char *const stage_names[NSTAGES] = {"store", "infer", "ingest", "uplink"};

struct sup;
static void rates(const struct sup *s, double *acc_rate, double *sto_rate);

/* Pipeline order, for rest_for_one: a failure restarts the stages after it. */
static int rank_of(const char *name)
{
	static const char *const order[NSTAGES] = {"ingest", "infer", "store", "uplink"};
	for (int i = 0; i < NSTAGES; i++)
		if (!strcmp(order[i], name))
			return i;
	return NSTAGES;
}

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

/* A counter of the stage's current incarnation alone. */
static uint64_t cur_of(const stage_rec *r, const char *key)
{
	for (int i = 0; i < r->nkv; i++)
		if (!strcmp(r->kv[i].key, key))
			return r->kv[i].cur;
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

static void kept_settle(sup *s, const stage_rec *r);

/*
 * A report from a process other than the stage's running one (its pid line) is stale: the last
 * report of a predecessor, read after its successor was forked (a planned restart forks at
 * once). Its counters, marks and number still count while its incarnation is the one on record
 * (the successor has not reported: they are the predecessor's last figures, folded when the
 * successor reports);
 * after that it is dropped whole. It never stands for the running process: not its liveness,
 * progress, gauges or texts. Before, such a report made a just-forked process look as if it had
 * reported (skipping the first report's grace and "healthy only once it reports"), gave it its
 * predecessor's gauges, and, arriving after the successor's first report, folded counters twice
 * into the totals for good.
 */
static void handle_report(sup *s, char *msg)
{
	char *save = NULL, *line;
	stage_rec *r = NULL;
	uint64_t now = op_now_ns();
	int stale = 0, marks_reset = 0;

	for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[KEY_LEN];
		unsigned long long u;
		long pid;
		double d;
		if (sscanf(line, "stage %47s", key) == 1) {
			r = stage_by_name(s, key);
			if (!r)
				return;
			marks_reset = !strcmp(r->name, "ingest"); /* every ingest report carries all its marks */
		} else if (!r) {
			return;
		} else if (sscanf(line, "pid %ld", &pid) == 1) {
			stale = r->running && pid != (long)r->pid; /* (one that ended, not yet followed: its own) */
		} else if (stale && sscanf(line, "incarnation %llu", &u) == 1) {
			if (!r->reported || u != r->incarnation)
				return; /* its successor has reported: too late even for its counters */
		} else if (stale && !(line[0] == 'c' && line[1] == ' ') && !(line[0] == 'm' && line[1] == ' ') &&
			   strncmp(line, "rseq ", 5)) {
			continue; /* of the running process only (the report's number goes with its counts) */
		} else if (sscanf(line, "rseq %llu", &u) == 1) {
			r->report_seq = u;
		} else if (!strncmp(line, "t model ", 8)) {
			snprintf(r->model, sizeof(r->model), "%s", line + 8);
		} else if (!strncmp(line, "t file_refusal ", 15)) {
			snprintf(r->file_refusal, sizeof(r->file_refusal), "%s", line + 15);
		} else if (!strncmp(line, "t refusal ", 10)) {
			snprintf(r->refusal, sizeof(r->refusal), "%s", line + 10);
		} else if (!strncmp(line, "t backend ", 10)) {
			snprintf(r->backend, sizeof(r->backend), "%s", line + 10);
		} else if (line[0] == 'm' && line[1] == ' ') {
			size_t l = strlen(line + 2);
			if (marks_reset)
				s->marks_len = 0, marks_reset = 0;
			if (s->marks && s->marks_len + l + 1 <= OP_REPORT_CAP) {
				memcpy(s->marks + s->marks_len, line + 2, l);
				s->marks_len += l;
				s->marks[s->marks_len++] = '\n';
			}
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
	if (marks_reset) /* an ingest report without marks: it tracks no stream */
		s->marks_len = 0;
	if (r && stale)
		return;
	if (r && s->ingest_unsettled && !strcmp(r->name, "ingest") && r->incarnation != s->unsettled_incarnation) {
		if (gauge_of(r, "wal_verdict") > 0) {
			op_info("ingest took over the %" PRIu64 " events its predecessor held", s->ingest_unsettled);
		} else {
			/* No verdict on its log. What the successor still found in it, it resent (the
			 * store deduplicates) or counted itself (dropped_not_recovered): those are not
			 * lost too. Without this, a log missing its last checkpoint had its events both
			 * stored and counted as dropped. */
			const uint64_t found = cur_of(r, "recovered") + cur_of(r, "dropped_not_recovered");
			const uint64_t lost = s->ingest_unsettled > found ? s->ingest_unsettled - found : 0;
			if (found > s->ingest_unsettled) /* accepted after its last report, or freed in a part of
							   * the log a damaged record hid: not counted exactly */
				op_warn("ingest took %" PRIu64 " events back from its predecessor's log, %" PRIu64
					" more than it held at its last report: the log lacks its checkpoint, and the "
					"accounting may not balance by up to that many",
					found, found - s->ingest_unsettled);
			if (lost)
				op_err("%" PRIu64 " events held by the dead ingest are lost (reason=ingest_crash)", lost);
			s->dropped_ingest_crash += lost;
		}
		s->ingest_unsettled = 0;
	}
	if (r && s->kept_file && !strcmp(r->name, "ingest"))
		kept_settle(s, r);
	if (r) {
		r->blocked = gauge_of(r, "blocked_downstream") > 0;
		r->last_report_ns = now;
		r->reported = 1;
		r->reported_since_spawn = 1;
	}
	/* From here on a successor is told of this ingest (fill_marks), not its predecessor: it
	 * may read events now (stage_ingest.c, INGEST_CONFIRM_WAIT_NS). Answered to every report
	 * that still waits for it, so that a word lost in the socket costs one report interval. */
	if (r && s->ingest_ctl && !strcmp(r->name, "ingest") && gauge_of(r, "supervisor_confirmed") == 0) {
		char word[48];
		int l = snprintf(word, sizeof(word), "reported %llu", (unsigned long long)r->incarnation);
		zmq_send(s->ingest_ctl, word, (size_t)l, ZMQ_DONTWAIT);
	}
}

/* A stage is loading (its last report since its start said so, and it is silent until done):
 * keep systemd's start timeout from running out meanwhile, every second, for as long as the
 * supervisor lets it load (LOADING_DEADLINE_NS, check_stages). */
static void extend_while_loading(sup *s, uint64_t now)
{
	if (s->ready_sent || now - s->last_extend_ns < 1000000000ull)
		return;
	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *r = &s->st[i];
		if (r->running && r->reported_since_spawn && gauge_of(r, "loading") > 0) {
			op_notify_extend_timeout(s->cfg->watchdog_stage_deadline_ns + 10000000000ull);
			s->last_extend_ns = now;
			return;
		}
	}
}

/*
 * Replace path whole: write path.tmp (created with mode, whatever the umask), fill it, fsync it
 * when durable (files in the state directory), rename it over path. Readers see the old file or
 * the new one, never half of one. 0 or -errno.
 */
static int replace_file(sup *s, const char *path, mode_t mode, int durable, void (*fill)(sup *, FILE *))
{
	char tmp[OP_CFG_STR + 48];
	int rc = 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	fchmod(fd, mode);
	FILE *f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		unlink(tmp);
		return rc;
	}
	fill(s, f);
	if (fflush(f) != 0 || ferror(f) || (durable && fsync(fileno(f)) != 0))
		rc = errno ? -errno : -EIO;
	if (fclose(f) != 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) != 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

/*
 * The log an ingest of an earlier outpostd left in the run directory (this supervisor died, or
 * systemd's watchdog ended it, while ingest held events not yet durable: ingest keeps its log
 * then, stage_ingest.c), its incarnation in *inc: 1 when there is one. The newest, which holds
 * what any older one it took over held. (By number: incarnations are the start's wall-clock
 * time, so a clock stepped back between two ingests of that run could pick the older log.)
 */
static int leftover_ingest_log(const sup *s, unsigned long long *inc)
{
	char dir[OP_CFG_STR + 32];
	snprintf(dir, sizeof(dir), "%s/ingest-wal", s->cfg->run_dir);
	DIR *d = opendir(dir);
	struct dirent *de;
	int found = 0;
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		unsigned long long i;
		unsigned k;
		char tail[8];
		if (sscanf(de->d_name, "wal-%20llu-%10u%7s", &i, &k, tail) == 3 && !strcmp(tail, ".log") &&
		    (!found || i > *inc))
			*inc = i, found = 1;
	}
	closedir(d);
	return found;
}

/* the state directory's entries durable (ingest-kept written or removed) */
static void sync_state_dir(const sup *s)
{
	(void)op_segment_sync_dir(s->cfg->state_dir);
}

/*
 * state_dir/ingest-kept: the events a stop for a spent restart budget left in ingest's log
 * (shutdown_stages). The run directory holding the log outlives systemd's restart, not a reboot
 * or the unit's start limit. The next start reads the count before its first ingest, and at
 * that ingest's first report (the log taken over by then, or none found) counts what it did not
 * take back as dropped (reason=log_lost), and accepted (this run's books balance), instead of
 * losing them unseen; then the file goes. An upper bound: the store may have sealed some of
 * them after ingest left (then they are north as well).
 */
static void fill_kept(sup *s, FILE *f)
{
	fprintf(f, "%" PRIu64 "\n", s->kept);
}

static void kept_write(sup *s, uint64_t kept)
{
	char path[OP_CFG_STR + 32];
	snprintf(path, sizeof(path), "%s/ingest-kept", s->cfg->state_dir);
	s->kept = kept;
	int rc = replace_file(s, path, 0640, 1, fill_kept);
	sync_state_dir(s);
	if (rc < 0)
		op_err("cannot write %s: %s (were the log lost, its events would not be counted)", path, strerror(-rc));
}

static void kept_read(sup *s)
{
	char path[OP_CFG_STR + 32];
	unsigned long long kept = 0;
	snprintf(path, sizeof(path), "%s/ingest-kept", s->cfg->state_dir);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	if (fscanf(f, "%llu", &kept) != 1)
		kept = 0;
	fclose(f);
	s->kept = kept;
	s->kept_file = 1;
}

/* At the first report of this run's ingest: r. */
static void kept_settle(sup *s, const stage_rec *r)
{
	char path[OP_CFG_STR + 32];
	const uint64_t found = cur_of(r, "recovered") + cur_of(r, "dropped_not_recovered");
	if (s->kept > found) {
		op_err("%" PRIu64 " of the %" PRIu64 " events the last run left in ingest's log are lost: %s "
		       "(reason=log_lost)", s->kept - found, s->kept,
		       found ? "the log gave back fewer" : "the run directory did not survive (a reboot, or systemd's "
							   "start limit)");
		s->dropped_log_lost += s->kept - found;
	}
	snprintf(path, sizeof(path), "%s/ingest-kept", s->cfg->state_dir);
	unlink(path);
	sync_state_dir(s); /* not back after a power cut, to be counted again */
	s->kept_file = 0;
	s->kept = 0;
}

static void fill_marks(sup *s, FILE *f)
{
	stage_rec *g = stage_by_name(s, "ingest");
	unsigned long long inc;
	if (g->reported) { /* the ingest before this one, and the last report of it we have */
		fprintf(f, "pred %llu %llu\n", (unsigned long long)g->incarnation, (unsigned long long)g->report_seq);
	} else {
		/* Looked for once, before the first ingest, and named until an ingest of this run has
		 * reported: a first ingest that dies before its first report (a large log to replay) or
		 * cannot be forked must not leave the next one without it. Report 0: a log of an
		 * earlier run, whose events this run counts as it takes them back. */
		const int found = !s->ingest_spawned && leftover_ingest_log(s, &inc);
		if (!s->ingest_spawned)
			kept_read(s);
		if (found) {
			op_warn("the ingest of an earlier outpostd left its log (incarnation %llu): the first ingest "
				"takes it over (events it held are sent on again; what the store had sealed is "
				"recognised)", inc);
			s->leftover_inc = inc;
			s->have_leftover = 1;
		}
		if (s->have_leftover)
			fprintf(f, "pred %llu 0\n", s->leftover_inc);
	}
	if (s->marks_len)
		fwrite(s->marks, 1, s->marks_len, f);
}

/* Before ingest starts: the marks of its predecessor's last report (stage_ingest.c). */
static void write_marks(sup *s)
{
	char path[OP_CFG_STR + 32];
	snprintf(path, sizeof(path), "%s/ingest-marks", s->cfg->run_dir);
	int rc = replace_file(s, path, 0600, 0, fill_marks);
	if (rc < 0) { /* and no older file in its place, which could name another predecessor */
		op_err("cannot write %s: %s (the next ingest cannot take over from the last one)", path, strerror(-rc));
		unlink(path);
	}
}

static int spawn(sup *s, stage_rec *r)
{
	if (!strcmp(r->name, "ingest")) {
		write_marks(s); /* before the first start: empty, or an earlier outpostd's ingest log */
		s->ingest_spawned = 1;
	}
	const pid_t me = getpid();
	pid_t pid = fork();

	if (pid < 0) {
		int e = errno;
		op_err("cannot fork stage %s: %s; trying again in 1 s", r->name, strerror(e));
		r->restart_at_ns = op_now_ns() + 1000000000ull; /* not never: the first spawn too */
		return -e;
	}
	if (pid == 0) {
		sigset_t all;
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a stage never outlives its supervisor */
		if (getppid() != me) /* it died before that took effect */
			_exit(1);
		char *argv[] = {"outpostd", "--stage", (char *)r->name, "-c", s->effective_path, NULL, NULL};
		if (s->safe_mode && !strcmp(r->name, "infer"))
			argv[5] = "--safe-mode";
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	r->pid = pid;
	r->running = 1;
	r->started_ns = r->progress_changed_ns = op_now_ns();
	r->last_report_ns = 0;
	r->restart_at_ns = 0;
	r->kill_sent = 0;
	r->reported_since_spawn = 0;
	r->spawns++;
	op_restart_started(&r->rs, r->started_ns);
	op_info("started stage %s (pid %d)%s", r->name, (int)pid,
		s->safe_mode && !strcmp(r->name, "infer") ? " in safe mode" : "");
	if (strcmp(r->name, "infer") == 0 || strcmp(r->name, "store") == 0) {
		if (r->spawns > 1 && s->ingest_ctl)
			zmq_send(s->ingest_ctl, "resend", 6, ZMQ_DONTWAIT); /* invariant 3 */
	}
	return 0;
}

/*
 * One outpostd per state_dir and per run_dir. A second one, started by hand beside a running
 * appliance, would rewrite run_dir/effective.yaml, count a start in state_dir/start-count and
 * bind the ipc sockets over the running ones (ZeroMQ removes a socket file it binds over): it
 * would take the control socket and the stages' reports from the first, while both wrote the
 * same segments. So the supervisor locks <dir>/outpostd.lock (flock) in both directories before
 * it writes anything, and writes its pid there. The descriptor is inherited by the stages
 * (no O_CLOEXEC), so the lock outlives a supervisor that died while its stages still finish
 * their work: the next outpostd does not start beside them.
 *
 * Run by hand, a held lock is an error at once, and the files are left as they were. Under
 * systemd (NOTIFY_SOCKET) the new one waits rather than exit: exiting would be restarted every
 * RestartSec, and five starts in ten minutes reboot the machine. How long depends on who holds
 * the lock:
 *  - a running outpostd supervisor (one started by hand): as long as it runs — it can be seen
 *    and stopped;
 *  - only stages whose supervisor is gone: while they finish, up to LOCK_ORPHAN_WAIT_NS, then
 *    exit 1. A stage that does not end even then is stuck (in the kernel, on a hung device):
 *    systemd's escalation, up to the reboot, is then the cure, and waiting would block it.
 * Which of the two it is comes from a second lock, <dir>/outpostd.sup.lock, that only a
 * supervisor holds (O_CLOEXEC: its stages do not inherit it): held, a supervisor runs. Not
 * from pids: the pid written in the lock file can be stale and reused, and the unit's
 * ProtectProc=invisible hides other users' processes (a copy run by root) from the service.
 * While waiting it says so in STATUS= and the journal, and extends its start timeout; the
 * holders' pids (as far as /proc shows them) are for the messages only.
 *
 * A lock file this user cannot write (created by root with a hand-run `sudo outpostd`) is
 * locked read-only: flock needs no write access; files it creates are made readable to all.
 * One that cannot be opened at all (a read-only state_dir) costs the lock in that directory,
 * not the appliance: a warning, and outpostd goes on.
 */
#define LOCK_ORPHAN_WAIT_NS 120000000000ull
enum { LOCK_HELD = -1, LOCK_UNAVAILABLE = -2 }; /* or a descriptor: taken */

/* The lock file at path, read-write (created 0644 if missing) or, where this user may not
 * write it (one left by root), read-only: flock needs no write access. -1 with errno. */
static int open_lockfile(const char *path, int flags, int *writable)
{
	*writable = 1;
	int fd = open(path, O_RDWR | O_CREAT | O_NOCTTY | flags, 0644);
	if (fd < 0 && (errno == EACCES || errno == EPERM || errno == EROFS)) {
		*writable = 0;
		fd = open(path, O_RDONLY | O_NOCTTY | flags);
	}
	if (fd >= 0 && *writable)
		(void)!fchmod(fd, 0644); /* a later start as another user must be able to open it */
	return fd;
}

/* Does a running outpostd supervisor hold dir's locks (its outpostd.sup.lock held)? */
static int supervisor_holds(const char *dir)
{
	char path[OP_CFG_STR + 32];
	snprintf(path, sizeof(path), "%s/outpostd.sup.lock", dir);
	int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* none was ever taken here */
	int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
	close(fd); /* (and a shared lock with it) */
	return held;
}

/* Who has the lock file `fd` open, other than this process, as far as /proc shows (another
 * user's descriptors are not readable; ProtectProc=invisible hides their processes): pids
 * into `list`, stages marked, for messages. */
static void lock_holders(int fd, char *list, size_t cap)
{
	struct stat lk;
	DIR *proc = fstat(fd, &lk) == 0 ? opendir("/proc") : NULL;
	int n = 0;
	size_t m = 0;
	list[0] = 0;
	if (!proc)
		return;
	const pid_t me = getpid();
	struct dirent *de;
	while ((de = readdir(proc))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0 || pid == me)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
		DIR *fds = opendir(path);
		if (!fds)
			continue;
		int holds = 0;
		struct dirent *fe;
		while (!holds && (fe = readdir(fds))) {
			char link[300];
			struct stat st;
			if (fe->d_name[0] == '.')
				continue;
			snprintf(link, sizeof(link), "/proc/%ld/fd/%s", pid, fe->d_name);
			holds = stat(link, &st) == 0 && st.st_dev == lk.st_dev && st.st_ino == lk.st_ino;
		}
		closedir(fds);
		if (!holds || n++ >= 8 || m >= cap)
			continue;
		/* a stage is `outpostd --stage NAME …` (argv, NUL-separated) */
		char cmd[256];
		int stage = 0, cfd;
		snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
		if ((cfd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			ssize_t len = read(cfd, cmd, sizeof(cmd));
			close(cfd);
			for (ssize_t k = 0; k + 7 < len; k++)
				stage |= !memcmp(cmd + k, "\0--stage", 8);
		}
		m += (size_t)snprintf(list + m, cap - m, "%s%ld%s", n > 1 ? ", " : "", pid, stage ? " (stage)" : "");
	}
	closedir(proc);
}

static int instance_lock(const char *dir)
{
	char path[OP_CFG_STR + 32];
	snprintf(path, sizeof(path), "%s/outpostd.lock", dir);
	const uint64_t t0 = op_now_ns();
	uint64_t said_ns = 0, orphans_since = 0;
	for (;;) {
		int writable;
		int fd = open_lockfile(path, 0, &writable); /* no O_CLOEXEC: the stages hold it too */
		if (fd < 0) {
			op_warn("cannot open %s (%s): going on without the lock that keeps a second outpostd from "
				"starting on this directory",
				path, strerror(errno));
			return LOCK_UNAVAILABLE;
		}
		int rc;
		while ((rc = flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR)
			;
		if (rc == 0) {
			/* the file locked must still be the one at the path (not one removed meanwhile,
			 * beside which another outpostd could lock a new one) */
			struct stat a, b;
			if (fstat(fd, &a) != 0 || stat(path, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
				close(fd);
				continue;
			}
			if (writable) { /* for the messages: one write of a fixed length */
				char pid[12];
				snprintf(pid, sizeof(pid), "%10d\n", (int)getpid());
				if (pwrite(fd, pid, 11, 0) != 11)
					op_warn("cannot write the pid into %s: %s", path, strerror(errno));
			}
			/* the supervisor's own lock: free, since whoever held it held this one too; a
			 * blocking request, for a waiter's probe holds it shared for an instant */
			char sup_path[OP_CFG_STR + 32];
			int sw, sfd;
			snprintf(sup_path, sizeof(sup_path), "%s/outpostd.sup.lock", dir);
			if ((sfd = open_lockfile(sup_path, O_CLOEXEC, &sw)) < 0 || flock(sfd, LOCK_EX) != 0)
				op_warn("cannot lock %s (%s): a waiting outpostd will take this one for stages left "
					"behind",
					sup_path, strerror(errno));
			if (said_ns)
				op_info("%s released after %.0f s: starting", path, (double)(op_now_ns() - t0) / 1e9);
			return fd;
		}
		if (errno != EWOULDBLOCK) {
			op_warn("cannot lock %s (%s): going on without the lock that keeps a second outpostd from "
				"starting on this directory",
				path, strerror(errno));
			close(fd);
			return LOCK_UNAVAILABLE;
		}
		/* who holds it: a supervisor (its own lock held) or only what it left; the pids for the
		 * messages, those /proc shows or else the one the supervisor wrote */
		char holders[256], pidtext[24] = "";
		const int live_sup = supervisor_holds(dir);
		ssize_t n = pread(fd, pidtext, sizeof(pidtext) - 1, 0);
		lock_holders(fd, holders, sizeof(holders));
		close(fd);
		pidtext[n > 0 ? n : 0] = 0;
		if (!holders[0])
			snprintf(holders, sizeof(holders), "%ld", strtol(pidtext, NULL, 10));
		if (!op_notify_enabled()) {
			op_err("another outpostd holds %s (pid %s): it runs with this directory. This one exits and "
			       "leaves its files alone; stop the other first",
			       path, holders);
			return LOCK_HELD;
		}
		const uint64_t now = op_now_ns();
		if (live_sup == 1)
			orphans_since = 0;
		else if (!orphans_since)
			orphans_since = now;
		if (orphans_since && now - orphans_since >= LOCK_ORPHAN_WAIT_NS) {
			op_err("%s is still held by pid %s, stages of an outpostd that has ended, %.0f s on: stuck "
			       "(a hung device?). Exiting, for systemd to act",
			       path, holders, (double)(now - orphans_since) / 1e9);
			return LOCK_HELD;
		}
		if (!said_ns || now - said_ns >= 600000000000ull) {
			if (live_sup == 1)
				op_err("another outpostd holds %s (pid %s), started outside this service: waiting for it to "
				       "end, %.0f s so far",
				       path, holders, (double)(now - t0) / 1e9);
			else
				op_warn("%s is held by pid %s, what is left of an earlier outpostd: waiting up to %.0f s for "
					"it to end",
					path, holders, (double)LOCK_ORPHAN_WAIT_NS / 1e9);
			said_ns = now;
		}
		char line[sizeof(path) + 400];
		if (live_sup == 1)
			snprintf(line, sizeof(line), "waiting for pid %s (an outpostd started outside this service) to release %s",
				 holders, path);
		else
			snprintf(line, sizeof(line), "waiting for pid %s (left by an outpostd that has ended; %.0f s more at most) "
				 "to release %s",
				 holders, (double)(orphans_since + LOCK_ORPHAN_WAIT_NS - now) / 1e9, path);
		op_notify_status(line);
		op_notify_extend_timeout(5000000000ull);
		usleep(500000);
	}
}

/* Why the configuration file is not what runs: "has errors" or "cannot be read (…)". */
static const char *fallback_why(const sup *s, char *buf, size_t cap)
{
	if (s->config_fallback < 0)
		snprintf(buf, cap, "cannot be read (%s)", strerror(-s->config_fallback));
	else
		snprintf(buf, cap, "has errors");
	return buf;
}

/* An alert for north (outbox.h): queued before anything else is sent. */
static void alert(sup *s, const char *kind, const char *text)
{
	int e = op_outbox_alert(s->cfg, kind, text);
	if (e < 0)
		op_err("cannot queue the %s alert for north: %s", kind, strerror(-e));
}

/* Rung 2 of the ladder: the restart budget of a stage is spent. */
static void spend_budget(sup *s, stage_rec *r)
{
	if (s->budget_spent)
		return;
	s->budget_spent = 1;
	snprintf(s->budget_reason, sizeof(s->budget_reason),
		 "restart budget spent: stage %s failed more than %u times in %llu s", r->name, s->policy.burst,
		 (unsigned long long)(s->policy.interval_ns / 1000000000ull));
	op_err("%s; draining, then asking systemd to restart outpostd (WATCHDOG=trigger, exit status 3)",
	       s->budget_reason);
	char line[300];
	snprintf(line, sizeof(line), "FAILED: %s", s->budget_reason);
	op_notify_status(line);
	alert(s, "restart_budget", s->budget_reason);
	s->stopping = 1;
}

/* rest_for_one: the stages downstream of r are killed and start again when r does. SIGKILL,
 * not SIGTERM: what they hold is either still held by ingest (and resent) or, when ingest
 * itself died, already counted as dropped (reason=ingest_crash) and must not be stored. */
static void restart_downstream(sup *s, stage_rec *r)
{
	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *d = &s->st[i];
		if (d->rank <= r->rank)
			continue;
		if (d->running) {
			op_info("stopping stage %s with %s (rest_for_one)", d->name, r->name);
			d->collateral = 1;
			d->collateral_restarts++;
			kill(d->pid, SIGKILL);
		}
		if (d->restart_at_ns < r->restart_at_ns)
			d->restart_at_ns = r->restart_at_ns;
	}
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
	if (r->collateral) { /* restart_at_ns was set by whoever stopped it */
		r->collateral = 0;
		op_info("stage %s %s; restarting in %.1f s", r->name, how,
			r->restart_at_ns > now ? (double)(r->restart_at_ns - now) / 1e9 : 0.0);
		return;
	}
	s->last_failure_ns = now;
	r->failed_ns = now;
	if (!r->day_start_ns || now - r->day_start_ns > 86400000000000ull) {
		r->day_start_ns = now;
		r->day_failures = 0;
		r->day_alerted = 0;
	}
	if (++r->day_failures > s->cfg->restart_alert_daily && !r->day_alerted) {
		char text[300];
		snprintf(text, sizeof(text),
			 "stage %s failed %u times in %.1f h (more than supervisor.restart_alert_daily %u); last: %s",
			 r->name, r->day_failures, (double)(now - r->day_start_ns) / 3.6e12, s->cfg->restart_alert_daily, how);
		op_err("%s", text);
		alert(s, "stage_failing_often", text);
		r->day_alerted = 1;
	}
	if (!strcmp(r->name, "ingest") && r->reported_since_spawn) {
		/* (an ingest that died before its first report: the gauges are its predecessor's,
		 * already counted when that one died) */
		uint64_t held = (uint64_t)gauge_of(r, "in_flight");
		if (held) {
			op_warn("ingest died holding %" PRIu64 " events not yet durable; its successor takes them over "
				"from its log, or they count as dropped (reason=ingest_crash)",
				held);
			s->ingest_unsettled += held;
			s->unsettled_incarnation = r->incarnation;
		}
	}
	int v = op_restart_failed(&r->rs, &s->policy, now, &delay);
	r->restarts++;
	r->escalated = v == OP_RESTART_ESCALATE;
	if (r->escalated && s->safe_mode) {
		/* Safe mode is the last rung: past it a process restart, then a reboot, would follow,
		 * over and over, and a box rebooting for ever sends nothing north, not even why. A
		 * stage that keeps failing here is restarted at the slowest pace, and north is told
		 * once per run. */
		if (!r->safe_storm_alerted) {
			char text[300];
			snprintf(text, sizeof(text),
				 "safe mode: stage %s keeps failing (%s); restarting it every %.0f s, not escalating further",
				 r->name, how, (double)s->policy.backoff_max_ns / 1e9);
			op_err("%s", text);
			alert(s, "safe_mode_stage_failing", text);
			r->safe_storm_alerted = 1;
		}
		op_err("stage %s %s; restarting in %.1f s (safe mode: no escalation)", r->name, how,
		       (double)s->policy.backoff_max_ns / 1e9);
		r->restart_at_ns = now + s->policy.backoff_max_ns;
		restart_downstream(s, r);
		return;
	}
	if (r->escalated) {
		op_err("stage %s %s", r->name, how);
		spend_budget(s, r);
		return;
	}
	op_err("stage %s %s; restarting in %.1f s", r->name, how, (double)delay / 1e9);
	r->restart_at_ns = now + delay;
	restart_downstream(s, r);
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

/* In safe mode: the pipeline rank of the first stage failing for good (restarted slowly, never
 * escalated), or NSTAGES + 1 when none. */
static int safe_failing_rank(const sup *s)
{
	int rank = NSTAGES + 1;
	for (int i = 0; i < NSTAGES; i++)
		if (s->safe_mode && s->st[i].safe_storm_alerted && s->st[i].rank < rank)
			rank = s->st[i].rank;
	return rank;
}

#define LOADING_DEADLINE_NS 300000000000ull /* 5 min: a model, CUDA, a salvage on a slow disk */

/*
 * A stage just (re)started has proved nothing: it is not healthy (no READY, no calm) until it
 * reports. But systemd's pings are held back for it only after a grace of a quarter of
 * WatchdogSec (at most stage_deadline): a stage that hangs before its first report, killed at
 * stage_deadline and hanging again after its backoff, had kept the pings away for two
 * deadlines and a backoff in a row, past WatchdogSec, and systemd killed outpostd (no drain,
 * the run directory with ingest's log removed) before the restart budget could stop it in
 * order (rung 2). With the grace the gap is at most stage_deadline less the grace, plus a
 * backoff.
 */
static uint64_t first_report_grace(const sup *s, uint64_t deadline)
{
	return s->watchdog_ns / 4 < deadline ? s->watchdog_ns / 4 : deadline;
}

/* Invariant 4 and the stuck-stage check. Returns 1 when every stage is healthy; *ping_ok says
 * whether systemd's watchdog may be pinged (first_report_grace). */
static int check_stages(sup *s, uint64_t now, int *ping_ok)
{
	int healthy = 1, withhold = 0;
	uint64_t deadline = s->cfg->watchdog_stage_deadline_ns;
	/* In safe mode a stage that keeps failing is restarted slowly and never escalated
	 * (on_exit_of); neither it nor the stages restarted with it (rest_for_one) may hold back
	 * the watchdog's pings, or systemd would kill outpostd and the start limit reboot the box:
	 * the very loop safe mode ends. It is in the status, the journal and an alert. */
	const int failing_rank = safe_failing_rank(s);

	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *r = &s->st[i];
		const int exempt = r->rank >= failing_rank;
		if (!r->running) {
			healthy &= exempt;
			withhold |= !exempt;
			if (r->restart_at_ns && now >= r->restart_at_ns && !s->stopping)
				spawn(s, r);
			continue;
		}
		uint64_t last = r->last_report_ns > r->started_ns ? r->last_report_ns : r->started_ns;
		const char *why = NULL;
		/* A stage that said it is loading (infer: its model, CUDA and cuBLASLt set up; store:
		 * outbox/ read and a crash's leftovers salvaged) reports again only when done: it has
		 * LOADING_DEADLINE_NS, not stage_deadline, before it counts as hung. */
		const uint64_t rd = r->reported_since_spawn && gauge_of(r, "loading") > 0 && deadline < LOADING_DEADLINE_NS
					    ? LOADING_DEADLINE_NS
					    : deadline;
		uint64_t limit = deadline; /* the one it broke, in its message */
		if (now - last > rd)
			why = "sent no report", limit = rd;
		else if (!r->idle && !r->blocked && now - r->progress_changed_ns > deadline)
			why = "made no progress while busy";
		if (why) {
			if (!r->kill_sent) /* once: it is reaped on a later turn of the loop */
				op_err("stage %s (pid %d) %s for %.0f s%s: killing it", r->name, (int)r->pid, why,
				       (double)limit / 1e9, limit != deadline ? " (loading)" : "");
			r->kill_sent = 1;
			kill(r->pid, SIGKILL);
			healthy = 0;
			withhold |= !exempt;
		}
		if (!r->reported_since_spawn && !exempt) { /* a process just forked has proved nothing yet */
			healthy = 0;
			withhold |= now - r->started_ns > first_report_grace(s, deadline);
		}
	}
	*ping_ok = !withhold;
	return healthy;
}

/* While a stage waits out its restart delay, systemd's watchdog is not pinged (invariant 5):
 * a delay near WatchdogSec would turn a plain restart into a kill of outpostd (no drain, the
 * run directory with ingest's log removed). Pings go out every half watchdog period, so a
 * stage must be back within the other half: the delays are held to a quarter of it. */
static void apply_backoff(sup *s)
{
	s->policy.backoff_ns = s->cfg->restart_backoff_ns;
	s->policy.backoff_max_ns = s->cfg->restart_backoff_max_ns;
	if (s->policy.backoff_max_ns < s->policy.backoff_ns)
		s->policy.backoff_max_ns = s->policy.backoff_ns;
	const uint64_t limit = s->watchdog_ns / 4;
	if (limit && s->policy.backoff_max_ns > limit) {
		op_warn("supervisor.restart_backoff_max %.1f s is longer than systemd's watchdog (WatchdogSec %.0f s) "
			"allows: %.1f s is used",
			(double)s->policy.backoff_max_ns / 1e9, (double)s->watchdog_ns / 1e9, (double)limit / 1e9);
		s->policy.backoff_max_ns = limit;
		if (s->policy.backoff_ns > limit)
			s->policy.backoff_ns = limit;
	}
	/* A stage stuck for stage_deadline holds the pings back until it is killed, and then for
	 * its backoff: past WatchdogSec, systemd kills outpostd first (no drain). Said, not changed:
	 * a shorter deadline could kill a stage that is slow on purpose; the fix is the operator's
	 * (a shorter deadline, or a longer WatchdogSec in a drop-in). */
	const uint64_t dl = s->cfg->watchdog_stage_deadline_ns;
	/* a restart's wait, then a hang before the first report (first_report_grace) */
	const uint64_t gap = s->policy.backoff_max_ns + dl - first_report_grace(s, dl);
	if (s->watchdog_ns && gap >= s->watchdog_ns)
		op_warn("supervisor.stage_deadline %.1f s is too long for systemd's watchdog (WatchdogSec %.0f s): a stage "
			"that hangs again after its restart (%.1f s of backoff) holds the pings back %.1f s, and systemd "
			"kills outpostd, without a drain, before the supervisor restarts the stage; shorten "
			"stage_deadline or lengthen WatchdogSec",
			(double)dl / 1e9, (double)s->watchdog_ns / 1e9, (double)s->policy.backoff_max_ns / 1e9,
			(double)gap / 1e9);
}

static void events_totals(sup *s, uint64_t *accepted, uint64_t *stored, uint64_t *dropped,
			  uint64_t *in_flight, uint64_t *received, uint64_t *rejected)
{
	stage_rec *g = stage_by_name(s, "ingest");
	/* a dead ingest's work after its last report is counted by its successor (pred_*) */
	*accepted = counter_of(g, "accepted") + counter_of(g, "pred_accepted");
	*stored = counter_of(g, "stored") + counter_of(g, "pred_stored");
	*received = counter_of(g, "received");
	*in_flight = (g->running ? (uint64_t)gauge_of(g, "in_flight") : 0) + s->ingest_unsettled;
	*dropped = s->dropped_ingest_crash + counter_of(g, "pred_dropped") + s->dropped_log_lost;
	*accepted += s->dropped_log_lost; /* accepted by the run before, and taken back by none */
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
		return r->reported_since_spawn ? "running" : "starting";
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
	/* text from outside (the operator's file, a model file's name, error messages): escaped */
	char site[6 * sizeof(s->cfg->site_name)];
	op_json_escape(site, sizeof(site), s->cfg->site_name);
	sb_printf(b, "{\"version\":\"%s\",\"site\":\"%s\",\"config_hash\":\"%s\",\"uptime_s\":%.3f,",
		  OUTPOST_VERSION, site, s->config_hash, (double)(now - s->start_ns) / 1e9);
	char last[6 * sizeof(s->reload_last)];
	op_json_escape(last, sizeof(last), s->reload_last);
	sb_printf(b, "\"reload\":{\"applied\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"refused\":%" PRIu64
		     ",\"last\":\"%s\"},",
		  s->reloads_applied, s->reloads_failed, s->reloads_refused, last);
	sb_printf(b, "\"config_fallback\":%s,", s->config_fallback ? "true" : "false");
	char held[16 * 48];
	op_outbox_alerts_held(held, sizeof(held));
	sb_printf(b, "\"alerts_held_back\":%s,", held);
	sb_printf(b, "\"mode\":\"%s\",\"start_count\":%u,\"ready\":%s,\"restart_budget_spent\":%s,",
		  s->safe_mode ? "safe" : "normal", s->start_count, s->ready_sent ? "true" : "false",
		  s->budget_spent ? "true" : "false");
	{
		char me[6 * sizeof(s->model_error)];
		op_json_escape(me, sizeof(me), s->model_error);
		sb_printf(b, "\"safe_mode_reason\":\"%s\",\"model_error\":\"%s\",",
			  !s->safe_mode ? "" : s->model_error[0] ? "model_unusable" : "unstable_starts", me);
	}
	{
		double ar, sr;
		stage_rec *inf_ = stage_by_name(s, "infer");
		char model[6 * sizeof(inf_->model)], backend[6 * sizeof(inf_->backend)];
		rates(s, &ar, &sr);
		op_json_escape(model, sizeof(model), inf_->model);
		op_json_escape(backend, sizeof(backend), inf_->backend);
		sb_printf(b, "\"rates\":{\"accepted_per_s\":%.1f,\"stored_per_s\":%.1f},\"model\":\"%s\",\"backend\":\"%s\",", ar,
			  sr, model, backend);
	}
	sb_printf(b, "\"events\":{\"received\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"accepted\":%" PRIu64
		     ",\"stored\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"in_flight\":%" PRIu64
		     ",\"dropped_ingest_crash\":%" PRIu64 ",\"dropped_log_lost\":%" PRIu64 ",\"balanced\":%s},",
		  rec, rej, acc, sto, dro, inf, s->dropped_ingest_crash, s->dropped_log_lost,
		  acc == sto + dro + inf ? "true" : "false");
	if (s->power) {
		char pj[2048];
		op_powerctl_json(s->power, pj, sizeof(pj));
		sb_printf(b, "%s,", pj);
	}
	sb_printf(b, "\"stages\":{");
	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *r = &s->st[i];
		sb_printf(b, "%s\"%s\":{\"state\":\"%s\",\"pid\":%d,\"restarts\":%" PRIu64
			     ",\"restarts_with_upstream\":%" PRIu64 ",\"restarts_planned\":%" PRIu64
			     ",\"escalated\":%s,\"idle\":%s,\"last_report_age_s\":%.3f,\"last_failure_age_s\":%.3f,"
			     "\"counters\":{",
			  i ? "," : "", r->name, state_of(r), (int)r->pid, r->restarts, r->collateral_restarts,
			  r->planned_restarts,
			  r->escalated ? "true" : "false", r->idle ? "true" : "false",
			  r->last_report_ns ? (double)(now - r->last_report_ns) / 1e9 : -1.0,
			  r->failed_ns ? (double)(now - r->failed_ns) / 1e9 : -1.0);
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

/*
 * The Prometheus text exposition format (version 0.0.4): `outpostctl metrics`, and the
 * node_exporter textfile collector file when metrics.textfile is set. Every stage's counters
 * and gauges are exported under two generic families labelled by stage and name, so a new
 * counter in a stage appears without touching this code.
 */
static void metrics_text(sup *s, sbuf *b)
{
	uint64_t acc, sto, dro, inf, rec, rej, now = op_now_ns();
	char site[2 * OP_CFG_STR];

	events_totals(s, &acc, &sto, &dro, &inf, &rec, &rej);
	op_prom_escape(site, sizeof(site), s->cfg->site_name);
	sb_printf(b, "# HELP outpost_info The running outpostd: version, site and configuration.\n"
		     "# TYPE outpost_info gauge\n"
		     "outpost_info{version=\"%s\",site=\"%s\",config_hash=\"%s\"} 1\n",
		  OUTPOST_VERSION, site, s->config_hash);
	sb_printf(b, "# HELP outpost_uptime_seconds Time since outpostd started.\n"
		     "# TYPE outpost_uptime_seconds gauge\noutpost_uptime_seconds %.3f\n",
		  (double)(now - s->start_ns) / 1e9);
	sb_printf(b, "# HELP outpost_events_total Detector events by outcome (accepted = stored + dropped + "
		     "in flight).\n# TYPE outpost_events_total counter\n");
	const struct {
		const char *outcome;
		uint64_t v;
	} ev[] = {{"received", rec}, {"rejected", rej}, {"accepted", acc}, {"stored", sto}, {"dropped", dro}};
	for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++)
		sb_printf(b, "outpost_events_total{outcome=\"%s\"} %" PRIu64 "\n", ev[i].outcome, ev[i].v);
	sb_printf(b, "# HELP outpost_events_in_flight Accepted events not yet durable.\n"
		     "# TYPE outpost_events_in_flight gauge\noutpost_events_in_flight %" PRIu64 "\n", inf);
	sb_printf(b, "# HELP outpost_ready 1 once the start-up probe went end to end.\n"
		     "# TYPE outpost_ready gauge\noutpost_ready %d\n", s->ready_sent);
	sb_printf(b, "# HELP outpost_config_fallback 1 while the configuration file is broken and the last good "
		     "one runs.\n# TYPE outpost_config_fallback gauge\noutpost_config_fallback %d\n",
		  s->config_fallback != 0);
	sb_printf(b, "# HELP outpost_safe_mode 1 while the network is off after repeated unstable starts.\n"
		     "# TYPE outpost_safe_mode gauge\noutpost_safe_mode %d\n", s->safe_mode);
	sb_printf(b, "# HELP outpost_unstable_starts Starts in a row that have not yet run stable.\n"
		     "# TYPE outpost_unstable_starts gauge\noutpost_unstable_starts %u\n", s->start_count);
	sb_printf(b, "# HELP outpost_reloads_total Configuration reloads by result.\n"
		     "# TYPE outpost_reloads_total counter\n"
		     "outpost_reloads_total{result=\"applied\"} %" PRIu64 "\n"
		     "outpost_reloads_total{result=\"failed\"} %" PRIu64 "\n"
		     "outpost_reloads_total{result=\"refused\"} %" PRIu64 "\n",
		  s->reloads_applied, s->reloads_failed, s->reloads_refused);
	sb_printf(b, "# HELP outpost_stage_up 1 while the stage runs and reports.\n# TYPE outpost_stage_up gauge\n");
	for (int i = 0; i < NSTAGES; i++)
		sb_printf(b, "outpost_stage_up{stage=\"%s\"} %d\n", s->st[i].name,
			  s->st[i].running && s->st[i].reported_since_spawn);
	sb_printf(b, "# HELP outpost_stage_restarts_total Stage restarts: its own failures, or with a failed "
		     "stage upstream of it.\n# TYPE outpost_stage_restarts_total counter\n");
	for (int i = 0; i < NSTAGES; i++)
		sb_printf(b,
			  "outpost_stage_restarts_total{stage=\"%s\",cause=\"failure\"} %" PRIu64 "\n"
			  "outpost_stage_restarts_total{stage=\"%s\",cause=\"upstream\"} %" PRIu64 "\n",
			  s->st[i].name, s->st[i].restarts, s->st[i].name, s->st[i].collateral_restarts);
	sb_printf(b, "# HELP outpost_stage_count_total Counters each stage reports (never go backwards "
		     "across its restarts).\n# TYPE outpost_stage_count_total counter\n");
	for (int i = 0; i < NSTAGES; i++)
		for (int k = 0; k < s->st[i].nkv; k++)
			if (s->st[i].kv[k].counter)
				sb_printf(b, "outpost_stage_count_total{stage=\"%s\",name=\"%s\"} %" PRIu64 "\n",
					  s->st[i].name, s->st[i].kv[k].key, s->st[i].kv[k].cur + s->st[i].kv[k].base);
	sb_printf(b, "# HELP outpost_stage_value Gauges each stage reports.\n# TYPE outpost_stage_value gauge\n");
	for (int i = 0; i < NSTAGES; i++)
		for (int k = 0; k < s->st[i].nkv; k++)
			if (!s->st[i].kv[k].counter)
				sb_printf(b, "outpost_stage_value{stage=\"%s\",name=\"%s\"} %.17g\n", s->st[i].name,
					  s->st[i].kv[k].key, s->st[i].kv[k].value);
	if (s->power) {
		char pm[8192];
		op_powerctl_metrics(s->power, pm, sizeof(pm));
		sb_printf(b, "%s", pm);
	}
}

/* node_exporter's textfile collector reads *.prom files: written whole, then renamed. */
static void fill_metrics(sup *s, FILE *f)
{
	sbuf b = {0};
	metrics_text(s, &b);
	if (b.len)
		fwrite(b.p, 1, b.len, f);
	free(b.p);
}

static void write_textfile(sup *s)
{
	/* world-readable whatever the umask: node_exporter runs as another user */
	int rc = replace_file(s, s->cfg->metrics_textfile, 0644, 0, fill_metrics);
	if (rc < 0 && !s->textfile_failed)
		op_err("cannot write the metrics file %s: %s", s->cfg->metrics_textfile, strerror(-rc));
	s->textfile_failed = rc < 0;
}

static void sample_rates(sup *s, uint64_t now)
{
	uint64_t acc, sto, dro, inf, rec, rej;
	unsigned last = (s->rate_head + 10) % 11;
	if (s->rate_n && now - s->rate[last].t < 1000000000ull)
		return;
	events_totals(s, &acc, &sto, &dro, &inf, &rec, &rej);
	s->rate[s->rate_head] = (struct rate_sample){now, acc, sto};
	s->rate_head = (s->rate_head + 1) % 11;
	if (s->rate_n < 11)
		s->rate_n++;
}

/* events/s accepted and stored over the samples held (up to the last 10 s) */
static void rates(const struct sup *s, double *acc_rate, double *sto_rate)
{
	*acc_rate = *sto_rate = 0;
	if (s->rate_n < 2)
		return;
	const struct rate_sample *newest = &s->rate[(s->rate_head + 10) % 11];
	const struct rate_sample *oldest = &s->rate[(s->rate_head + 11 - s->rate_n) % 11];
	double dt = (double)(newest->t - oldest->t) / 1e9;
	if (dt > 0) {
		*acc_rate = (double)(newest->accepted - oldest->accepted) / dt;
		*sto_rate = (double)(newest->stored - oldest->stored) / dt;
	}
}

static void status_text(sup *s, sbuf *b)
{
	uint64_t acc, sto, dro, inf, rec, rej, now = op_now_ns();
	uint64_t up = (now - s->start_ns) / 1000000000ull;
	double ar, sr;
	char why[160];

	events_totals(s, &acc, &sto, &dro, &inf, &rec, &rej);
	sb_printf(b, "outpost %s  site %s  up %" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s  config %s\n",
		  OUTPOST_VERSION, s->cfg->site_name, up / 3600, up / 60 % 60, up % 60, s->config_hash);
	if (s->safe_mode && s->model_error[0])
		sb_printf(b, "mode     SAFE: network off, LineFit only, rows flagged safe_mode: infer.model cannot be "
			     "used (%s); put a usable model there and restart\n",
			  s->model_error);
	else if (s->safe_mode)
		sb_printf(b, "mode     SAFE: network off, LineFit only, rows flagged safe_mode (%u unstable starts "
			     "in a row)\n",
			  s->start_count);
	if (s->budget_spent)
		sb_printf(b, "FAILED   %s; stopping for systemd to restart outpostd\n", s->budget_reason);
	if (s->config_fallback)
		sb_printf(b, "CONFIG   %s %s: running on the last good configuration (state_dir/"
			     "config-last-good.yaml); fix it and reload\n",
			  s->config_path, fallback_why(s, why, sizeof(why)));
	if (s->reload_last[0])
		sb_printf(b, "reload   %s\n", s->reload_last);
	sb_printf(b, "events   received %" PRIu64 "  rejected %" PRIu64 "  accepted %" PRIu64
		     "  stored %" PRIu64 "  dropped %" PRIu64 "  in flight %" PRIu64 "%s\n",
		  rec, rej, acc, sto, dro, inf, acc == sto + dro + inf ? "" : "  (UNBALANCED)");
	rates(s, &ar, &sr);
	stage_rec *ing = stage_by_name(s, "ingest"), *inf_ = stage_by_name(s, "infer");
	sb_printf(b, "rates    %.0f events/s accepted, %.0f events/s stored (last 10 s); ingest holds %.0f of %.0f\n",
		  ar, sr, gauge_of(ing, "in_flight"), gauge_of(ing, "window_events"));
	if (dro || s->dropped_ingest_crash) {
		sb_printf(b, "drops   ");
		for (int k = 0; k < ing->nkv; k++)
			if (ing->kv[k].counter && !strncmp(ing->kv[k].key, "dropped_", 8) && ing->kv[k].cur + ing->kv[k].base)
				sb_printf(b, " %s %" PRIu64, ing->kv[k].key + 8, ing->kv[k].cur + ing->kv[k].base);
		if (s->dropped_ingest_crash)
			sb_printf(b, " ingest_crash %" PRIu64, s->dropped_ingest_crash);
		if (s->dropped_log_lost)
			sb_printf(b, " log_lost %" PRIu64, s->dropped_log_lost);
		if (counter_of(ing, "pred_dropped")) /* given up by an ingest that died before reporting it */
			sb_printf(b, " resend_exhausted(unreported) %" PRIu64, counter_of(ing, "pred_dropped"));
		sb_printf(b, "\n");
	}
	if (inf_->model[0])
		sb_printf(b, "infer    %s on %s%s\n", inf_->model, inf_->backend[0] ? inf_->backend : "?",
			  s->safe_mode ? " (safe mode)" : "");
	if (s->power) {
		char ps[4096];
		op_powerctl_status(s->power, ps, sizeof(ps));
		sb_printf(b, "%s", ps);
	}
	sb_printf(b, "%-8s %-10s %7s %8s %12s  %s\n", "stage", "state", "pid", "restarts", "progress", "notes");
	for (int i = 0; i < NSTAGES; i++) {
		stage_rec *r = &s->st[i];
		sb_printf(b, "%-8s %-10s %7d %8" PRIu64 " %12" PRIu64 "  %s%s\n", r->name, state_of(r),
			  (int)r->pid, r->restarts, r->progress, r->idle ? "idle" : "busy",
			  r->escalated ? ", RESTART BUDGET SPENT" : "");
	}
	stage_rec *st = stage_by_name(s, "store"), *up_ = stage_by_name(s, "uplink");
	sb_printf(b, "store    %" PRIu64 " rows sealed in %" PRIu64 " segments, %" PRIu64
		     " duplicates ignored\n",
		  counter_of(st, "rows_sealed"), counter_of(st, "segments_sealed"), counter_of(st, "rows_duplicate"));
	const char *link = !s->cfg->uplink_north[0]             ? "off (no north endpoint)"
			   : gauge_of(up_, "key_error") > 0       ? "KEYS UNREADABLE (see the log; nothing sent)"
			   : gauge_of(up_, "quota_exhausted") > 0 ? "DAILY QUOTA SPENT (alerts only, until UTC midnight)"
			   : s->cfg->uplink_windows[0] && gauge_of(up_, "in_window") <= 0 ? "closed (outside uplink.windows)"
			   : gauge_of(up_, "link_up") > 0         ? "up"
								  : "DOWN";
	sb_printf(b, "uplink   link %s%s; %" PRIu64 " files confirmed north, %" PRIu64 " bytes; backlog %.0f files, "
		     "%.0f bytes; %" PRIu64 " timeouts, %" PRIu64 " resumes\n",
		  link, s->cfg->uplink_north[0] && gauge_of(up_, "key_error") <= 0
			    ? (gauge_of(up_, "encrypted") > 0 ? ", encrypted (CURVE)" : ", plaintext") : "",
		  counter_of(up_, "files_confirmed"), counter_of(up_, "bytes_confirmed"), gauge_of(up_, "files_pending"),
		  gauge_of(up_, "bytes_pending"), counter_of(up_, "timeouts"), counter_of(up_, "resumes"));
	if (s->cfg->uplink_north[0])
		sb_printf(b, "         %.3g kbit/s on the wire (last 10 s)%s%.3g%s; %" PRIu64 " bytes acknowledged, %" PRIu64
			     " sent again (lost in %" PRIu64 " broken connections or refused)\n",
			  gauge_of(up_, "rate_bps") / 1e3, s->cfg->uplink_rate_bps ? ", cap " : "",
			  (double)s->cfg->uplink_rate_bps / 1e3, s->cfg->uplink_rate_bps ? " kbit/s" : "",
			  counter_of(up_, "bytes_acked"), counter_of(up_, "bytes_retransmitted"), counter_of(up_, "disconnects"));
	if (s->cfg->uplink_north[0] && gauge_of(up_, "refusals_running") > 0) {
		char next[48] = "offered now";
		if (gauge_of(up_, "spaced_s") > 0)
			snprintf(next, sizeof(next), "in %.1f s", gauge_of(up_, "spaced_s"));
		sb_printf(b, "         NORTH REFUSING FILES: %.0f refused since its last confirmation, the last: %s; "
			     "the next file %s\n",
			  gauge_of(up_, "refusals_running"), up_->refusal[0] ? up_->refusal : "(no reason reported)", next);
	} else if (s->cfg->uplink_north[0] && gauge_of(up_, "files_refused") > 0) {
		/* refusals about a file alone (its name taken by another site's file): north takes the
		 * others, and the operator has a file to rename */
		sb_printf(b, "         FILES NORTH REFUSES: %.0f, each offered again up to hourly; the last: %s\n",
			  gauge_of(up_, "files_refused"), up_->file_refusal[0] ? up_->file_refusal : "(no reason reported)");
	}
	if (counter_of(up_, "evicted_disk_full") + counter_of(up_, "evicted_expired") || gauge_of(up_, "disk_free") > 0) {
		double days = gauge_of(up_, "disk_days_to_full");
		char fill[96] = "not filling";
		if (days >= 0)
			snprintf(fill, sizeof(fill), "%s %.1f days at the last hour's rate", days < 7 ? "RESERVE REACHED IN" : "reserve reached in", days);
		sb_printf(b, "disk     %.1f MiB free (reserve %.1f MiB), %s; %" PRIu64 " files evicted unsent (%" PRIu64
			     " expired, %" PRIu64 " for space, %" PRIu64 " bytes), %" PRIu64 " tombstones north-bound%s\n",
			  gauge_of(up_, "disk_free") / 1048576.0, (double)s->cfg->uplink_disk_reserve / 1048576.0, fill,
			  counter_of(up_, "evicted_disk_full") + counter_of(up_, "evicted_expired"),
			  counter_of(up_, "evicted_expired"), counter_of(up_, "evicted_disk_full"),
			  counter_of(up_, "evicted_bytes"), counter_of(up_, "tombstones"),
			  counter_of(up_, "tombstones_failed") ? " (SOME TOMBSTONES COULD NOT BE WRITTEN)" : "");
	}
	if (s->cfg->uplink_rate_bps || s->cfg->uplink_daily_quota) {
		sb_printf(b, "budget  ");
		if (s->cfg->uplink_rate_bps)
			sb_printf(b, " cap %.3g kbit/s (%" PRIu64 " waits);", (double)s->cfg->uplink_rate_bps / 1e3,
				  counter_of(up_, "rate_waits"));
		if (s->cfg->uplink_daily_quota)
			sb_printf(b, " quota %.0f of %" PRIu64 " bytes used today (UTC), %.1f%%;", gauge_of(up_, "quota_used"),
				  s->cfg->uplink_daily_quota,
				  100.0 * gauge_of(up_, "quota_used") / (double)s->cfg->uplink_daily_quota);
		sb_printf(b, " %" PRIu64 " bytes on the wire since start\n", counter_of(up_, "wire_bytes"));
	}
}

static void write_last_good(sup *s);
static int write_effective(sup *s);

/* A planned restart of one stage (a reload): SIGTERM, so that it finishes what it holds
 * (the store seals its open segment); not charged to its restart budget. */
static void planned_restart(sup *s, const char *name)
{
	stage_rec *r = stage_by_name(s, name);
	if (r->running) {
		r->collateral = 1;
		r->planned_restarts++;
		r->restart_at_ns = op_now_ns() + 1;
		kill(r->pid, SIGTERM);
	}
}

/*
 * Reload (SIGHUP, `outpostctl reload`): parse and validate the file again; on any error, or
 * when a changed key needs a restart of outpostd, keep running exactly as before and say why.
 * Otherwise apply all of it at once: the supervisor's own settings at once, ingest re-reads
 * its configuration, store and uplink are restarted between two segments (SIGTERM: the store
 * seals what it holds; ingest resends anything unacknowledged, the store deduplicates), so no
 * event is lost. The outcome goes to the journal, status, metrics and the caller.
 */
static void reload_step(sup *s, sbuf *reply, const char *when, const op_config *nextp, char *changed,
			size_t changed_len);

static void reload(sup *s, sbuf *reply)
{
	char when[32], changed[300];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!s->config_path) {
		s->reloads_refused++;
		snprintf(s->reload_last, sizeof(s->reload_last),
			 "%s refused: running on the embedded defaults (no file to reload)", when);
		op_warn("reload %s", s->reload_last + strlen(when) + 1);
		sb_printf(reply, "error: %s\n", s->reload_last);
		return;
	}
	op_config next;
	char *diag = NULL;
	size_t dlen = 0;
	FILE *df = open_memstream(&diag, &dlen);
	op_config_defaults(&next);
	int rc = op_config_load_file(&next, s->config_path, df);
	if (df)
		fclose(df);
	if (rc != 0) {
		s->reloads_failed++;
		if (rc < 0)
			snprintf(s->reload_last, sizeof(s->reload_last), "%s failed: cannot read %s: %s; still running "
				 "the previous configuration", when, s->config_path, strerror(-rc));
		else
			snprintf(s->reload_last, sizeof(s->reload_last), "%s failed: %d error%s in %s; still running the "
				 "previous configuration", when, rc, rc == 1 ? "" : "s", s->config_path);
		op_err("reload %s", s->reload_last + strlen(when) + 1);
		for (char *line = diag, *nl; line && *line; line = nl ? nl + 1 : NULL) {
			nl = strchr(line, '\n');
			if (nl)
				*nl = 0;
			if (strstr(line, ": error: ") || strstr(line, ": warning: "))
				op_err("reload: %s", line);
			if (!nl)
				break;
			*nl = '\n';
		}
		sb_printf(reply, "error: %s\n%s", s->reload_last, diag ? diag : "");
		free(diag);
		return;
	}
	/* A file that loads may still draw warnings (a number in e notation, a YAML 1.1 boolean,
	 * an empty value): said in the journal and after the answer's first line, as at start,
	 * whatever the reload then does. */
	for (char *line = diag, *nl; line && *line; line = nl ? nl + 1 : NULL) {
		nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (strstr(line, ": warning: "))
			op_warn("reload: %s", line);
		if (!nl)
			break;
		*nl = '\n';
	}
	reload_step(s, reply, when, &next, changed, sizeof(changed));
	if (diag && strstr(diag, ": warning: "))
		sb_printf(reply, "%s", diag);
	free(diag);
}

/* reload, once the file has loaded: compare, refuse or apply (the first line of the answer). */
static void reload_step(sup *s, sbuf *reply, const char *when, const op_config *nextp, char *changed, size_t changed_len)
{
	op_config next = *nextp;
	int restart_needed = 0;
	int n = op_config_diff(&s->cfg_now, &next, changed, changed_len, &restart_needed);
	if (n == 0) {
		s->config_fallback = 0; /* the file is valid again and says what runs */
		snprintf(s->reload_last, sizeof(s->reload_last), "%s: no change", when);
		op_info("reload: %s unchanged", s->config_path);
		sb_printf(reply, "ok: %s unchanged\n", s->config_path);
		return;
	}
	if (restart_needed) {
		s->reloads_refused++;
		snprintf(s->reload_last, sizeof(s->reload_last), "%s refused: %s; a key marked (restart) needs "
			 "`systemctl restart outpost`; still running the previous configuration", when, changed);
		op_err("reload %s", s->reload_last + strlen(when) + 1);
		sb_printf(reply, "error: %s\n", s->reload_last);
		return;
	}
	op_config prev = s->cfg_now;
	s->cfg_now = next;
	int werr = write_effective(s);
	if (werr < 0) {
		s->cfg_now = prev;
		s->reloads_failed++;
		snprintf(s->reload_last, sizeof(s->reload_last), "%s failed: cannot write %s: %s", when,
			 s->effective_path, strerror(-werr));
		op_err("reload %s", s->reload_last + strlen(when) + 1);
		sb_printf(reply, "error: %s\n", s->reload_last);
		return;
	}
	op_config_hash(s->cfg, s->config_hash);
	op_powerctl_reconfigure(s->power, s->cfg);
	s->policy.burst = s->cfg->restart_burst;
	s->policy.interval_ns = s->cfg->restart_interval_ns;
	apply_backoff(s);
	op_log_set_level(s->cfg->log_level);
	/* ingest's resend timer follows store.rotate_age too (stage_ingest.c, backstop_for) */
	if (strstr(changed, "ingest.") || prev.store_rotate_age_ns != s->cfg->store_rotate_age_ns)
		zmq_send(s->ingest_ctl, "reload", 6, ZMQ_DONTWAIT);
	/* (log.level: the stages read it again from effective.yaml at their next report, stage.c) */
	if (strstr(changed, "store."))
		planned_restart(s, "store"); /* (for other keys it reads effective.yaml again itself) */
	if (strstr(changed, "uplink."))
		planned_restart(s, "uplink");
	s->reloads_applied++;
	s->config_fallback = 0;
	snprintf(s->reload_last, sizeof(s->reload_last), "%s applied: %s (config %s)", when, changed, s->config_hash);
	op_info("reload %s", s->reload_last + strlen(when) + 1);
	if (s->ready_sent) /* before the first probe went through, this start has proved nothing yet */
		write_last_good(s);
	sb_printf(reply, "ok: %s\n", s->reload_last);
}

/* The one-line summary systemd shows in `systemctl status` (STATUS=). */
static void notify_status_line(sup *s, int healthy)
{
	uint64_t acc, sto, dro, inf, rec, rej;
	char line[256];
	int up = 0;

	events_totals(s, &acc, &sto, &dro, &inf, &rec, &rej);
	for (int i = 0; i < NSTAGES; i++)
		up += s->st[i].running && s->st[i].reported_since_spawn;
	const char *pb = s->power ? op_powerctl_brief(s->power) : "";
	snprintf(line, sizeof(line), "%s%s%s: %" PRIu64 " events stored, %" PRIu64 " dropped, %" PRIu64
		 " in flight; %d/%d stages up%s%s",
		 s->safe_mode ? (s->model_error[0] ? "SAFE MODE (model unusable, network off)" : "SAFE MODE (network off)")
			      : "running",
		 healthy ? "" : ", DEGRADED",
		 !s->config_fallback ? "" : s->config_fallback > 0 ? ", ON LAST GOOD CONFIG (file has errors)"
								       : ", ON LAST GOOD CONFIG (file unreadable)",
		 sto, dro, inf, up, NSTAGES,
		 pb[0] ? "; " : "", pb);
	op_notify_status(line);
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
		else if (!strcmp(req, "metrics"))
			metrics_text(s, &b);
		else if (!strcmp(req, "reload"))
			reload(s, &b);
		else if (!strcmp(req, "status-json"))
			status_json(s, &b);
		else if (!strncmp(req, "power", 5) && (!req[5] || req[5] == ' ')) {
			char pr[4096];
			op_powerctl_command(s->power, req + 5, pr, sizeof(pr));
			sb_printf(&b, "%s", pr);
		}
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

static void fill_effective(sup *s, FILE *f)
{
	fprintf(f, "# written by outpostd (at start and at each reload): the configuration every stage runs\n");
	op_config_print(s->cfg, f);
}

static int write_effective(sup *s)
{
	snprintf(s->effective_path, sizeof(s->effective_path), "%s/effective.yaml", s->cfg->run_dir);
	return replace_file(s, s->effective_path, 0640, 0, fill_effective);
}

/* The configuration last seen valid and running, for the operator (and the next boot). */
static void fill_last_good(sup *s, FILE *f)
{
	fprintf(f, "# the last configuration outpostd ran with (from %s, config %s)\n",
		s->config_path ? s->config_path : "the embedded defaults", s->config_hash);
	op_config_print(s->cfg, f);
}

static void write_last_good(sup *s)
{
	char path[OP_CFG_STR + 32];
	snprintf(path, sizeof(path), "%s/config-last-good.yaml", s->cfg->state_dir);
	int rc = replace_file(s, path, 0640, 1, fill_last_good);
	if (rc < 0)
		op_err("cannot write %s: %s", path, strerror(-rc));
}

static int mkdir_p(const char *path)
{
	char buf[OP_CFG_STR];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			int rc = op_segment_mkdir(buf, 0755); /* durable: state_dir's own entry too */
			if (rc < 0)
				return rc;
			*p = '/';
		}
	}
	return op_segment_mkdir(buf, 0755);
}

/*
 * Orderly stop without losing what is in flight: ingest stops taking events and waits for the
 * store to seal what it holds (nudged by SIGUSR1); then the other stages stop.
 *  - A stop that comes while infer or the store waits out its restart delay starts it at once:
 *    without it nothing ingest holds can become durable.
 *  - A stop because the restart budget is spent (the failing stage is not started again, and
 *    systemd restarts outpostd, keeping the run directory): ingest is told to keep in its log
 *    what does not become durable, for the next outpostd's ingest to take over
 *    (leftover_ingest_log), instead of counting it as dropped.
 */
static void shutdown_stages(sup *s)
{
	stage_rec *ing = stage_by_name(s, "ingest"), *sto = stage_by_name(s, "store");
	uint64_t t0 = op_now_ns(), last_nudge = 0;

	op_notify_stopping();
	op_info("stopping: draining ingest");
	if (ing->running && s->budget_spent)
		zmq_send(s->ingest_ctl, "keep", 4, ZMQ_DONTWAIT);
	else if (ing->running)
		for (int i = 0; i < NSTAGES; i++) {
			stage_rec *r = &s->st[i];
			if (r->rank > ing->rank && r->rank <= sto->rank && !r->running && r->restart_at_ns) {
				op_info("stopping: starting stage %s now, for ingest's drain", r->name);
				spawn(s, r);
			}
		}
	if (ing->running)
		kill(ing->pid, SIGTERM);
	while (ing->running && op_now_ns() - t0 < 20000000000ull) {
		/* SIGUSR1's default action ends a process: only one that has its handler (reported) */
		if (sto->running && sto->reported_since_spawn && op_now_ns() - last_nudge > 500000000ull) {
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
					if (!s->st[i].kill_sent) /* once: the kill is repeated quietly */
						op_err("stage %s did not stop in 10 s: killing it", s->st[i].name);
					s->st[i].kill_sent = 1;
					kill(s->st[i].pid, SIGKILL);
				}
		}
		usleep(20000);
	}
}

/* Rung 4: count this start; too many unstable starts in a row → safe mode. */
static void start_counter(sup *s)
{
	char err[OP_CFG_STR + 96];
	snprintf(s->count_path, sizeof(s->count_path), "%s/start-count", s->cfg->state_dir);
	int rc = op_bootcount_bump(s->count_path, &s->start_count, err, sizeof(err));
	if (rc > 0)
		op_warn("%s", err);
	else if (rc < 0)
		op_err("cannot write %s: %s (safe mode cannot engage)", s->count_path, strerror(-rc));
	s->safe_mode = s->cfg->safe_mode_after && s->start_count > s->cfg->safe_mode_after;
	if (s->safe_mode) {
		s->safe_mode_entered_ns = op_now_ns();
		op_err("SAFE MODE: this is start %u in a row that did not run stable for %llu s (limit %u): "
		       "the network is off, LineFit reconstructs every event and every row is flagged "
		       "safe_mode; the network is tried again after %llu s of health, or remove %s and restart",
		       s->start_count, (unsigned long long)(s->cfg->stable_after_ns / 1000000000ull),
		       s->cfg->safe_mode_after, (unsigned long long)(s->cfg->safe_mode_retry_ns / 1000000000ull),
		       s->count_path);
		char text[200];
		snprintf(text, sizeof(text), "safe mode: start %u in a row without a stable run; network off, LineFit only",
			 s->start_count);
		alert(s, "safe_mode", text);
	} else if (s->start_count > 1) {
		op_warn("start %u in a row without a stable run (safe mode after %u)", s->start_count,
			s->cfg->safe_mode_after);
	}
}

/* Healthy long enough: this start is stable (counter back to 0); in safe mode, try the network
 * again, with the counter left so that one more unstable start returns to safe mode. */
static void check_stable(sup *s, int healthy, uint64_t now)
{
	if (!healthy) {
		s->healthy_since_ns = 0;
		return;
	}
	if (!s->healthy_since_ns)
		s->healthy_since_ns = now;
	uint64_t since = s->healthy_since_ns > s->last_failure_ns ? s->healthy_since_ns : s->last_failure_ns;
	uint64_t calm = now - since;
	if ((!s->safe_mode || s->model_error[0]) && s->start_count && calm >= s->cfg->stable_after_ns) {
		if (op_bootcount_set(s->count_path, 0) == 0)
			op_info("stable for %llu s: start counter reset", (unsigned long long)(calm / 1000000000ull));
		s->start_count = 0;
	}
	if (s->safe_mode && !s->model_error[0] && calm >= s->cfg->safe_mode_retry_ns) {
		stage_rec *inf = stage_by_name(s, "infer"); /* (the store learns the model from its batches) */
		s->safe_mode = 0;
		s->healthy_since_ns = now; /* normal mode has to prove itself for stable_after anew */
		s->start_count = s->cfg->safe_mode_after;
		op_bootcount_set(s->count_path, s->start_count);
		op_warn("safe mode: healthy for %llu s; restarting the infer stage with the network",
			(unsigned long long)(calm / 1000000000ull));
		if (inf->running) {
			inf->collateral = 1;
			inf->restart_at_ns = now + 1;
			kill(inf->pid, SIGTERM);
		}
	}
}

int op_supervisor_run(const op_config *cfg, const char *config_path, int config_fallback, const char *model_error)
{
	sup s;
	char ep[OP_CFG_STR + 32];
	sigset_t mask;
	int rc = 1, linger = 0;

	memset(&s, 0, sizeof(s));
	s.marks = malloc(OP_REPORT_CAP); /* none kept if this fails: the next ingest starts streams afresh */
	s.cfg_now = *cfg;
	s.cfg = &s.cfg_now;
	cfg = s.cfg;
	s.config_path = config_path;
	s.config_fallback = config_fallback;
	s.sfd = -1;
	s.start_ns = op_now_ns();
	op_config_hash(cfg, s.config_hash);
	s.policy = (op_restart_policy){.burst = cfg->restart_burst,
				       .interval_ns = cfg->restart_interval_ns,
				       .backoff_ns = cfg->restart_backoff_ns,
				       .backoff_max_ns = cfg->restart_backoff_max_ns,
				       .stable_ns = 60000000000ull};
	s.watchdog_ns = op_notify_watchdog_interval_ns();
	apply_backoff(&s);
	for (int i = 0; i < NSTAGES; i++) {
		s.st[i].name = stage_names[i];
		s.st[i].rank = rank_of(stage_names[i]);
		op_restart_init(&s.st[i].rs, &s.policy);
	}

	if (mkdir_p(cfg->run_dir) < 0 || mkdir_p(cfg->state_dir) < 0) {
		op_err("cannot create %s or %s: %s", cfg->run_dir, cfg->state_dir, strerror(errno));
		return 1;
	}
	/* state_dir first, then run_dir (unless it is the same directory): always in that order,
	 * so two starting at once cannot each hold one. The descriptors stay open for good. */
	struct stat sd, rd;
	if (instance_lock(cfg->state_dir) == LOCK_HELD)
		return 1;
	if (stat(cfg->state_dir, &sd) != 0 || stat(cfg->run_dir, &rd) != 0 || sd.st_dev != rd.st_dev ||
	    sd.st_ino != rd.st_ino) {
		if (instance_lock(cfg->run_dir) == LOCK_HELD)
			return 1;
	}
	int werr = write_effective(&s);
	if (werr < 0) {
		op_err("cannot write %s: %s", s.effective_path, strerror(-werr));
		return 1;
	}
	start_counter(&s);
	if (model_error) {
		snprintf(s.model_error, sizeof(s.model_error), "%s", model_error);
		if (!s.safe_mode)
			s.safe_mode_entered_ns = op_now_ns();
		s.safe_mode = 1;
		op_err("SAFE MODE: infer.model cannot be used: %s. The network is off, LineFit reconstructs "
		       "every event and every row is flagged safe_mode, until outpostd is restarted with a usable "
		       "model (outpostctl check-config tells)",
		       s.model_error);
		char text[700];
		snprintf(text, sizeof(text), "safe mode: infer.model cannot be used (%s); LineFit only", s.model_error);
		alert(&s, "model_unusable", text);
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	s.sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s.sfd < 0) { /* without it SIGTERM stays blocked: no drain on stop, ever */
		op_err("cannot create a signalfd: %s", strerror(errno));
		return 1;
	}

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
	if (config_fallback) {
		char why[160], text[224];
		op_err("%s %s: running on the last good configuration; fix it, check it and reload", config_path,
		       fallback_why(&s, why, sizeof(why)));
		snprintf(text, sizeof(text), "the configuration file %s: running on the last good one", why);
		alert(&s, "config_fallback", text);
	}
	if (op_powerctl_open(&s.power, cfg, s.zctx) < 0)
		goto out;
	/* every second (half the period if that is shorter): cheap, and a stage that goes down
	 * shows as a gap in the pings within a second */
	s.ping_interval_ns = s.watchdog_ns / 2 < 1000000000ull ? s.watchdog_ns / 2 : 1000000000ull;
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
			else if (si.ssi_signo == SIGHUP) {
				sbuf r = {0};
				reload(&s, &r);
				free(r.p);
			}
		}
		reap(&s);
		drain_reports(&s);
		handle_control(&s);
		op_log_flush();
		{
			stage_rec *ir = stage_by_name(&s, "infer");
			op_power_infer pi = {.events = (double)counter_of(ir, "events"),
					     .work_ns = (double)counter_of(ir, "work_ns"),
					     .wait_ns = (double)counter_of(ir, "wait_ns"),
					     .reported = ir->running && ir->reported_since_spawn};
			op_powerctl_tick(s.power, op_now_ns(), &pi);
		}

		uint64_t now = op_now_ns();
		int ping_ok;
		int healthy = check_stages(&s, now, &ping_ok);
		extend_while_loading(&s, now);
		if (s.stopping)
			break;
		/* READY=1 once the start-up probe went end to end; ask for it every 2 s until then. */
		if (healthy && !s.ready_sent) {
			/* in safe mode, a stage failing for good: no probe can pass */
			const int failing = safe_failing_rank(&s) <= NSTAGES;
			const int probed = counter_of(stage_by_name(&s, "ingest"), "probes_acked") > 0;
			if (probed || failing) {
				op_notify_ready(!s.safe_mode ? "running"
					       : probed ? "SAFE MODE (network off)"
							: "SAFE MODE (network off), a stage keeps failing");
				s.ready_sent = 1;
				if (probed) {
					op_info("ready: a probe event went ingest → infer → store and back in %.2f s",
						(double)(now - s.start_ns) / 1e9);
					/* only now, with the probe through, is this configuration known to
					 * run: a file that passes its checks but cannot run (an endpoint it
					 * cannot bind) must not become the one a later broken file falls
					 * back to */
					write_last_good(&s);
				} else {
					op_err("ready without a probe: in safe mode a stage keeps failing (see above); "
					       "outpostd stays up, restarting it slowly, so that the box does not reboot "
					       "for ever and what can go north does");
				}
			} else if (now - s.last_probe_ns >= 2000000000ull) {
				zmq_send(s.ingest_ctl, "probe", 5, ZMQ_DONTWAIT);
				s.last_probe_ns = now;
			}
		}
		check_stable(&s, healthy, now);
		sample_rates(&s, now);
		if (ping_ok && s.ping_interval_ns && now - s.last_ping_ns >= s.ping_interval_ns) {
			op_notify_watchdog();
			s.last_ping_ns = now;
		}
		if (s.cfg->metrics_textfile[0] && now - s.last_textfile_ns >= s.cfg->metrics_interval_ns) {
			write_textfile(&s);
			s.last_textfile_ns = now;
		}
		/* telemetry north: a status snapshot every uplink.telemetry_interval, the first at READY */
		if (s.ready_sent && s.cfg->uplink_telemetry_ns &&
		    (!s.last_telemetry_ns || now - s.last_telemetry_ns >= s.cfg->uplink_telemetry_ns)) {
			sbuf tb = {0};
			status_json(&s, &tb);
			sb_printf(&tb, "\n");
			int e = tb.p ? op_outbox_telemetry(s.cfg, tb.p, tb.len) : -ENOMEM;
			if (e < 0)
				op_warn("cannot queue telemetry for north: %s", strerror(-e));
			free(tb.p);
			s.last_telemetry_ns = now;
		}
		if (s.ready_sent && now - s.last_status_ns >= 5000000000ull) {
			notify_status_line(&s, healthy);
			s.last_status_ns = now;
		}
	}
	shutdown_stages(&s);
	if (s.budget_spent) {
		/* Rung 2: systemd restarts the process (Restart=on-failure also covers a run
		 * without a watchdog); the reason is already in STATUS= and the log. systemd
		 * answers the trigger with its WatchdogSignal, SIGABRT, while this process is still
		 * exiting: ignored, so that a process that drained and stopped on purpose ends with
		 * status 3, not killed by signal 6 (abort() itself still ends the process; a hung
		 * supervisor never gets here and is killed as before) */
		signal(SIGABRT, SIG_IGN);
		op_notify_watchdog_trigger();
		stage_rec *ing = stage_by_name(&s, "ingest");
		const uint64_t kept = (uint64_t)gauge_of(ing, "kept_in_log");
		if (kept) {
			op_err("stopped: %s; %" PRIu64 " events not yet durable stay in ingest's log in %s/ingest-wal "
			       "for the next start (counted as lost there if the run directory is gone by then)",
			       s.budget_reason, kept, s.cfg->run_dir);
			kept_write(&s, kept);
		} else
			op_err("stopped: %s", s.budget_reason);
		rc = 3;
	} else {
		rc = 0;
		/* Stopped on request after it had come up: not a failed start (an operator's restarts,
		 * a demo, a shutdown must not walk the appliance into safe mode). Safe mode itself is
		 * left only by its retry timer or by an operator removing the counter. */
		if (s.ready_sent && (!s.safe_mode || s.model_error[0]) && s.start_count && op_bootcount_set(s.count_path, 0) == 0)
			op_info("stopped cleanly: start counter reset");
		op_info("stopped");
	}
	goto out;
zfail:
	op_err("supervisor socket error on %s: %s", ep, zmq_strerror(errno));
	for (int i = 0; i < NSTAGES; i++)
		if (s.st[i].running)
			kill(s.st[i].pid, SIGTERM);
out:
	op_powerctl_close(s.power);
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
	free(s.marks);
	return rc;
}
