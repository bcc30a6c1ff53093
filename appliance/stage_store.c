/*
 * stage_store.c — the store stage: append result rows to the open HDF5 segment, seal it by
 * rows, bytes or age, and only then tell ingest which events are durable.
 *
 * NOTES ON THE DESIGN OF THE STORE
 *
 *   start ──▶ recover (rebuild dedup from outbox/, salvage segments/ left by a crash)
 *         ──▶ RUN: rows ──dedup──▶ open segment (generation g) ──seal──▶ outbox/ ──▶ ack g's serials
 *
 * Invariants:
 *  1. A serial is acknowledged only after the row for its (stream, sequence) is in a sealed
 *     segment in outbox/ (ARCHITECTURE.md invariant 3): serials of rows in the open segment wait
 *     in `pending`; a resent event whose row is already sealed is acknowledged at once.
 *  2. Each (stream, sequence) is written once while it is remembered by the dedup table, which
 *     spans ingest's whole resend window and is rebuilt from outbox/ at start.
 *  3. If a segment can't be sealed (an I/O error) the store exits non-zero: nothing of that
 *     segment was acknowledged, ingest still holds it, and the restarted store salvages the
 *     file. On a full disk it pauses instead, with the same guarantees, and goes on once there
 *     is room (disk_full()). It never acknowledges what it could not make durable.
 *  4. A file in segments/ that can't be read at start is moved to segments/corrupt/, never
 *     deleted, and counted.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "appliance/dedup.h"
#include "appliance/log.h"
#include "appliance/stage.h"
#include "kernels/reco.h"
#include "uplink/segment.h"

#define STORE_PATH 512
#define STORE_MAX_SALVAGE 64

typedef struct u64vec {
	uint64_t *v;
	size_t n, cap;
} u64vec;

static int u64vec_push(u64vec *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 1024;
		uint64_t *p = realloc(a->v, cap * sizeof(uint64_t));
		if (!p)
			return -ENOMEM;
		a->v = p;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}

typedef struct store {
	op_stage_ctx *s;
	const op_config *cfg;
	char segments_dir[STORE_PATH], outbox_dir[STORE_PATH], corrupt_dir[STORE_PATH], sent_dir[STORE_PATH];
	op_segment_meta meta;
	char site[64];
	/* What the open segment's attributes say of all its rows (meta points here): one
	 * reconstruction under one configuration a segment; a change seals it first. */
	char model_name[OP_MODEL_MAX_NAME + 1], config_hash[17];
	uint32_t model_id;     /* and the model id of its rows */
	char config_now[17];   /* the configuration in force (config_follow) */
	dev_t cfg_dev;         /* the effective file config_now was read from */
	ino_t cfg_ino;
	struct timespec cfg_mtime;
	uint64_t cfg_checked_ns;
	uint64_t config_changes;
	int have_named;        /* infer named its model (op_stage_model, the first frame of a batch): */
	uint32_t named_id;
	char named[OP_MODEL_MAX_NAME + 1];
	char id_name[64];      /* a name model_name_of made up */
	uint64_t bad_model_frames, bad_frame_said_ns;
	char seg_name[160];	      /* the open segment's name (file seg_name.h5) */
	time_t name_newest;	      /* the newest segment name's time (name_floor_scan, segment_name) */
	time_t name_floor;	      /* no segment is named before this time */
	int name_clamped;	      /* said that the clock is behind the names */
	int name_far_said;	      /* said that a name is more than a day ahead of the clock */
	int salvaging;		      /* in salvage(): the open segment holds copies of leftovers */
	uint64_t batch_rows, batch_files; /* salvaged into the open segment, counted once it seals */
	op_dedup *dedup;
	op_segment *seg;
	uint64_t gen;        /* generation of the open segment */
	uint64_t opened_ns;  /* when its first row arrived */
	uint64_t flushed_ns;
	int dirty;
	int flush_failing; /* the last flush failed (said once, until one succeeds) */
	int disk_full;		 /* paused: a write found no space (disk_full()) */
	uint64_t disk_retry_ns;	 /* when to try again */
	uint64_t disk_full_pauses; /* times it paused */
	/* outbox/ may hold a rename not yet durable (a predecessor died between a seal's renames and
	 * their fsync, or this store's seal failed there): rows found in it are acknowledged only
	 * after outbox/ is fsynced (outbox_durable) */
	int outbox_unsynced;
	u64vec pending;      /* serials waiting for the open segment's seal */
	u64vec ack_now;      /* serials whose rows are already sealed */
	op_result_row *rows; /* batch being appended */
	size_t rows_cap;
	char salvaged[STORE_MAX_SALVAGE][STORE_PATH * 2]; /* leftovers to delete after the next seal */
	int n_salvaged;
	void *ack;
	/* counters */
	uint64_t probes_acked, probes_bad;
	/* rows_written: fresh rows (each event's once, not salvaged ones) in segments sealed, counted
	 * at the seal; seg_fresh: those in the segment not yet sealed. Counted when appended, they
	 * were counted twice when a pause for disk space abandoned the segment (its rows come back,
	 * salvaged or sent again by ingest), or a store restart salvaged it; taken back, the counter
	 * would go down, which the supervisor and Prometheus read as a reset. */
	uint64_t seg_fresh;
	uint64_t failed_seal_rows; /* the rows of the last seal that failed (published after all?) */
	uint64_t rows_received, rows_written, rows_duplicate, rows_sealed, segments_sealed,
		rows_salvaged, files_salvaged, files_corrupt, acks_sent;
	double last_seal_ms;
} store;

static volatile sig_atomic_t seal_now;

static void on_usr1(int sig)
{
	(void)sig;
	seal_now = 1;
}

static int ensure_dir(const char *path)
{
	return op_segment_mkdir(path, 0750);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

/*
 * Segment names start with the time they were opened, and everything that orders segments
 * goes by name: the uplink ships the oldest name first, and a restarted store remembers the
 * rows of the newest names (op_dedup_recover) to recognise the events ingest sends again. A
 * clock stepped back (a real-time clock that ran ahead, corrected by GPS or NTP) would name the
 * next segment before the ones already written, so that after a restart the store could miss
 * its rows and store them twice. So a name never goes back: a restarted store starts after the
 * newest name it finds in segments/, outbox/ and sent/, and each name after the one before.
 * The rows keep their own times. Names far ahead of the clock are followed too: whether the
 * clock was wrong when they were written (a real-time clock at a wild date) or is wrong now (a
 * box without one, booted at an old date before NTP) cannot be told here, and only following
 * keeps the order; the cost of the first case is names ahead of real time, said in the journal.
 */
#define NAME_AHEAD_SAY_S 86400
static void name_floor_scan(store *st, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	const size_t pl = strlen(st->site);
	if (!d)
		return;
	while ((de = readdir(d))) {
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		const char *end;
		if (strncmp(de->d_name, st->site, pl) || de->d_name[pl] != '-' ||
		    !(end = strptime(de->d_name + pl + 1, "%Y%m%dT%H%M%SZ", &tm)) || *end != '-')
			continue;
		time_t t = timegm(&tm);
		if (t == (time_t)-1)
			continue;
		if (t > time(NULL) + NAME_AHEAD_SAY_S && !st->name_far_said) {
			op_warn("%s/%s is named more than a day ahead of the clock: followed all the same, so that "
				"segments keep the order they were written in; if the clock was wrong when it was written, "
				"new names stay ahead of real time (their rows keep their own times)", dir, de->d_name);
			st->name_far_said = 1;
		}
		if (t > st->name_newest)
			st->name_newest = t, st->name_floor = t + 1;
	}
	closedir(d);
}

static void segment_name(store *st, char *out, size_t cap)
{
	time_t now = time(NULL);
	struct tm tm;
	char ts[32];

	if (now < st->name_floor) {
		/* (a restart within the second of the last name is not the clock's fault: silent) */
		if (now < st->name_newest && !st->name_clamped) {
			char was[32];
			gmtime_r(&st->name_newest, &tm);
			strftime(was, sizeof(was), "%Y-%m-%dT%H:%M:%SZ", &tm);
			op_warn("the clock is %lld s behind the newest segment's name (%s): segments are named from "
				"there on, so that they keep the order they were written in (their rows keep their own "
				"times); said once", (long long)(st->name_newest - now), was);
			st->name_clamped = 1;
		}
		now = st->name_floor;
	}
	st->name_floor = st->name_newest = now;
	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(out, cap, "%s-%s-%08" PRIx64 "-%06" PRIu64, st->site, ts,
		 (uint64_t)(st->s->incarnation_ns / 1000u) & 0xffffffffu, st->gen);
}

static int open_segment(store *st)
{
	char name[160];
	segment_name(st, name, sizeof(name));
	int rc = op_segment_create(st->segments_dir, name, &st->meta, &st->seg);
	snprintf(st->seg_name, sizeof(st->seg_name), "%s", name);
	if (rc < 0) {
		op_err("cannot create segment %s/%s.h5: %s", st->segments_dir, name, strerror(-rc));
		return rc;
	}
	st->opened_ns = st->flushed_ns = op_now_ns();
	return 0;
}

static int send_acks(store *st, u64vec *a)
{
	size_t off = 0;

	while (off < a->n) {
		size_t n = a->n - off > 8192 ? 8192 : a->n - off;
		uint8_t buf[8192 * 8];
		for (size_t i = 0; i < n; i++)
			op_put_le64(buf + 8 * i, a->v[off + i]);
		/* Blocks only while ingest is restarting; ZMQ keeps the pipe for the new one. */
		while (zmq_send(st->ack, buf, n * 8, 0) < 0) {
			if (errno != EAGAIN)
				return -errno;
			if (op_stage_stop)
				return -EINTR;
		}
		off += n;
		st->acks_sent += n;
	}
	a->n = 0;
	return 0;
}

/*
 * Rows found in outbox/ (generation 0, or a segment whose seal failed after its renames) are
 * acknowledged at once when ingest sends them again; ingest then frees them. Before that the
 * renames that put them there must be durable, or a power cut could take the segment back out
 * of outbox/ after its events were let go (invariant 3). 0, or -errno with the error said: the
 * caller ends the store, as for a failed seal.
 */
static int outbox_durable(store *st)
{
	if (!st->outbox_unsynced)
		return 0;
	int rc = op_segment_sync_dir(st->outbox_dir);
	if (rc < 0) {
		if (st->ack_now.n)
			op_err("cannot make %s durable (fsync: %s): not acknowledging the %zu events already sealed "
			       "there; exiting so that a restart tries again",
			       st->outbox_dir, strerror(-rc), st->ack_now.n);
		else
			op_err("cannot make %s durable (fsync: %s): not removing the %d salvaged leftovers whose "
			       "rows are there; they stay for the next try",
			       st->outbox_dir, strerror(-rc), st->n_salvaged);
		return rc;
	}
	st->outbox_unsynced = 0;
	return 0;
}

/* The salvaged leftovers' rows are durable in outbox/ (sealed now, or before: every one was a
 * duplicate of a sealed row): their files can go. */
static void remove_salvaged(store *st)
{
	for (int i = 0; i < st->n_salvaged; i++) {
		if (unlink(st->salvaged[i]) != 0)
			op_warn("cannot remove salvaged file %s: %s", st->salvaged[i], strerror(errno));
	}
	st->n_salvaged = 0;
	st->rows_salvaged += st->batch_rows;
	st->files_salvaged += st->batch_files;
	st->batch_rows = st->batch_files = 0;
}

static int seal(store *st)
{
	char sha[65];
	uint64_t rows, t0 = op_now_ns();
	int rc;

	if (!st->seg) {
		/* nothing open: whatever they held was sealed already, durable once outbox/ is. It may
		 * not be yet: at start (a predecessor may have died between its renames and their
		 * fsync) or after a seal that failed after its renames; the leftovers, removed first,
		 * would then be the only copy a power cut leaves. */
		if ((rc = outbox_durable(st)) < 0)
			return rc;
		remove_salvaged(st);
		return 0;
	}
	rows = op_segment_rows(st->seg);
	rc = op_segment_seal(st->seg, st->outbox_dir, sha);
	st->seg = NULL;
	if (rc == 0)
		st->seg_name[0] = 0;
	if (rc < 0) {
		st->failed_seal_rows = rows;
		op_err("cannot seal segment %s/%s.h5 (generation %" PRIu64 ", %" PRIu64 " rows) into %s: %s; "
		       "nothing of it was acknowledged%s",
		       st->segments_dir, st->seg_name, st->gen, rows, st->outbox_dir, strerror(-rc),
		       rc == -ENOSPC ? "" : ", exiting so that it is salvaged on restart");
		return rc;
	}
	st->last_seal_ms = (double)(op_now_ns() - t0) / 1e6;
	st->outbox_unsynced = 0; /* the seal fsynced outbox/: every rename into it is durable */
	st->rows_written += st->seg_fresh;
	st->seg_fresh = 0;
	st->segments_sealed++;
	st->rows_sealed += rows;
	op_debug("sealed segment generation %" PRIu64 ": %" PRIu64 " rows, sha256 %s", st->gen, rows, sha);
	remove_salvaged(st);
	st->gen++;
	const size_t n = st->pending.n;
	rc = send_acks(st, &st->pending);
	if (rc == -EINTR && op_stage_stop) { /* sealed, durable: ingest sends them again, recognised */
		op_info("stopping before ingest took the acknowledgement of %zu sealed events: it sends them "
			"again and they are recognised as stored", n);
		st->pending.n = 0;
		return 0;
	}
	if (rc < 0)
		op_err("cannot acknowledge %zu sealed events to ingest: %s", n, zmq_strerror(-rc));
	return rc;
}

static int append_rows(store *st, const op_result_row *rows, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if (!st->seg && (rc = open_segment(st)) < 0)
		return rc;
	rc = op_segment_append(st->seg, rows, n);
	if (rc < 0) {
		op_err("cannot append %zu rows to the open segment %s/%s.h5: %s", n, st->segments_dir, st->seg_name,
		       strerror(-rc));
		return rc;
	}
	st->dirty = 1;
	return 0;
}

/* The name of the model whose rows carry this id: as infer named it with the batch (one infer
 * runs one model), or for rows it did not name (a leftover segment without attributes)
 * LineFit's variant or, failing that, the id. */
static const char *model_name_of(store *st, uint32_t id)
{
	if (st->have_named && st->named_id == id)
		return st->named;
	const char *lf = op_reco_linefit_name(id);
	if (lf)
		return lf;
	snprintf(st->id_name, sizeof(st->id_name), "model-id-%u", id);
	return st->id_name;
}

/*
 * Each segment names the configuration in force when its rows arrived. A reload replaces the
 * supervisor's effective.yaml (a rename: a new inode) and restarts the store only when a
 * store.* key changed: for any other key the store reads the file again here (checked once a
 * second), and the next row starts a segment under the new hash. Restarting the store for every
 * reload instead would make ingest resend its whole unacknowledged window each time.
 */
static void config_follow(store *st, uint64_t now)
{
	const char *path = st->s->config_path;
	struct stat sb;
	op_config c;
	char hash[17];

	st->cfg_checked_ns = now;
	if (!path || stat(path, &sb) != 0)
		return; /* (no file: the hash of the configuration it started with stays) */
	if (st->cfg_ino && sb.st_ino == st->cfg_ino && sb.st_dev == st->cfg_dev &&
	    sb.st_mtim.tv_sec == st->cfg_mtime.tv_sec && sb.st_mtim.tv_nsec == st->cfg_mtime.tv_nsec)
		return;
	op_config_defaults(&c);
	int rc = op_config_load_file(&c, path, NULL);
	if (rc != 0) { /* the supervisor wrote it after validating it: not expected */
		if (st->cfg_ino != sb.st_ino)
			op_warn("cannot read %s again (%s): segments keep naming configuration %s", path,
				rc < 0 ? strerror(-rc) : "errors in it", st->config_now);
		st->cfg_ino = sb.st_ino; /* said once for this file */
		st->cfg_dev = sb.st_dev;
		st->cfg_mtime = sb.st_mtim;
		return;
	}
	st->cfg_ino = sb.st_ino;
	st->cfg_dev = sb.st_dev;
	st->cfg_mtime = sb.st_mtim;
	op_config_hash(&c, hash);
	if (strcmp(hash, st->config_now)) {
		if (st->config_now[0]) {
			st->config_changes++;
			op_info("configuration %s in force (was %s): the next segment names it", hash, st->config_now);
		}
		snprintf(st->config_now, sizeof(st->config_now), "%s", hash);
	}
}

/* Rows of this model under this configuration go into the open segment only if its attributes
 * say so; otherwise it is sealed first (its rows acknowledged, as at any seal), and the next
 * segment opened says what they are. */
static int same_segment(const store *st, const char *model, uint32_t id, const char *config_hash)
{
	return id == st->model_id && !strcmp(model, st->model_name) && !strcmp(config_hash, st->config_hash);
}

static int segment_for(store *st, const char *model, uint32_t id, const char *config_hash)
{
	int rc;

	if (same_segment(st, model, id, config_hash))
		return 0;
	if (st->seg && (rc = seal(st)) < 0)
		return rc;
	snprintf(st->model_name, sizeof(st->model_name), "%s", model);
	snprintf(st->config_hash, sizeof(st->config_hash), "%s", config_hash);
	st->model_id = id;
	return 0;
}

static int take_batch(store *st, const op_stage_result *res, size_t n)
{
	size_t k = 0;
	int rc;

	if (n > st->rows_cap) {
		op_result_row *p = realloc(st->rows, n * sizeof(op_result_row));
		if (!p)
			return -ENOMEM;
		st->rows = p;
		st->rows_cap = n;
	}
	for (size_t i = 0; i < n; i++) {
		op_stage_result r;
		uint64_t gen;
		memcpy(&r, &res[i], sizeof(r)); /* the message buffer need not be aligned */
		if (r.row.stream_id == OP_PROBE_STREAM) { /* the start-up probe (stage.h): never stored */
			if (isfinite(r.row.dir_x) && isfinite(r.row.dir_y) && isfinite(r.row.dir_z) &&
			    fabsf(r.row.dir_x * r.row.dir_x + r.row.dir_y * r.row.dir_y + r.row.dir_z * r.row.dir_z - 1.0f) < 1e-3f) {
				st->probes_acked++;
				rc = u64vec_push(&st->ack_now, r.serial);
				if (rc < 0)
					return rc;
			} else {
				st->probes_bad++;
				op_err("start-up probe came back without a valid direction (%g, %g, %g): "
				       "the reconstruction is broken; not acknowledging it",
				       r.row.dir_x, r.row.dir_y, r.row.dir_z);
			}
			continue;
		}
		st->rows_received++;
		/* one batch comes from one infer, so a model change falls between batches; a batch
		 * that mixes models is split all the same */
		const char *model = model_name_of(st, r.row.model_id);
		if (!same_segment(st, model, r.row.model_id, st->config_now)) {
			if ((rc = append_rows(st, st->rows, k)) < 0)
				return rc;
			st->seg_fresh += k;
			if ((rc = segment_for(st, model, r.row.model_id, st->config_now)) < 0)
				return rc;
			k = 0;
		}
		if (op_dedup_find(st->dedup, r.row.stream_id, r.row.sequence, r.row.detector_time_ns, &gen)) {
			st->rows_duplicate++;
			rc = u64vec_push(gen < st->gen ? &st->ack_now : &st->pending, r.serial);
		} else {
			op_dedup_insert(st->dedup, r.row.stream_id, r.row.sequence, r.row.detector_time_ns, st->gen);
			st->rows[k++] = r.row;
			rc = u64vec_push(&st->pending, r.serial);
		}
		if (rc < 0)
			return rc;
	}
	/* fresh rows only: not where salvage writes again the rows of a segment left unsealed */
	if ((rc = append_rows(st, st->rows, k)) < 0)
		return rc;
	st->seg_fresh += k;
	return 0;
}

/* Remember what outbox/ and sent/ hold, the newest names first wherever they lie: segments the
 * uplink already delivered north stay in sent/ for a while, and one of them may hold events this
 * store sealed but died before acknowledging, which ingest will send again. Remembering them
 * keeps every event written once (invariant 2). */
static void recover_outbox(store *st, size_t capacity)
{
	const char *const dirs[2] = {st->outbox_dir, st->sent_dir};
	size_t loaded = op_dedup_recover(st->dedup, dirs, 2, capacity);
	if (loaded)
		op_info("remembered %zu rows already sealed (outbox/ and sent/)", loaded);
}

/* Rows of segments a crashed store left open: written again into the new segment, and the
 * old file deleted once that segment is sealed. Unreadable files go to corrupt/. */
static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int salvage(store *st)
{
	DIR *d = opendir(st->segments_dir);
	struct dirent *de;
	char path[STORE_PATH * 2], dest[STORE_PATH * 2];
	char **names = NULL;
	size_t nn = 0, cap = 0;
	int rc = 0;

	if (!d)
		return -errno;
	st->salvaging = 1;
	/* the names first: the segment the rows go into is created in this same directory, and a
	 * listing read while it appears could hand it back as a leftover */
	while ((de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/%s", st->segments_dir, de->d_name);
		if (ends_with(de->d_name, ".h5.sha256")) {
			unlink(path); /* its seal never completed; a new one will be written */
			continue;
		}
		if (!ends_with(de->d_name, ".h5"))
			continue;
		if (nn == cap) {
			size_t c2 = cap ? cap * 2 : 64;
			char **p = realloc(names, c2 * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				break;
			}
			names = p, cap = c2;
		}
		if (!(names[nn] = strdup(de->d_name))) {
			rc = -ENOMEM;
			break;
		}
		nn++;
	}
	closedir(d);
	if (nn > 1)
		qsort(names, nn, sizeof(*names), cmp_name); /* oldest first */
	for (size_t f = 0; f < nn && rc == 0; f++) {
		snprintf(path, sizeof(path), "%s/%s", st->segments_dir, names[f]);
		op_result_row *rows = NULL;
		size_t n = 0, k = 0;
		int rrc = op_segment_read(path, &rows, &n);
		if (rrc == -ENOMEM) {
			/* perhaps not the file's fault, perhaps a damaged header claiming billions of
			 * rows: left where it is (its rows were never acknowledged) and tried again at
			 * the next salvage, neither called corrupt nor ending the store in a loop */
			op_err("cannot read leftover segment %s: out of memory for its rows; left in %s, tried again at "
			       "the next start", path, st->segments_dir);
			continue;
		}
		if (rrc < 0) {
			snprintf(dest, sizeof(dest), "%s/%s", st->corrupt_dir, names[f]);
			char fields[OP_CFG_STR + 48];
			snprintf(fields, sizeof(fields), "SEGMENT=%s\nREASON=corrupt", names[f]);
			if (rename(path, dest) == 0) {
				op_logf(OP_LOG_ERR, fields, "segment %s left by a crash is unreadable (%s); moved to %s "
					"(reason=corrupt)", path, strerror(-rrc), dest);
				st->files_corrupt++; /* once per file: one left in place is met again next time */
			} else {
				op_err("segment %s is unreadable (%s) and cannot be moved to %s: %s; it stays, and is "
				       "tried again", path, strerror(-rrc), st->corrupt_dir, strerror(errno));
			}
			continue;
		}
		/* its rows keep what its own attributes said of them: the model and configuration
		 * they were made under, perhaps not this run's (a file of copies only changes nothing) */
		int fresh = 0;
		for (size_t i = 0; i < n && !fresh; i++) {
			uint64_t g;
			fresh = !op_dedup_find(st->dedup, rows[i].stream_id, rows[i].sequence, rows[i].detector_time_ns, &g);
		}
		char model[OP_MODEL_MAX_NAME + 1], hash[17];
		if (fresh && (op_segment_read_attr(path, "model", model, sizeof(model)) < 0 || !model[0]))
			snprintf(model, sizeof(model), "%s", model_name_of(st, rows[0].model_id));
		if (fresh && (op_segment_read_attr(path, "config_hash", hash, sizeof(hash)) < 0 || !hash[0]))
			snprintf(hash, sizeof(hash), "unknown");
		if (fresh && (rc = segment_for(st, model, rows[0].model_id, hash)) < 0) {
			free(rows);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			uint64_t g;
			if (op_dedup_find(st->dedup, rows[i].stream_id, rows[i].sequence, rows[i].detector_time_ns, &g))
				continue;
			op_dedup_insert(st->dedup, rows[i].stream_id, rows[i].sequence, rows[i].detector_time_ns, st->gen);
			rows[k++] = rows[i];
		}
		rc = append_rows(st, rows, k);
		free(rows);
		if (rc < 0)
			break;
		op_info("salvaged %zu rows from %s (left unsealed by an earlier run, or held through a pause for "
			"disk space)", k, path);
		st->batch_rows += k; /* counted when the batch is sealed (remove_salvaged) */
		st->batch_files++;
		snprintf(st->salvaged[st->n_salvaged++], sizeof(st->salvaged[0]), "%s", path);
		/* a batch's leftovers are deleted by the seal that holds their rows; then the next batch */
		if (st->n_salvaged == STORE_MAX_SALVAGE)
			rc = seal(st);
	}
	for (size_t f = 0; f < nn; f++)
		free(names[f]);
	free(names);
	if (rc == 0 && st->n_salvaged)
		rc = seal(st);
	if (rc == 0)
		st->salvaging = 0; /* on a failure disk_full() still needs to know (and clears it) */
	return rc;
}

/*
 * A write found the disk full. Ending the store for it (as for any other seal failure) would
 * restart it into the same full disk again and again, until the supervisor's restart budget
 * ran out and it escalated to a reboot. Instead the store pauses: the open segment stays in
 * segments/ as a leftover, its rows unacknowledged (ingest holds them, resends them, and its
 * window and then the sender block: nothing is lost), nothing more is taken from infer, and
 * every 5 s, once the disk has 1 MiB free, salvage tries again; once it seals, the store goes
 * on. It reports itself blocked,
 * so the supervisor does not take the pause for a hang.
 */
static void disk_full(store *st, const char *what)
{
	char path[STORE_PATH * 2];
	int published = 0;

	if (st->seg) {
		op_segment_abandon(st->seg); /* stays in segments/: salvaged when there is room */
		st->seg = NULL;
	}
	if (st->seg_name[0]) {
		/* A seal that failed after its renames (its directory fsync) did publish its rows */
		snprintf(path, sizeof(path), "%s/%s.h5", st->outbox_dir, st->seg_name);
		published = access(path, F_OK) == 0;
		/* A salvage's segment holds copies of leftovers that are still there: it would only
		 * take the space salvage is waiting for. One of fresh rows stays, to be salvaged. */
		snprintf(path, sizeof(path), "%s/%s.h5", st->segments_dir, st->seg_name);
		if (!published && st->salvaging && unlink(path) == 0)
			op_info("removed %s: a copy of leftovers that stay in %s", path, st->segments_dir);
		st->seg_name[0] = 0;
	}
	if (!published) {
		op_dedup_forget_gen(st->dedup, st->gen); /* those rows are not sealed */
	} else {
		st->outbox_unsynced = 1; /* published, perhaps not durable: fsynced before their acks */
		/* sealed after all: its rows are stored, fresh ones and the leftovers' it took (their
		 * files stay and are salvaged again, all duplicates: counted when removed then) */
		st->rows_written += st->seg_fresh;
		st->rows_salvaged += st->batch_rows;
		st->rows_sealed += st->failed_seal_rows;
		st->segments_sealed++;
	}
	st->seg_fresh = st->failed_seal_rows = 0;
	st->pending.n = 0;	/* never acknowledged: ingest sends them again (published: acknowledged then) */
	st->n_salvaged = 0;	/* leftovers not sealed stay leftovers */
	st->batch_rows = st->batch_files = 0;
	st->salvaging = 0;
	st->gen++;		/* the next segment must not take the abandoned one's name */
	st->disk_retry_ns = op_now_ns() + 5000000000ull;
	if (st->disk_full)
		return;
	struct statvfs v;
	unsigned long long avail = statvfs(st->segments_dir, &v) == 0 ? (unsigned long long)v.f_bavail * v.f_frsize : 0;
	op_logf(OP_LOG_ERR, "REASON=disk_full",
		"%s: no space left in %s (%llu bytes free): pausing - nothing more is taken from infer, ingest keeps "
		"the events it holds and its sender blocks; nothing is lost. Retrying every 5 s; free space there "
		"(or lower uplink.disk_reserve's margin) to resume",
		what, st->segments_dir, avail);
	st->disk_full = 1;
	st->disk_full_pauses++;
}

static void report(store *st, uint64_t progress, int idle)
{
	op_stage_ctx *s = st->s;
	op_report_begin(s, progress, idle);
	op_report_gauge(s, "loading", 0);
	op_report_counter(s, "rows_received", st->rows_received);
	op_report_counter(s, "probes_acked", st->probes_acked);
	op_report_counter(s, "probes_bad", st->probes_bad);
	op_report_counter(s, "rows_written", st->rows_written);
	op_report_counter(s, "rows_duplicate", st->rows_duplicate);
	op_report_counter(s, "rows_sealed", st->rows_sealed);
	op_report_counter(s, "segments_sealed", st->segments_sealed);
	op_report_counter(s, "rows_salvaged", st->rows_salvaged);
	op_report_counter(s, "files_salvaged", st->files_salvaged);
	op_report_counter(s, "files_corrupt", st->files_corrupt);
	op_report_counter(s, "acks_sent", st->acks_sent);
	op_report_counter(s, "config_changes", st->config_changes);
	op_report_counter(s, "bad_model_frames", st->bad_model_frames);
	op_report_gauge(s, "open_rows", st->seg ? (double)op_segment_rows(st->seg) : 0);
	op_report_gauge(s, "last_seal_ms", st->last_seal_ms);
	op_report_gauge(s, "disk_full", st->disk_full);
	op_report_counter(s, "disk_full_pauses", st->disk_full_pauses);
	op_report_gauge(s, "blocked_downstream", st->disk_full); /* a pause, not a hang */
	op_report_send(s);
}

int op_stage_store(op_stage_ctx *s)
{
	const op_config *cfg = s->cfg;
	store st;
	void *in = NULL;
	char ep[OP_CFG_STR + 32];
	int rc = 1, linger = 2000, hwm = 100000, sndtimeo = 100;
	uint64_t progress = 0;
	size_t dedup_cap = (size_t)cfg->ingest_window_events * 4;
	struct sigaction sa;

	memset(&st, 0, sizeof(st));
	st.s = s;
	st.cfg = cfg;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);

	snprintf(st.segments_dir, sizeof(st.segments_dir), "%s/segments", cfg->state_dir);
	snprintf(st.sent_dir, sizeof(st.sent_dir), "%s/sent", cfg->state_dir);
	snprintf(st.outbox_dir, sizeof(st.outbox_dir), "%s/outbox", cfg->state_dir);
	snprintf(st.corrupt_dir, sizeof(st.corrupt_dir), "%s/segments/corrupt", cfg->state_dir);
	const char *const dirs[] = {cfg->state_dir, st.segments_dir, st.outbox_dir, st.corrupt_dir};
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int drc = ensure_dir(dirs[i]);
		if (drc < 0) { /* which one: a mount missing, a directory's owner or mode after a restore */
			op_err("cannot create %s: %s", dirs[i], strerror(-drc));
			goto out;
		}
	}
	/* Site names go into file names: keep only characters safe everywhere. */
	snprintf(st.site, sizeof(st.site), "%s", cfg->site_name);
	for (char *c = st.site; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
			*c = '_';
	/* Each segment names the model and configuration of its rows: the model from the rows'
	 * model id (model_name_of), the configuration from the file it was read from, read
	 * again after a reload (config_follow). */
	op_config_hash(cfg, st.config_now);
	config_follow(&st, op_now_ns());
	st.meta = (op_segment_meta){.model_name = st.model_name, .config_hash = st.config_hash,
				    .software_version = OUTPOST_VERSION, .site = cfg->site_name,
				    .chunk_rows = cfg->store_chunk_rows,
				    .deflate_level = cfg->store_deflate_level};
	if (op_dedup_open(dedup_cap, &st.dedup) < 0) {
		op_err("cannot allocate the table of the %zu rows last sealed (4 x ingest.window_events): out of memory",
		       dedup_cap);
		goto out;
	}

	in = zmq_socket(s->zctx, ZMQ_PULL);
	st.ack = zmq_socket(s->zctx, ZMQ_PUSH);
	zmq_setsockopt(st.ack, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(st.ack, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(st.ack, ZMQ_SNDTIMEO, &sndtimeo, sizeof(sndtimeo));
	op_stage_endpoint(ep, sizeof(ep), cfg, "store.sock");
	if (zmq_bind(in, ep) != 0)
		goto zfail;
	op_stage_endpoint(ep, sizeof(ep), cfg, "ack.sock");
	if (zmq_connect(st.ack, ep) != 0)
		goto zfail;

	/* Reading outbox/ and salvaging a crash's leftovers can take long on a full disk: the
	 * supervisor gives a stage that says it is loading more time for its first report. */
	op_report_begin(s, 0, 1);
	op_report_gauge(s, "loading", 1);
	op_report_send(s);
	recover_outbox(&st, dedup_cap);
	name_floor_scan(&st, st.segments_dir);
	name_floor_scan(&st, st.outbox_dir);
	name_floor_scan(&st, st.sent_dir);
	st.gen = 1; /* generation 0 = "already in outbox/" */
	st.outbox_unsynced = 1; /* a predecessor may have died between its renames and their fsync */
	int src = salvage(&st);
	if (src == -ENOSPC)
		disk_full(&st, "salvaging leftover segments");
	else if (src < 0)
		goto out;

	while (!op_stage_stop) {
		zmq_pollitem_t it = {.socket = in, .events = ZMQ_POLLIN};
		int idle = 1;
		zmq_msg_t m;

		if (st.disk_full) { /* paused: take nothing, try again now and then */
			zmq_poll(NULL, 0, 100);
			uint64_t now = op_now_ns();
			if (st.ack_now.n && outbox_durable(&st) < 0)
				goto out;
			if (st.ack_now.n && send_acks(&st, &st.ack_now) < 0)
				goto zfail;
			if (now >= st.disk_retry_ns && op_segment_space_low(st.segments_dir)) {
				st.disk_retry_ns = now + 5000000000ull; /* still under 1 MiB free: not yet */
			} else if (now >= st.disk_retry_ns) {
				uint64_t salvaged = st.rows_salvaged;
				int r2 = salvage(&st);
				if (r2 == -ENOSPC) {
					disk_full(&st, "salvaging the held segment");
				} else if (r2 < 0) {
					goto out;
				} else {
					st.disk_full = 0;
					op_info("room again in %s: resumed (%" PRIu64 " rows of the held segments sealed)",
						st.segments_dir, st.rows_salvaged - salvaged);
				}
			}
			if (op_report_due(s, now))
				report(&st, progress, 0);
			continue;
		}
		if (zmq_poll(&it, 1, 100) < 0 && errno != EINTR)
			goto zfail;
		if (op_now_ns() - st.cfg_checked_ns >= 1000000000ull)
			config_follow(&st, op_now_ns());
		for (int i = 0; i < 64; i++) {
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, in, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			if (zmq_msg_more(&m)) { /* the model frame (op_stage_model), then the rows */
				if (zmq_msg_size(&m) == sizeof(op_stage_model)) {
					op_stage_model named;
					memcpy(&named, zmq_msg_data(&m), sizeof(named));
					st.named_id = named.model_id;
					snprintf(st.named, sizeof(st.named), "%.*s", (int)sizeof(named.name), named.name);
					st.have_named = st.named[0] != 0;
				} else if (st.bad_model_frames++ == 0 || op_now_ns() - st.bad_frame_said_ns >= 60000000000ull) {
					/* (its rows go on, named by their model id) */
					st.bad_frame_said_ns = op_now_ns();
					op_err("model frame from infer has %zu bytes, not %zu; ignored it (%" PRIu64 " so far)",
					       zmq_msg_size(&m), sizeof(op_stage_model), st.bad_model_frames);
				}
				zmq_msg_close(&m);
				zmq_msg_init(&m);
				if (zmq_msg_recv(&m, in, ZMQ_DONTWAIT) < 0) { /* a message arrives whole */
					zmq_msg_close(&m);
					break;
				}
			}
			size_t n = zmq_msg_size(&m) / sizeof(op_stage_result);
			if (zmq_msg_size(&m) % sizeof(op_stage_result))
				op_err("batch from infer has %zu stray bytes; ignored them", zmq_msg_size(&m) % sizeof(op_stage_result));
			int err = take_batch(&st, zmq_msg_data(&m), n);
			zmq_msg_close(&m);
			if (err == -ENOSPC) {
				disk_full(&st, "writing results");
				break;
			}
			if (err < 0)
				goto out;
			progress += n;
			idle = 0;
		}
		uint64_t now = op_now_ns();
		if (st.ack_now.n && outbox_durable(&st) < 0)
			goto out;
		if (st.ack_now.n && send_acks(&st, &st.ack_now) < 0)
			goto zfail;
		if (st.seg) {
			int due = seal_now || op_segment_rows(st.seg) >= cfg->store_rotate_rows ||
				  op_segment_bytes(st.seg) >= cfg->store_rotate_bytes ||
				  now - st.opened_ns >= cfg->store_rotate_age_ns;
			if (due) {
				int sr = seal(&st);
				if (sr == -ENOSPC)
					disk_full(&st, "sealing a segment");
				else if (sr < 0)
					goto out;
			} else if (st.dirty && now - st.flushed_ns >= 1000000000ull) {
				/* not durable yet, but salvageable after a crash; a failure is said once (the rows
				 * stay unacknowledged, and the seal, which must succeed, tells for good) and tried
				 * again a second later; no space pauses the store as a failed append does */
				int frc = op_segment_flush(st.seg);
				if (frc == -ENOSPC) {
					disk_full(&st, "flushing the open segment");
				} else {
					if (frc < 0 && !st.flush_failing)
						op_warn("cannot flush the open segment %s/%s.h5: %s (its rows stay "
							"unacknowledged; trying again every second)",
							st.segments_dir, st.seg_name, strerror(-frc));
					else if (frc == 0 && st.flush_failing)
						op_info("the open segment %s/%s.h5 flushes again", st.segments_dir, st.seg_name);
					st.flush_failing = frc < 0;
					st.flushed_ns = now;
					st.dirty = frc < 0;
				}
			}
		}
		seal_now = 0;
		if (op_report_due(s, now))
			report(&st, progress, idle);
	}
	/* Stopping: what we hold becomes durable now, and ingest hears about it. */
	if (seal(&st) < 0)
		goto out;
	rc = 0;
	report(&st, progress, 1);
	goto out;
zfail:
	op_err("store socket error: %s", zmq_strerror(errno));
out:
	if (st.seg) {
		op_segment_flush(st.seg);
		op_segment_abandon(st.seg); /* stays in segments/ and is salvaged next start */
	}
	if (in)
		zmq_close(in);
	if (st.ack)
		zmq_close(st.ack);
	op_dedup_close(st.dedup);
	free(st.pending.v);
	free(st.ack_now.v);
	free(st.rows);
	return rc;
}
